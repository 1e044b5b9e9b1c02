internal import CLibPQ

extension PostgresConnection {
    /// Runs `COPY … FROM STDIN` and streams the data that `body` writes.
    ///
    /// Data is buffered and sent in 64 KiB chunks. If `body` throws, the COPY is aborted
    /// (nothing is loaded) and the error is rethrown.
    ///
    /// - Parameter sql: a `COPY table [(columns)] FROM STDIN [WITH (FORMAT binary|text|csv)]` statement.
    /// - Returns: the number of rows the server loaded.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (inout CopyInWriter) throws -> Void) throws -> Int {
        let start = try checked(PQexec(handle, sql), allowCopyIn: true)
        guard PQresultStatus(start.handle) == PGRES_COPY_IN else {
            throw PostgresError(.invalidUse, message: "copyIn needs a COPY … FROM STDIN statement")
        }
        let binary = PQbinaryTuples(start.handle) == 1
        var writer = CopyInWriter(connection: self, binary: binary)
        do {
            if binary { writer.writeBinaryHeader() }
            try body(&writer)
            if binary { writer.writeBinaryTrailer() }
            try writer.flush()
        } catch {
            _ = PQputCopyEnd(handle, "aborted by client")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
        var loaded = 0
        var failure: Error?
        while let raw = PQgetResult(handle) {
            do {
                let result = try checked(raw)
                loaded = result.affectedRows ?? loaded
            } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        return loaded
    }

    /// Starts `COPY … FROM STDIN` for a caller that pushes rows as they come (the wire proxy,
    /// as its client sends them): write with the writer, then `finishCopyIn` or `abortCopyIn`.
    public func beginCopyIn(_ sql: String) throws -> CopyInWriter {
        let start = try checked(PQexec(handle, sql), allowCopyIn: true)
        guard PQresultStatus(start.handle) == PGRES_COPY_IN else {
            throw PostgresError(.invalidUse, message: "beginCopyIn needs a COPY … FROM STDIN statement")
        }
        var writer = CopyInWriter(connection: self, binary: PQbinaryTuples(start.handle) == 1)
        if writer.isBinary { writer.writeBinaryHeader() }
        return writer
    }

    /// Ends a COPY begun with `beginCopyIn`: the server loads the rows. Returns how many.
    public func finishCopyIn(_ writer: inout CopyInWriter) throws -> Int {
        if writer.isBinary { writer.writeBinaryTrailer() }
        do { try writer.flush() } catch {
            abortCopyIn(&writer, reason: "the COPY data could not be sent")
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
        var loaded = 0
        var failure: Error?
        while let raw = PQgetResult(handle) {
            do {
                let result = try checked(raw)
                loaded = result.affectedRows ?? loaded
            } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        return loaded
    }

    /// Abandons a COPY begun with `beginCopyIn`: nothing is loaded.
    public func abortCopyIn(_ writer: inout CopyInWriter, reason: String) {
        _ = PQputCopyEnd(handle, reason)
        drainResults()
    }

    func putCopyData(_ bytes: [UInt8]) throws {
        let ok = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        }
        guard ok == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
    }
}

/// Writes rows into a running `COPY … FROM STDIN`.
///
/// For `FORMAT binary`, use `appendBinaryRow`, whose fields are each value's binary wire
/// representation (see `PostgresBinary`). For text format, `appendTextRow` escapes values.
public struct CopyInWriter {
    private let connection: PostgresConnection
    /// Whether the COPY uses the binary format.
    public let isBinary: Bool
    private var buffer: [UInt8] = []
    private static let chunkSize = 64 * 1024

    init(connection: PostgresConnection, binary: Bool) {
        self.connection = connection
        self.isBinary = binary
        buffer.reserveCapacity(Self.chunkSize + 1024)
    }

    /// Appends one row in binary COPY format; each field is its binary representation, nil for NULL.
    public mutating func appendBinaryRow(_ fields: [[UInt8]?]) throws {
        precondition(isBinary, "appendBinaryRow needs COPY … WITH (FORMAT binary)")
        appendInt16(Int16(fields.count))
        for field in fields {
            if let field {
                appendInt32(Int32(field.count))
                buffer.append(contentsOf: field)
            } else {
                appendInt32(-1)
            }
        }
        try flushIfFull()
    }

    /// Appends one row in text COPY format (tab-separated, `\N` for NULL, backslash escapes).
    public mutating func appendTextRow(_ fields: [String?]) throws {
        precondition(!isBinary, "appendTextRow needs a text-format COPY")
        for (i, field) in fields.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: "\t")) }
            guard let field else { buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")]); continue }
            for byte in field.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\t"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case UInt8(ascii: "\n"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(UInt8(ascii: "\n"))
        try flushIfFull()
    }

    /// Appends raw COPY data (the caller is responsible for its format).
    public mutating func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        try flushIfFull()
    }

    mutating func writeBinaryHeader() {
        // Signature "PGCOPY\n\377\r\n\0", flags (int32 0), header extension length (int32 0).
        buffer.append(contentsOf: [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00])
        appendInt32(0)
        appendInt32(0)
    }

    mutating func writeBinaryTrailer() { appendInt16(-1) }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try connection.putCopyData(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    private mutating func flushIfFull() throws {
        if buffer.count >= Self.chunkSize { try flush() }
    }

    private mutating func appendInt16(_ value: Int16) {
        let v = UInt16(bitPattern: value)
        buffer.append(UInt8(v >> 8)); buffer.append(UInt8(v & 0xff))
    }

    private mutating func appendInt32(_ value: Int32) {
        let v = UInt32(bitPattern: value)
        buffer.append(UInt8(v >> 24)); buffer.append(UInt8((v >> 16) & 0xff))
        buffer.append(UInt8((v >> 8) & 0xff)); buffer.append(UInt8(v & 0xff))
    }
}

/// Binary wire representations of common types, for binary parameters and binary COPY.
public enum PostgresBinary {
    /// `int8`, big-endian.
    public static func int8(_ value: Int64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    /// `int4`, big-endian.
    public static func int4(_ value: Int32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    /// `text`/`varchar`: UTF-8 bytes.
    public static func text(_ value: String) -> [UInt8] { Array(value.utf8) }
}
