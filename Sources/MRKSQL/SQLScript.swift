/// Splitting SQL scripts into statements, with PostgreSQL's lexical rules (semicolons inside
/// strings, quoted identifiers, dollar quotes and comments do not split).
public enum SQLScript {
    /// SQL text that cannot be split: an unterminated string, quoted identifier or comment.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        /// Byte offset in the UTF-8 text where the problem starts.
        public let offset: Int
        /// What is wrong (never quotes the text).
        public let reason: String
        public var description: String { "cannot split the SQL text: \(reason) at byte \(offset)" }
    }

    /// The statements of `sql`, trimmed, without their terminating semicolons; empty ones dropped.
    ///
    /// - Throws: `SQLScript.SyntaxError` for an unterminated string, identifier or comment.
    public static func statements(_ sql: String) throws(SyntaxError) -> [String] {
        let tokens: [SQLToken]
        do {
            tokens = try SQLTokenizer.tokenize(sql)
        } catch {
            throw SyntaxError(offset: error.offset, reason: error.reason)
        }
        let bytes = Array(sql.utf8)
        var statements: [String] = []
        var start: Int?
        var end = 0
        var nesting = Nesting()
        for token in tokens {
            let topLevel = nesting.isTopLevel
            nesting.track(token)
            if token.isPunctuation(";") && topLevel {
                if let s = start { statements.append(String(decoding: bytes[s..<end], as: UTF8.self)) }
                start = nil
                continue
            }
            if start == nil { start = token.range.lowerBound }
            end = token.range.upperBound
        }
        if let s = start { statements.append(String(decoding: bytes[s..<end], as: UTF8.self)) }
        return statements
    }

    /// Whether `sql` ends with a top-level semicolon (for interactive input).
    public static func isComplete(_ sql: String) -> Bool {
        guard let tokens = try? SQLTokenizer.tokenize(sql), tokens.last?.isPunctuation(";") == true else { return false }
        var nesting = Nesting()
        for token in tokens.dropLast() { nesting.track(token) }
        return nesting.isTopLevel
    }

    /// Where semicolons do not end a statement, as psql tracks it: inside parentheses (a
    /// multi-action `CREATE RULE … DO (…; …)`) and inside `BEGIN ATOMIC … END` bodies.
    struct Nesting {
        var parentheses = 0
        var atomicDepth = 0
        var previous: SQLToken?

        var isTopLevel: Bool { parentheses == 0 && atomicDepth == 0 }

        mutating func track(_ token: SQLToken) {
            if token.isPunctuation("(") { parentheses += 1 }
            if token.isPunctuation(")") { parentheses = max(0, parentheses - 1) }
            if token.isKeyword("atomic"), previous?.isKeyword("begin") == true { atomicDepth += 1 }
            // Inside an atomic body, CASE … END also ends with END: count CASE as an opener.
            if atomicDepth > 0 && token.isKeyword("case") { atomicDepth += 1 }
            if atomicDepth > 0 && token.isKeyword("end") { atomicDepth -= 1 }
            previous = token
        }
    }
}
