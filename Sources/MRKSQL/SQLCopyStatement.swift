/// A `COPY table (columns) FROM STDIN [WITH] (options)` statement on a configured table, as the
/// wire proxy runs it: the client's rows are read as they stream, encrypted where the
/// configuration says, and loaded with the library's COPY.
package struct SQLCopyStatement: Sendable, Equatable {
    /// The configured table the statement names.
    package var table: EncryptedTable
    /// The columns in each row, as given (the proxy needs them listed).
    package var columns: [String]
    package var format: Format
    /// The field delimiter (tab for text, comma for CSV).
    package var delimiter: UInt8
    /// The text that stands for NULL (`\N` for text, the empty unquoted string for CSV).
    package var null: String
    /// CSV: the first line is a header (skipped).
    package var header: Bool
    /// CSV quote and escape characters.
    package var quote: UInt8
    package var escape: UInt8

    package enum Format: Sendable, Equatable { case text, csv }

    package init(table: EncryptedTable, columns: [String], format: Format, delimiter: UInt8, null: String, header: Bool,
                 quote: UInt8, escape: UInt8) {
        self.table = table
        self.columns = columns
        self.format = format
        self.delimiter = delimiter
        self.null = null
        self.header = header
        self.quote = quote
        self.escape = escape
    }

    /// Why a COPY on a configured table cannot run through the proxy (fixed text, no values).
    package struct Unsupported: Error, Sendable, Equatable, CustomStringConvertible {
        package let reason: String
        package var description: String { reason }
    }
}

extension SQLInterceptor {
    /// Whether `copy` appears in `sql` in any case (a quick test before tokenizing).
    static func mentionsCopy(_ sql: String) -> Bool {
        let word: (UInt8, UInt8, UInt8, UInt8) = (0x63, 0x6F, 0x70, 0x79)  // "copy"
        var matched = 0
        for byte in sql.utf8 {
            let lower = byte | 0x20
            let expected = matched == 0 ? word.0 : matched == 1 ? word.1 : matched == 2 ? word.2 : word.3
            matched = lower == expected ? matched + 1 : (lower == word.0 ? 1 : 0)
            if matched == 4 { return true }
        }
        return false
    }

