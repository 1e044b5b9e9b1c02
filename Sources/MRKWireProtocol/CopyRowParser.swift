import MRKSQL

/// Reads the rows of a client's `COPY … FROM STDIN` data as it arrives, in PostgreSQL's text or
/// CSV format, so that the proxy can encrypt them before they reach the server. Total: malformed
/// data is an error (`22P04`, as the server reports it), never a trap (the `copy` fuzz harness).
package struct CopyRowParser {
    package struct Failure: Error, Equatable, CustomStringConvertible {
        package let message: String
        package var description: String { message }
    }

    private let format: SQLCopyStatement.Format
    private let delimiter: UInt8
    private let null: [UInt8]
    private let quote: UInt8
    private let escape: UInt8
    private let columnCount: Int
    private var skipHeader: Bool
    private var pending: [UInt8] = []
    private var position = 0
    private var ended = false
    /// Rows read so far (for messages: the line of an error).
    package private(set) var rowsRead = 0

    package init(_ copy: SQLCopyStatement) {
        format = copy.format
        delimiter = copy.delimiter
        null = Array(copy.null.utf8)
        quote = copy.quote
        escape = copy.escape
        columnCount = copy.columns.count
        skipHeader = copy.header
    }

    /// Adds a chunk of CopyData.
    package mutating func append(_ bytes: [UInt8]) {
        guard !ended else { return }
        if position > 64 * 1024 {
            pending.removeFirst(position)
            position = 0
        }
        pending += bytes
    }

    /// The next complete row (nil fields are NULL), or nil when more data is needed.
    package mutating func nextRow() throws(Failure) -> [String?]? {
        while !ended {
            guard let (fields, next) = try format == .csv ? csvRow(from: position, final: false) : textRow(from: position, final: false) else {
                return nil
            }
            position = next
            if let fields {
                if skipHeader { skipHeader = false; continue }
                rowsRead += 1
                return fields
            }
        }
        return nil
    }

    /// The last row once the client said the data is complete (CopyDone): a final line without
    /// its newline counts; nil when there is none.
    package mutating func finish() throws(Failure) -> [String?]? {
        if let row = try nextRow() { return row }
        guard !ended, position < pending.count else { return nil }
        guard let (fields, next) = try format == .csv ? csvRow(from: position, final: true) : textRow(from: position, final: true) else {
            return nil
        }
        position = next
        if let fields, !skipHeader {
            rowsRead += 1
            return fields
        }
        return nil
    }

    // MARK: Text format

    /// One line from `start`: its fields (nil for the end-of-data marker `\.`) and where the next
    /// line begins; nil when the line is incomplete.
    private mutating func textRow(from start: Int, final: Bool) throws(Failure) -> ([String?]?, Int)? {
        var end = start
        while end < pending.count && pending[end] != 0x0A { end += 1 }
        guard end < pending.count || final else { return nil }
        var line = pending[start..<end]
        let next = min(end + 1, pending.count)
        if line.last == 0x0D { line = line.dropLast() }
        if line.elementsEqual([0x5C, 0x2E]) {  // \.
            ended = true
            return (nil, next)
        }
        var fields: [String?] = []
        var raw: [UInt8] = []
        var index = line.startIndex
        func finishField() throws(Failure) {
            if raw == null {
                fields.append(nil)
            } else {
                fields.append(try decodeText(raw))
            }
            raw.removeAll(keepingCapacity: true)
        }
        while index < line.endIndex {
            let byte = line[index]
            if byte == delimiter {
                try finishField()
            } else if byte == 0x5C, index + 1 < line.endIndex {
                raw.append(byte)
                raw.append(line[index + 1])
                index += 1
            } else {
                raw.append(byte)
            }
            index += 1
        }
        try finishField()
        guard fields.count == columnCount else { throw columnCountFailure(fields.count) }
        return (fields, next)
    }

    /// A text-format field with its backslash escapes decoded, as valid UTF-8.
    private func decodeText(_ raw: [UInt8]) throws(Failure) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var index = 0
        while index < raw.count {
            let byte = raw[index]
            guard byte == 0x5C, index + 1 < raw.count else {
                out.append(byte)
                index += 1
                continue
            }
            let next = raw[index + 1]
            index += 2
            switch next {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(next - 0x30)
                var digits = 1
                while digits < 3, index < raw.count, (0x30...0x37).contains(raw[index]) {
                    value = value * 8 + Int(raw[index] - 0x30)
                    index += 1
                    digits += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
            case UInt8(ascii: "x") where index < raw.count && Self.hexValue(raw[index]) != nil:
                var value = Self.hexValue(raw[index])!
                index += 1
                if index < raw.count, let low = Self.hexValue(raw[index]) {
                    value = value * 16 + low
                    index += 1
                }
                out.append(UInt8(value))
            default: out.append(next)
            }
        }
        guard !out.contains(0), let text = String(validating: out, as: UTF8.self) else {
            throw Failure(message: "invalid byte sequence for encoding \"UTF8\" in COPY data, row \(rowsRead + 1)")
        }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }

    // MARK: CSV

    /// One CSV record from `start` (quoted fields may span lines).
    private mutating func csvRow(from start: Int, final: Bool) throws(Failure) -> ([String?]?, Int)? {
        var fields: [String?] = []
        var field: [UInt8] = []
        var quoted = false
        var inQuotes = false
        var index = start
        func finishField() throws(Failure) {
            if !quoted && field == null {
                fields.append(nil)
            } else {
                guard !field.contains(0), let text = String(validating: field, as: UTF8.self) else {
                    throw Failure(message: "invalid byte sequence for encoding \"UTF8\" in COPY data, row \(rowsRead + 1)")
                }
                fields.append(text)
            }
            field.removeAll(keepingCapacity: true)
            quoted = false
        }
        // The end-of-data marker on a line of its own.
        var lineEnd = start
        while lineEnd < pending.count && pending[lineEnd] != 0x0A { lineEnd += 1 }
        if lineEnd < pending.count || final {
            var line = pending[start..<lineEnd]
            if line.last == 0x0D { line = line.dropLast() }
            if line.elementsEqual([0x5C, 0x2E]) {
                ended = true
                return (nil, min(lineEnd + 1, pending.count))
            }
        }
        while index < pending.count {
            let byte = pending[index]
            if inQuotes {
                if escape != quote && byte == escape {
                    guard index + 1 < pending.count else {
                        if !final { return nil }
                        field.append(byte)
                        index += 1
                        continue
                    }
                    let next = pending[index + 1]
                    if next == quote || next == escape {
                        field.append(next)
                        index += 2
                        continue
                    }
                    field.append(byte)
                    index += 1
                    continue
                }
                if byte == quote {
                    if escape == quote {
                        // `""` inside quotes is one quote; a lone quote ends the quoted part.
                        guard index + 1 < pending.count else {
                            if !final { return nil }
                            inQuotes = false
                            index += 1
                            continue
                        }
                        if pending[index + 1] == quote {
                            field.append(quote)
                            index += 2
                            continue
                        }
                    }
                    inQuotes = false
                    index += 1
                    continue
                }
                field.append(byte)
                index += 1
                continue
            }
            if byte == quote {
                inQuotes = true
                quoted = true
                index += 1
            } else if byte == delimiter {
                try finishField()
                index += 1
            } else if byte == 0x0A || byte == 0x0D {
                try finishField()
                var next = index + 1
                if byte == 0x0D {
                    if next >= pending.count && !final { return nil }
                    if next < pending.count && pending[next] == 0x0A { next += 1 }
                }
                guard fields.count == columnCount else { throw columnCountFailure(fields.count) }
                return (fields, next)
            } else {
                field.append(byte)
                index += 1
            }
        }
        guard final else { return nil }
        guard !inQuotes else { throw Failure(message: "unterminated CSV quoted field") }
        try finishField()
        guard fields.count == columnCount else { throw columnCountFailure(fields.count) }
        return (fields, index)
    }

    private func columnCountFailure(_ count: Int) -> Failure {
        count < columnCount
            ? Failure(message: "missing data for column \(count + 1) of \(columnCount), row \(rowsRead + 1)")
            : Failure(message: "extra data after last expected column, row \(rowsRead + 1)")
    }
}
