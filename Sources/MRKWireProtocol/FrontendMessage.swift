import NIOCore

/// The first message on a connection (protocol 3.0 "untyped" messages).
package enum StartupMessage: Equatable {
    /// `StartupMessage`: protocol version and the session parameters (`user`, `database`, …).
    case startup(protocolVersion: Int32, parameters: [String: String])
    /// `SSLRequest`: the client asks for TLS before the startup message.
    case sslRequest
    /// `GSSENCRequest`: GSSAPI encryption (declined).
    case gssEncryptionRequest
    /// `CancelRequest`: cancel the statement running in the session with this key.
    case cancel(processID: Int32, secretKey: Int32)
}

/// A message from a client after startup.
package enum FrontendMessage: Equatable {
    case query(String)
    case parse(name: String, sql: String, parameterTypes: [UInt32])
    case bind(portal: String, statement: String, parameterFormats: [Int16], parameters: [[UInt8]?], resultFormats: [Int16])
    /// `kind` is `S` (statement) or `P` (portal).
    case describe(kind: UInt8, name: String)
    case execute(portal: String, maxRows: Int32)
    case sync
    case flush
    case close(kind: UInt8, name: String)
    case terminate
    case copyData([UInt8])
    case copyDone
    case copyFail(String)
    /// `p`: a password, SASLInitialResponse or SASLResponse; read by the authentication step.
    case authenticationResponse([UInt8])
    /// `F`: the fast-path function call interface (refused).
    case functionCall
}

