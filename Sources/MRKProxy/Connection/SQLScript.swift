/// Splitting SQL scripts into statements, with PostgreSQL's lexical rules (semicolons inside
/// strings, quoted identifiers, dollar quotes and comments do not split).
public enum SQLScript {
    /// The statements of `sql`, trimmed, without their terminating semicolons; empty ones dropped.
    ///
    /// - Throws: `ProxyError` `.invalidValue` for an unterminated string, identifier or comment.
    public static func statements(_ sql: String) throws -> [String] {
        let tokens: [SQLToken]
        do {
            tokens = try SQLTokenizer.tokenize(sql)
        } catch {
            throw ProxyError(.invalidValue, "cannot split the SQL text: \(error.reason) at byte \(error.offset)")
        }
        let bytes = Array(sql.utf8)
        var statements: [String] = []
        var start: Int?
        var end = 0
        for token in tokens {
            if token.isPunctuation(";") {
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
        guard let tokens = try? SQLTokenizer.tokenize(sql) else { return false }
        return tokens.last?.isPunctuation(";") == true
    }
}
