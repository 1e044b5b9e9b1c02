internal import CLibPQ

/// Metadata of one result column.
public struct PostgresColumn: Sendable, Equatable {
    /// The column's name (or alias) as the server reports it.
    public let name: String
    /// Type OID of the values.
    public let type: PostgresOID
    /// OID of the table the column was fetched from (`PQftable`); 0 when it is not a plain column reference.
    public let tableOID: UInt32
    /// Attribute number of the column in that table (`PQftablecol`, 1-based); 0 when unknown.
    public let tableColumn: Int
    /// Format of the values (text or binary).
    public let format: PostgresFormat
    /// Type modifier (`PQfmod`), e.g. varchar length; -1 when none.
    public let typeModifier: Int32
    /// The type's size in bytes (`PQfsize`); negative for variable-length types.
    public var typeSize: Int16 = -1
}

/// The result of one statement. Owns the libpq `PGresult` and frees it when released.
///
/// Values are read straight from libpq's memory; nothing is copied until you ask for it.
public final class PostgresResult {
    let handle: OpaquePointer
    /// Number of rows.
    public let rowCount: Int
    /// Result columns, in order.
    public let columns: [PostgresColumn]

    init(taking handle: OpaquePointer) {
        self.handle = handle
        rowCount = Int(PQntuples(handle))
        let count = Int(PQnfields(handle))
        columns = (0..<count).map { index in
            let i = Int32(index)
            return PostgresColumn(
                name: PQfname(handle, i).map { String(cString: $0) } ?? "",
                type: PostgresOID(PQftype(handle, i)),
                tableOID: PQftable(handle, i),
                tableColumn: Int(PQftablecol(handle, i)),
                format: PQfformat(handle, i) == 1 ? .binary : .text,
                typeModifier: PQfmod(handle, i),
                typeSize: Int16(truncatingIfNeeded: PQfsize(handle, i))
            )
        }
    }

    deinit { PQclear(handle) }

    /// Number of columns.
    public var columnCount: Int { columns.count }

    /// The command tag, e.g. `INSERT 0 3` or `SELECT 10`.
    public var commandTag: String { String(cString: PQcmdStatus(handle)) }

    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/MOVE/FETCH/COPY, nil for other commands.
    public var affectedRows: Int? {
        let text = String(cString: PQcmdTuples(handle))
        return text.isEmpty ? nil : Int(text)
    }

    /// Index of the column named `name` (case-sensitive, first match), or nil.
    public func columnIndex(named name: String) -> Int? {
        columns.firstIndex { $0.name == name }
    }

    /// True when the value at (`row`, `column`) is SQL NULL.
    public func isNull(row: Int, column: Int) -> Bool {
        PQgetisnull(handle, Int32(row), Int32(column)) == 1
    }

    /// Calls `body` with the raw value bytes (nil for NULL) without copying them.
    public func withValueBytes<R>(row: Int, column: Int, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        precondition(row >= 0 && row < rowCount && column >= 0 && column < columns.count, "row or column out of range")
        let r = Int32(row), c = Int32(column)
        if PQgetisnull(handle, r, c) == 1 { return try body(nil) }
        let length = Int(PQgetlength(handle, r, c))
        let pointer = UnsafeRawPointer(PQgetvalue(handle, r, c)!)
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// The raw value bytes as sent by the server, in place (nil for NULL). The memory belongs to
    /// this result: use it only while the result is alive.
    public func valueBytes(row: Int, column: Int) -> UnsafeRawBufferPointer? {
        precondition(row >= 0 && row < rowCount && column >= 0 && column < columns.count, "row or column out of range")
        let r = Int32(row), c = Int32(column)
        if PQgetisnull(handle, r, c) == 1 { return nil }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(PQgetvalue(handle, r, c)!), count: Int(PQgetlength(handle, r, c)))
    }

    /// The raw value bytes as sent by the server (text or binary representation), nil for NULL.
    public func bytes(row: Int, column: Int) -> [UInt8]? {
        withValueBytes(row: row, column: column) { $0.map { Array($0) } }
    }

