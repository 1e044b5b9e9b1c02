import Foundation
import MRKCrypto
import MRKProxy
import MRKSQL
@testable import MRKWire
@testable import MRKWireProtocol
import NIOCore
import Testing

@Suite struct FrontendCodecTests {
    func message(_ type: Character, _ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(type.asciiValue!)
        buffer.writeInteger(Int32(body.count + 4))
        buffer.writeBytes(body)
        return buffer
    }

    @Test func startupSSLRequestCancel() throws {
        var startup = ByteBuffer()
        startup.writeInteger(Int32(0))
        startup.writeInteger(FrontendCodec.protocolVersion3)
        startup.writeBytes(Array("user\0app\0database\0db\0\0".utf8))
        startup.setInteger(Int32(startup.readableBytes), at: 0)
        var whole = startup
        #expect(try FrontendCodec.decodeStartup(&whole) == .startup(protocolVersion: FrontendCodec.protocolVersion3,
                                                                    parameters: ["user": "app", "database": "db"]))
        var partial = startup.getSlice(at: 0, length: 10)!
        #expect(try FrontendCodec.decodeStartup(&partial) == nil, "needs more bytes")
        var ssl = ByteBuffer(bytes: [0, 0, 0, 8, 4, 210, 22, 47])
        #expect(try FrontendCodec.decodeStartup(&ssl) == .sslRequest)
        var cancel = ByteBuffer(bytes: [0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 7, 0, 0, 0, 9])
        #expect(try FrontendCodec.decodeStartup(&cancel) == .cancel(processID: 7, secretKey: 9))
        var huge = ByteBuffer(bytes: [0, 1, 0, 0, 0, 3, 0, 0])
        #expect(throws: ProtocolViolation.self) { try FrontendCodec.decodeStartup(&huge) }
        var oldProtocol = ByteBuffer(bytes: [0, 0, 0, 9, 0, 2, 0, 0, 0])
        #expect(throws: ProtocolViolation.self) { try FrontendCodec.decodeStartup(&oldProtocol) }
    }

    @Test func extendedQueryMessages() throws {
        var stream = message("P", Array("s1\0SELECT $1, $2\0".utf8) + [0, 2, 0, 0, 0, 25, 0, 0, 0, 0])
        var bind = message("B", Array("p1\0s1\0".utf8) + [0, 1, 0, 1, 0, 2, 0, 0, 0, 2, 0x41, 0x42, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 0, 0])
        stream.writeBuffer(&bind)
        var describe = message("D", Array("Pp1\0".utf8))
        stream.writeBuffer(&describe)
        var execute = message("E", Array("p1\0".utf8) + [0, 0, 0, 10])
        stream.writeBuffer(&execute)
        var sync = message("S", [])
        stream.writeBuffer(&sync)
        var decoded: [FrontendMessage] = []
        while let next = try FrontendCodec.decode(&stream, maxLength: 1 << 20) { decoded.append(next) }
        #expect(decoded == [
            .parse(name: "s1", sql: "SELECT $1, $2", parameterTypes: [25, 0]),
            .bind(portal: "p1", statement: "s1", parameterFormats: [1], parameters: [[0x41, 0x42], nil], resultFormats: [0]),
            .describe(kind: UInt8(ascii: "P"), name: "p1"),
            .execute(portal: "p1", maxRows: 10),
            .sync,
        ])
    }

    @Test("malformed messages are protocol violations, never traps", arguments: [
        ("a length below 4", [UInt8(ascii: "Q"), 0, 0, 0, 3]),
        ("a length past the limit", [UInt8(ascii: "Q"), 0x7F, 0xFF, 0xFF, 0xFF]),
        ("a string without its NUL", [UInt8(ascii: "Q"), 0, 0, 0, 6, 0x41, 0x42]),
        ("invalid UTF-8", [UInt8(ascii: "Q"), 0, 0, 0, 7, 0x41, 0xFF, 0]),
        ("trailing bytes", [UInt8(ascii: "S"), 0, 0, 0, 5, 0]),
        ("an unknown message type", [UInt8(ascii: "?"), 0, 0, 0, 4]),
        ("a bad describe subtype", [UInt8(ascii: "D"), 0, 0, 0, 6, UInt8(ascii: "X"), 0]),
        ("a negative value length", [UInt8(ascii: "B"), 0, 0, 0, 18, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 0, 0]),
        ("an unknown format code", [UInt8(ascii: "B"), 0, 0, 0, 14, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0]),
    ] as [(String, [UInt8])])
    func malformed(_ what: String, _ bytes: [UInt8]) {
        var buffer = ByteBuffer(bytes: bytes)
        #expect(throws: ProtocolViolation.self, "\(what)") { try FrontendCodec.decode(&buffer, maxLength: 1 << 20) }
    }
}