    /// The `COPY … FROM STDIN` of a configured table in `sql`; nil when `sql` is not one (another
    /// statement, COPY of an unconfigured table, `COPY … TO`).
    ///
    /// - Throws: `SQLCopyStatement.Unsupported` for a COPY FROM STDIN of a configured table that
    ///   the proxy cannot load (no column list, binary format, a blind-index column, options it
    ///   does not know).
    package func copyFromStdin(_ sql: String) throws(SQLCopyStatement.Unsupported) -> SQLCopyStatement? {
        // Most statements are not COPY: skip the tokenizer for them.
        guard Self.mentionsCopy(sql) else { return nil }
        guard let tokens = try? SQLTokenizer.tokenize(sql, dialect: dialect) else { return nil }
        var position = 0
        func peek() -> SQLToken? { position < tokens.count ? tokens[position] : nil }
        func take() -> SQLToken? {
            defer { position += 1 }
            return peek()
        }
        func keyword(_ word: String) -> Bool {
            guard peek()?.isKeyword(word) == true else { return false }
            position += 1
            return true
        }
        func punctuation(_ mark: String) -> Bool {
            guard peek()?.isPunctuation(mark) == true else { return false }
            position += 1
            return true
        }
        guard keyword("copy") else { return nil }
        var parts: [String] = []
        while let token = peek(), token.isName {
            parts.append(token.text)
            position += 1
            guard punctuation(".") else { break }
        }
        guard !parts.isEmpty, parts.count <= 2, let table = schema.table(named: parts) else { return nil }
        var columns: [String]?
        if punctuation("(") {
            var names: [String] = []
            while let token = take(), token.isName {
                names.append(token.text)
                if punctuation(")") { columns = names; break }
                guard punctuation(",") else { throw .init(reason: "COPY column list") }
            }
            guard columns != nil else { throw .init(reason: "COPY column list") }
        }
        guard keyword("from") else { return nil }
        guard keyword("stdin") else {
            throw .init(reason: "COPY FROM a file or program on a configured table (the server would read plaintext); use COPY … FROM STDIN")
        }
        var copy = SQLCopyStatement(table: table, columns: [], format: .text, delimiter: 9, null: "\\N", header: false,
                                    quote: UInt8(ascii: "\""), escape: UInt8(ascii: "\""))
        var delimiter: UInt8?, null: String?, escape: UInt8?
        func character(_ token: SQLToken?, _ option: String) throws(SQLCopyStatement.Unsupported) -> UInt8 {
            guard let token, token.isString, token.text.utf8.count == 1, let byte = token.text.utf8.first, byte < 0x80 else {
                throw .init(reason: "COPY option \(option) must be a single ASCII character")
            }
            return byte
        }
        _ = keyword("with")
        if punctuation("(") {
            while true {
                guard let option = take(), option.kind == .identifier else { throw .init(reason: "COPY options") }
                switch option.text {
                case "format":
                    guard let value = take() else { throw .init(reason: "COPY FORMAT") }
                    switch value.text.lowercased() {
                    case "text": copy.format = .text
                    case "csv": copy.format = .csv
                    case "binary": throw .init(reason: "COPY FORMAT binary into a configured table (use text or csv)")
                    default: throw .init(reason: "COPY FORMAT must be text or csv")
                    }
                case "delimiter": delimiter = try character(take(), "DELIMITER")
                case "null":
                    guard let value = take(), value.isString else { throw .init(reason: "COPY NULL must be a string") }
                    null = value.text
                case "header":
                    if let value = peek(), value.kind == .identifier || value.kind == .number || value.isString,
                       ["true", "on", "1", "false", "off", "0"].contains(value.text.lowercased()) {
                        position += 1
                        copy.header = ["true", "on", "1"].contains(value.text.lowercased())
                    } else {
                        copy.header = true
                    }
                case "quote": copy.quote = try character(take(), "QUOTE")
                case "escape": escape = try character(take(), "ESCAPE")
                default: throw .init(reason: "COPY option \(option.text) is not supported on a configured table")
                }
                if punctuation(")") { break }
                guard punctuation(",") else { throw .init(reason: "COPY options") }
            }
        } else {
            // The pre-9.0 syntax: [BINARY] [DELIMITER [AS] 'c'] [NULL [AS] 'x'] [CSV [HEADER] …].
            while let token = peek(), token.kind == .identifier {
                position += 1
                switch token.text {
                case "binary": throw .init(reason: "COPY BINARY into a configured table (use text or csv)")
                case "delimiter": _ = keyword("as"); delimiter = try character(take(), "DELIMITER")
                case "null":
                    _ = keyword("as")
                    guard let value = take(), value.isString else { throw .init(reason: "COPY NULL must be a string") }
                    null = value.text
                case "csv": copy.format = .csv
                case "header": copy.header = true
                case "quote": _ = keyword("as"); copy.quote = try character(take(), "QUOTE")
                case "escape": _ = keyword("as"); escape = try character(take(), "ESCAPE")
                default: throw .init(reason: "COPY option \(token.text) is not supported on a configured table")
                }
            }
        }
        _ = punctuation(";")
        guard position == tokens.count else { throw .init(reason: "COPY with clauses after its options (WHERE …) on a configured table") }
        guard let columns, !columns.isEmpty else {
            throw .init(reason: "COPY into a configured table needs its column list, e.g. COPY \(table.name) (id, name, ssn) FROM STDIN")
        }
        for column in columns where table.columns.values.contains(where: { $0.blindIndexColumn == column }) {
            throw .init(reason: "COPY names the blind index column \(column); MRKProxy computes it")
        }
        copy.columns = columns
        if copy.format == .csv {
            copy.delimiter = delimiter ?? UInt8(ascii: ",")
            copy.null = null ?? ""
            copy.escape = escape ?? copy.quote
        } else {
            copy.delimiter = delimiter ?? 9
            copy.null = null ?? "\\N"
            if copy.header { throw .init(reason: "COPY HEADER needs FORMAT csv") }
        }
        return copy
    }
}
