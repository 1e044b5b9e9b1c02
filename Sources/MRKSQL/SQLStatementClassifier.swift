/// Decides a statement's kind and whether a read-only replica must refuse it, from its tokens
/// alone (so it works for statements that are passed through without being parsed).
///
/// Conservative: anything not known to be read-only is a write.
enum SQLStatementClassifier {
    /// Statements a hot standby accepts.
    private static let readOnlyCommands: Set<String> = [
        "show", "set", "reset", "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
        "fetch", "move", "close", "discard", "deallocate", "load", "unlisten",
    ]

    static func classify(_ tokens: [SQLToken], _ range: Range<Int>) -> (kind: StatementKind, isWrite: Bool) {
        var index = range.lowerBound
        while index < range.upperBound && tokens[index].isPunctuation("(") { index += 1 }
        guard index < range.upperBound else { return (.other, false) }
        let first = tokens[index]
        guard first.kind == .identifier else { return (.other, true) }
        let rest = (index + 1)..<range.upperBound
        switch first.text {
        case "select", "values", "table":
            let write = hasLockingClause(tokens, range) || hasDataModifyingSubstatement(tokens, range)
                || (first.text == "select" && hasTopLevelInto(tokens, rest))
            return (.select, write)
        case "with":
            let main = mainKeywordAfterWith(tokens, rest)
            let write = hasLockingClause(tokens, range) || hasDataModifyingSubstatement(tokens, range)
            switch main?.text {
            case "select", "values", "table":
                return (.select, write || hasTopLevelInto(tokens, (main!.index + 1)..<range.upperBound))
            case "insert": return (.insert, true)
            case "update": return (.update, true)
            case "delete": return (.delete, true)
            case "merge": return (.merge, true)
            default: return (.other, true)
            }
        case "insert": return (.insert, true)
        case "update": return (.update, true)
        case "delete": return (.delete, true)
        case "merge": return (.merge, true)
        case "explain":
            var inner = index + 1
            if inner < range.upperBound && tokens[inner].isPunctuation("(") {
                var depth = 0
                while inner < range.upperBound {
                    if tokens[inner].isPunctuation("(") { depth += 1 }
                    if tokens[inner].isPunctuation(")") { depth -= 1 }
                    inner += 1
                    if depth == 0 { break }
                }
            } else {
                while inner < range.upperBound,
                    tokens[inner].isKeyword("analyze") || tokens[inner].isKeyword("analyse")
                        || tokens[inner].isKeyword("verbose")
                {
                    inner += 1
                }
            }
            return (.other, classify(tokens, inner..<range.upperBound).isWrite)
        case "prepare":
            guard let asIndex = rest.first(where: { tokens[$0].isKeyword("as") }) else { return (.other, true) }
            return (.other, classify(tokens, (asIndex + 1)..<range.upperBound).isWrite)
        case "declare":
            return (.other, hasLockingClause(tokens, range) || hasDataModifyingSubstatement(tokens, range))
        case "copy":
            var depth = 0
            for position in rest {
                if tokens[position].isPunctuation("(") { depth += 1 }
                if tokens[position].isPunctuation(")") { depth -= 1 }
                if depth == 0 && tokens[position].isKeyword("from") { return (.other, true) }
                if depth == 0 && tokens[position].isKeyword("to") { return (.other, false) }
            }
            return (.other, true)
        default:
            return (.other, !readOnlyCommands.contains(first.text))
        }
    }

    /// `FOR UPDATE | NO KEY UPDATE | SHARE | KEY SHARE` anywhere.
    private static func hasLockingClause(_ tokens: [SQLToken], _ range: Range<Int>) -> Bool {
        for index in range where tokens[index].isKeyword("for") && index + 1 < range.upperBound {
            let next = tokens[index + 1]
            if next.isKeyword("update") || next.isKeyword("share") { return true }
            if (next.isKeyword("no") || next.isKeyword("key")) && index + 2 < range.upperBound
                && (tokens[index + 2].isKeyword("key") || tokens[index + 2].isKeyword("share"))
            {
                return true
            }
        }
        return false
    }

    /// INSERT/UPDATE/DELETE/MERGE right after `(` (a data-modifying CTE).
    private static func hasDataModifyingSubstatement(_ tokens: [SQLToken], _ range: Range<Int>) -> Bool {
        for index in range.dropFirst() where tokens[index - 1].isPunctuation("(") {
            let token = tokens[index]
            if token.isKeyword("insert") || token.isKeyword("update") || token.isKeyword("delete")
                || token.isKeyword("merge")
            {
                return true
            }
        }
        return false
    }

    private static func hasTopLevelInto(_ tokens: [SQLToken], _ range: Range<Int>) -> Bool {
        var depth = 0
        for index in range {
            if tokens[index].isPunctuation("(") { depth += 1 }
            if tokens[index].isPunctuation(")") { depth -= 1 }
            if depth == 0 && tokens[index].isKeyword("into") { return true }
        }
        return false
    }

    private static func mainKeywordAfterWith(_ tokens: [SQLToken], _ range: Range<Int>) -> (text: String, index: Int)? {
        var depth = 0
        let main: Set<String> = ["select", "values", "table", "insert", "update", "delete", "merge"]
        for index in range {
            let token = tokens[index]
            if token.isPunctuation("(") { depth += 1 }
            if token.isPunctuation(")") { depth -= 1 }
            if depth == 0 && token.kind == .identifier && main.contains(token.text) { return (token.text, index) }
        }
        return nil
    }
}