@Suite struct SCRAMTests {
    /// RFC 7677's example exchange, with its server nonce.
    @Test func rfc7677Exchange() throws {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let verifier = SCRAMVerifier(password: "pencil", salt: salt, iterations: 4096)
        #expect(SCRAMVerifier(verifier.text) == verifier, "the text form parses back")
        var server = SCRAMServer(verifier: verifier, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        let first = try server.receiveClientFirst(Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        #expect(String(decoding: first, as: UTF8.self) == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = try server.receiveClientFinal(Array(
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8))
        #expect(String(decoding: final, as: UTF8.self) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    @Test func wrongProofUnknownUserAndChannelBindingAreRefused() throws {
        let verifier = SCRAMVerifier(password: "pencil", iterations: 4096)
        var server = SCRAMServer(verifier: verifier, serverNonce: "SN")
        _ = try server.receiveClientFirst(Array("n,,n=,r=CN".utf8))
        #expect(throws: SCRAMServer.Failure.self) {
            try server.receiveClientFinal(Array("c=biws,r=CNSN,p=\(Data(repeating: 7, count: 32).base64EncodedString())".utf8))
        }
        var mock = SCRAMServer(verifier: nil, serverNonce: "SN")
        let first = String(decoding: try mock.receiveClientFirst(Array("n,,n=,r=CN".utf8)), as: UTF8.self)
        #expect(first.hasPrefix("r=CNSN,s=") && first.hasSuffix(",i=4096"), "an unknown user gets a plausible exchange")
        var binding = SCRAMServer(verifier: verifier)
        #expect(throws: SCRAMServer.Failure.self) { try binding.receiveClientFirst(Array("p=tls-server-end-point,,n=,r=CN".utf8)) }
        var nonce = SCRAMServer(verifier: verifier, serverNonce: "SN")
        _ = try nonce.receiveClientFirst(Array("n,,n=,r=CN".utf8))
        #expect(throws: SCRAMServer.Failure.self) {
            try nonce.receiveClientFinal(Array("c=biws,r=OTHER,p=\(Data(repeating: 7, count: 32).base64EncodedString())".utf8))
        }
        #expect(SCRAMVerifier("md5abcdef") == nil)
        #expect(SCRAMVerifier("SCRAM-SHA-256$4096:c2FsdA==$short:short") == nil)
    }
}

@Suite struct CopyRowParserTests {
    static let table: EncryptedTable = {
        let name = QualifiedName(schema: "public", name: "t")
        return EncryptedTable(name: name, rowIdentity: "id", columns: [EncryptedColumn(table: name, name: "ssn", type: .text)])
    }()