    /// The value as a string (meaningful for text-format columns), nil for NULL and for a row or
    /// column out of range.
    public func string(row: Int, column: Int) -> String? {
        // Total: a row or column the server did not send reads as absent, like NULL.
        guard row >= 0, row < rowCount, column >= 0, column < columns.count else { return nil }
        return withValueBytes(row: row, column: column) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// A `bytea` value's bytes, decoding the text format's `\x` hex form when needed; nil for NULL.
    public func bytea(row: Int, column: Int) throws -> [UInt8]? {
        try withValueBytes(row: row, column: column) { raw -> [UInt8]? in
            guard let raw else { return nil }
            if columns[column].format == .binary { return Array(raw) }
            return try ByteaText.decode(raw)
        }
    }

    /// Row `index`.
    public subscript(index: Int) -> PostgresRow { PostgresRow(result: self, index: index) }

    /// All rows, as lightweight views into this result.
    public var rows: [PostgresRow] { (0..<rowCount).map { self[$0] } }
}

/// A view of one row of a `PostgresResult`.
public struct PostgresRow {
    public let result: PostgresResult
    public let index: Int

    /// The value of `column` as a string; nil for NULL.
    public func string(_ column: Int) -> String? { result.string(row: index, column: column) }
    /// The value of the column named `name` as a string; nil for NULL or an unknown column.
    public func string(_ name: String) -> String? {
        result.columnIndex(named: name).flatMap { result.string(row: index, column: $0) }
    }
    /// Raw bytes of `column`; nil for NULL.
    public func bytes(_ column: Int) -> [UInt8]? { result.bytes(row: index, column: column) }
    /// True when `column` is NULL.
    public func isNull(_ column: Int) -> Bool { result.isNull(row: index, column: column) }
}

/// PostgreSQL's `bytea` text output (`\x` followed by hex digits).
public enum ByteaText {
    /// Decodes `\x…` hex output.
    public static func decode(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: try decodedByteCount(raw)) { buffer, initialized in
            initialized = try decode(raw, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// The number of bytes `raw` (`\x…` hex output) decodes to.
    public static func decodedByteCount(_ raw: UnsafeRawBufferPointer) throws -> Int {
        guard raw.count >= 2, raw[0] == UInt8(ascii: "\\"), raw[1] == UInt8(ascii: "x"), raw.count % 2 == 0 else {
            throw PostgresError(.invalidUse, message: "bytea value is not in hex format (set bytea_output = 'hex')")
        }
        return (raw.count - 2) / 2
    }

    /// Decodes `\x…` hex output into `output` (at least `decodedByteCount(raw)` bytes).
    /// - Returns: the number of bytes written.
    public static func decode(_ raw: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = try decodedByteCount(raw)
        guard output.count >= count else { throw PostgresError(.invalidUse, message: "bytea output buffer too small") }
        guard count > 0 else { return 0 }
        let input = raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + 2
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        // Branch-free (the compiler vectorises it): a digit's value is its low nibble, plus 9 for
        // a letter (bit 6 set). Validity is accumulated and checked once at the end.
        @inline(__always) func nibble(_ c: UInt8) -> UInt8 { (c & 0x0f) &+ 9 &* (c >> 6) }
        @inline(__always) func notHex(_ c: UInt8) -> UInt8 {
            let notDigit: UInt8 = c &- 48 < 10 ? 0 : 1
            let notLetter: UInt8 = (c | 0x20) &- 97 < 6 ? 0 : 1
            return notDigit & notLetter
        }
        var invalid: UInt8 = 0
        for o in 0..<count {
            let hi = input[2 &* o], lo = input[2 &* o &+ 1]
            invalid |= notHex(hi) | notHex(lo)
            out[o] = nibble(hi) << 4 | nibble(lo)
        }
        guard invalid == 0 else { throw PostgresError(.invalidUse, message: "bytea value has a non-hex digit") }
        return count
    }

    /// Encodes bytes as `\x…` hex text (for literals and text-format COPY).
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(2 + 2 * bytes.underestimatedCount)
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "x"))
        for b in bytes {
            out.append(hexDigit(b >> 4))
            out.append(hexDigit(b & 0x0f))
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ (nibble &- 10)
    }
}