/// A client broke the protocol; the connection ends with a FATAL error carrying `message`.
package struct ProtocolViolation: Error, Equatable, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// Decodes frontend messages. Total: any bytes give a message, a need for more bytes, or a
/// `ProtocolViolation` — never a trap (the `wire` fuzz harness).
package enum FrontendCodec {
    /// PostgreSQL's limit for a startup packet.
    package static let maxStartupLength = 10_000
    package static let protocolVersion3: Int32 = 196_608
    static let sslRequestCode: Int32 = 80_877_103
    static let gssRequestCode: Int32 = 80_877_104
    static let cancelRequestCode: Int32 = 80_877_102

    /// One startup-phase message from the front of `buffer`, or nil when more bytes are needed.
    package static func decodeStartup(_ buffer: inout ByteBuffer) throws(ProtocolViolation) -> StartupMessage? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard length >= 8, length <= maxStartupLength else { throw ProtocolViolation("invalid length of startup packet") }
        guard buffer.readableBytes >= Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var body = buffer.readSlice(length: Int(length) - 4)!
        let code = body.readInteger(as: Int32.self)!
        switch code {
        case sslRequestCode:
            guard body.readableBytes == 0 else { throw ProtocolViolation("invalid SSLRequest") }
            return .sslRequest
        case gssRequestCode:
            guard body.readableBytes == 0 else { throw ProtocolViolation("invalid GSSENCRequest") }
            return .gssEncryptionRequest
        case cancelRequestCode:
            guard let pid = body.readInteger(as: Int32.self), let key = body.readInteger(as: Int32.self), body.readableBytes == 0 else {
                throw ProtocolViolation("invalid CancelRequest")
            }
            return .cancel(processID: pid, secretKey: key)
        default:
            guard code >> 16 == 3 else {
                throw ProtocolViolation("unsupported frontend protocol \(code >> 16).\(code & 0xFFFF): server supports 3.0")
            }
            var parameters: [String: String] = [:]
            while true {
                let name = try readString(&body, "startup packet")
                if name.isEmpty { break }
                let value = try readString(&body, "startup packet")
                parameters[name] = value
            }
            guard body.readableBytes == 0 else { throw ProtocolViolation("invalid startup packet layout: expected terminator as last byte") }
            return .startup(protocolVersion: code, parameters: parameters)
        }
    }

    /// One typed message from the front of `buffer`, or nil when more bytes are needed.
    ///
    /// - Parameter maxLength: longer messages are refused (PostgreSQL allows up to 1 GB; a
    ///   proxy that buffers a message caps it lower).
    package static func decode(_ buffer: inout ByteBuffer, maxLength: Int) throws(ProtocolViolation) -> FrontendMessage? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: Int32.self) else { return nil }
        guard length >= 4, Int(length) <= maxLength else { throw ProtocolViolation("invalid message length \(length)") }
        guard buffer.readableBytes >= Int(length) + 1 else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        var body = buffer.readSlice(length: Int(length) - 4)!
        return try decodeBody(type: type, &body)
    }

    /// The message of `type` whose body is `body` (all of it).
    package static func decodeBody(type: UInt8, _ body: inout ByteBuffer) throws(ProtocolViolation) -> FrontendMessage {
        let message: FrontendMessage
        switch type {
        case UInt8(ascii: "Q"):
            message = .query(try readString(&body, "Query"))
        case UInt8(ascii: "P"):
            let name = try readString(&body, "Parse")
            let sql = try readString(&body, "Parse")
            let count = try readCount(&body, "Parse")
            var types: [UInt32] = []
            types.reserveCapacity(count)
            for _ in 0..<count {
                guard let oid = body.readInteger(as: UInt32.self) else { throw ProtocolViolation("invalid Parse message") }
                types.append(oid)
            }
            message = .parse(name: name, sql: sql, parameterTypes: types)
        case UInt8(ascii: "B"):
            let portal = try readString(&body, "Bind")
            let statement = try readString(&body, "Bind")
            let formats = try readInt16s(&body, "Bind")
            let count = try readCount(&body, "Bind")
            var values: [[UInt8]?] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                guard let length = body.readInteger(as: Int32.self) else { throw ProtocolViolation("invalid Bind message") }
                if length == -1 { values.append(nil); continue }
                guard length >= 0, let bytes = body.readBytes(length: Int(length)) else { throw ProtocolViolation("invalid Bind message") }
                values.append(bytes)
            }
            let resultFormats = try readInt16s(&body, "Bind")
            for format in formats + resultFormats where format != 0 && format != 1 {
                throw ProtocolViolation("unsupported format code: \(format)")
            }
            guard formats.count <= 1 || formats.count == values.count else {
                throw ProtocolViolation("bind message has \(formats.count) parameter formats but \(values.count) parameters")
            }
            message = .bind(portal: portal, statement: statement, parameterFormats: formats, parameters: values, resultFormats: resultFormats)
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            guard let kind = body.readInteger(as: UInt8.self), kind == UInt8(ascii: "S") || kind == UInt8(ascii: "P") else {
                throw ProtocolViolation("invalid \(type == UInt8(ascii: "D") ? "DESCRIBE" : "CLOSE") message subtype")
            }
            let name = try readString(&body, "Describe")
            message = type == UInt8(ascii: "D") ? .describe(kind: kind, name: name) : .close(kind: kind, name: name)
        case UInt8(ascii: "E"):
            let portal = try readString(&body, "Execute")
            guard let rows = body.readInteger(as: Int32.self) else { throw ProtocolViolation("invalid Execute message") }
            message = .execute(portal: portal, maxRows: rows)
        case UInt8(ascii: "S"): message = .sync
        case UInt8(ascii: "H"): message = .flush
        case UInt8(ascii: "X"): message = .terminate
        case UInt8(ascii: "d"):
            message = .copyData(body.readBytes(length: body.readableBytes) ?? [])
            return message
        case UInt8(ascii: "c"): message = .copyDone
        case UInt8(ascii: "f"): message = .copyFail(try readString(&body, "CopyFail"))
        case UInt8(ascii: "p"):
            message = .authenticationResponse(body.readBytes(length: body.readableBytes) ?? [])
            return message
        case UInt8(ascii: "F"):
            body.moveReaderIndex(to: body.writerIndex)
            message = .functionCall
        default:
            throw ProtocolViolation("invalid frontend message type \(type)")
        }
        guard body.readableBytes == 0 else { throw ProtocolViolation("invalid message format") }
        return message
    }

    /// A NUL-terminated UTF-8 string.
    static func readString(_ body: inout ByteBuffer, _ what: String) throws(ProtocolViolation) -> String {
        guard let end = body.readableBytesView.firstIndex(of: 0) else { throw ProtocolViolation("invalid string in \(what) message") }
        let length = end - body.readableBytesView.startIndex
        let bytes = body.readBytes(length: length)!
        body.moveReaderIndex(forwardBy: 1)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw ProtocolViolation("invalid byte sequence for encoding \"UTF8\" in \(what) message")
        }
        return string
    }

    static func readCount(_ body: inout ByteBuffer, _ what: String) throws(ProtocolViolation) -> Int {
        guard let count = body.readInteger(as: Int16.self), count >= 0 else { throw ProtocolViolation("invalid \(what) message") }
        return Int(count)
    }

    static func readInt16s(_ body: inout ByteBuffer, _ what: String) throws(ProtocolViolation) -> [Int16] {
        let count = try readCount(&body, what)
        var values: [Int16] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            guard let value = body.readInteger(as: Int16.self) else { throw ProtocolViolation("invalid \(what) message") }
            values.append(value)
        }
        return values
    }
}