    func rows(_ data: String, format: SQLCopyStatement.Format, header: Bool = false, chunk: Int = 3) throws -> [[String?]] {
        let copy = SQLCopyStatement(table: Self.table, columns: ["id", "name", "ssn"], format: format,
                                    delimiter: format == .text ? 9 : UInt8(ascii: ","), null: format == .text ? "\\N" : "",
                                    header: header, quote: UInt8(ascii: "\""), escape: UInt8(ascii: "\""))
        var parser = CopyRowParser(copy)
        var rows: [[String?]] = []
        let bytes = Array(data.utf8)
        // Fed in small chunks: rows split across CopyData messages.
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            parser.append(Array(bytes[start..<min(start + chunk, bytes.count)]))
            while let row = try parser.nextRow() { rows.append(row) }
        }
        if let row = try parser.finish() { rows.append(row) }
        return rows
    }

    @Test func textFormat() throws {
        #expect(try rows("1\tAda\t078-05-1120\n2\t\\N\tline\\nbreak\\ttab\\\\\n3\tx\t\\101\\x42\n\\.\n", format: .text) == [
            ["1", "Ada", "078-05-1120"], ["2", nil, "line\nbreak\ttab\\"], ["3", "x", "AB"],
        ])
        #expect(try rows("4\ty\tlast line without newline", format: .text) == [["4", "y", "last line without newline"]])
        #expect(try rows("5\tz\tcrlf\r\n", format: .text) == [["5", "z", "crlf"]])
        #expect(throws: CopyRowParser.Failure.self) { try rows("1\tonly two\n", format: .text) }
        #expect(throws: CopyRowParser.Failure.self) { try rows("1\ta\tb\tc\n", format: .text) }
        #expect(throws: CopyRowParser.Failure.self, "invalid UTF-8") { try rows("1\ta\t\\377\n", format: .text) }
    }

    @Test func csvFormat() throws {
        #expect(try rows("id,name,ssn\n1,\"Ada, Countess\",\"a \"\"quote\"\"\"\n2,,\"\"\n3,\"multi\nline\",x\n", format: .csv, header: true) == [
            ["1", "Ada, Countess", "a \"quote\""], ["2", nil, ""], ["3", "multi\nline", "x"],
        ])
        #expect(throws: CopyRowParser.Failure.self) { try rows("1,\"unterminated\n", format: .csv) }
    }
}

@Suite struct WireValueTests {
    /// Expected bytes are PostgreSQL 15's `numeric_send` of each value.
    @Test("numeric's binary form", arguments: [
        ("0", [0, 0, 0, 0, 0, 0, 0, 0]),
        ("1.50", [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]),
        ("-12345.6789", [0, 3, 0, 1, 0x40, 0, 0, 4, 0, 1, 0x09, 0x29, 0x1A, 0x85]),
        ("10000", [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]),
        ("0.0001", [0, 1, 0xFF, 0xFF, 0, 0, 0, 4, 0, 1]),
        ("NaN", [0, 0, 0, 0, 0xC0, 0, 0, 0]),
        ("-Infinity", [0, 0, 0, 0, 0xF0, 0, 0, 0x20]),
        ("1e-20", [0, 1, 0xFF, 0xFB, 0, 0, 0, 0x14, 0, 1]),
    ] as [(String, [UInt8])])
    func numericBinary(_ text: String, _ expected: [UInt8]) throws {
        let value = SQLValue.numeric(try #require(SQLNumeric(text)))
        #expect(try WireValueCodec.binary(value, as: .numeric) == expected)
        #expect(try WireValueCodec.value(binary: expected, as: .numeric, column: "n") == value)
    }

    @Test func binaryRoundTripsOfEveryType() throws {
        let values: [(ColumnValueType, SQLValue)] = [
            (.text, .text("héllo")), (.int2, .int(-32768)), (.int4, .int(2_147_483_647)), (.int8, .int(Int.min)), (.bool, .bool(true)),
            (.float8, .double(-0.0)), (.float4, .float(1.5)), (.uuid, .uuid(UUID())), (.bytea, .bytes([0, 1, 255])), (.json, .json("{\"a\": 1}")),
            (.jsonb, .json("{\"a\": 1}")), (.date, .date(try #require(SQLDate("1815-12-10")))), (.date, .date(.infinity)),
            (.timestamp, .timestamp(.negativeInfinity)), (.numeric, .numeric(try #require(SQLNumeric("123456789012345678901234567890.5")))),
        ]
        for (type, value) in values {
            let bytes = try WireValueCodec.binary(value, as: type)
            #expect(try WireValueCodec.value(binary: bytes, as: type, column: "c") == value, "\(type)")
        }
        #expect(throws: ProxyError.self) { try WireValueCodec.value(binary: [1, 2, 3], as: .int8, column: "c") }
        #expect(throws: ProxyError.self) { try WireValueCodec.value(binary: [0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10], as: .numeric, column: "c") }
    }

    @Test func startupSettingsAreAllowlisted() throws {
        let options = try ConnectionHandler.parseOptions("-c search_path=app -c statement_timeout=5s --application-name=x -csearch_path=b\\ c")
        #expect(options.map(\.0) == ["search_path", "statement_timeout", "application_name", "search_path"])
        #expect(options.last?.1 == "b c")
        #expect(ConnectionHandler.escapeOption("a b\\c") == "a\\ b\\\\c")
    }
}
