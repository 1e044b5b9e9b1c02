import MRKCrypto
import MRKProxy
import MRKSQL
import MRKWireProtocol
import NIOCore

/// The wire proxy's parsers: the first byte chooses the surface, the rest is its input.
enum WireHarness {
    static let copyTable: EncryptedTable = {
        let name = QualifiedName(schema: "public", name: "customers")
        return EncryptedTable(name: name, rowIdentity: "id", columns: [EncryptedColumn(table: name, name: "ssn", type: .text, search: .equality)])
    }()

    static let verifier = SCRAMVerifier(password: "pencil", salt: Array("saltsaltsaltsalt".utf8), iterations: 2)

    static func run(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let input = Array(data.dropFirst())
        switch selector % 6 {
        case 0:
            // A stream of typed messages: decode until one is incomplete or invalid.
            var buffer = ByteBuffer(bytes: input)
            while let message = try? FrontendCodec.decode(&buffer, maxLength: 1 << 20) {
                if case .bind(_, _, let formats, let values, _) = message {
                    require(formats.count <= 1 || formats.count == values.count, "Bind formats accepted with the wrong count")
                }
            }
        case 1:
            var buffer = ByteBuffer(bytes: input)
            while (try? FrontendCodec.decodeStartup(&buffer)).flatMap({ $0 }) != nil {}
        case 2:
            // A SCRAM exchange: the client-first, then the client-final half of the input.
            var server = SCRAMServer(verifier: verifier, serverNonce: "nonce")
            let split = input.firstIndex(of: 0) ?? input.count
            _ = try? SCRAMServer.initialResponse(input)
            _ = try? server.receiveClientFirst(Array(input[..<split]))
            _ = try? server.receiveClientFinal(Array(input[min(split + 1, input.count)...]))
        case 3, 4:
            // COPY data in text (3) or CSV (4), fed in two chunks.
            let copy = SQLCopyStatement(table: copyTable, columns: ["id", "name", "ssn"], format: selector % 6 == 3 ? .text : .csv,
                                        delimiter: selector % 6 == 3 ? 9 : UInt8(ascii: ","), null: selector % 6 == 3 ? "\\N" : "",
                                        header: selector & 0x40 != 0, quote: UInt8(ascii: "\""), escape: UInt8(ascii: "\""))
            var parser = CopyRowParser(copy)
            let half = input.count / 2
            parser.append(Array(input[..<half]))
            while let row = try? parser.nextRow() { require(row.count == 3, "a COPY row with \(row.count) fields") }
            parser.append(Array(input[half...]))
            while let row = try? parser.nextRow() { require(row.count == 3, "a COPY row with \(row.count) fields") }
            if let row = try? parser.finish() { require(row.count == 3, "a final COPY row with \(row.count) fields") }
        default:
            // A binary parameter for each plaintext type; what decodes must encode back to itself.
            let types = ColumnValueType.allCases
            let type = types[Int(selector / 6) % types.count]
            if let value = try? WireValueCodec.value(binary: input, as: type, column: "fuzz"),
               let again = try? WireValueCodec.binary(value, as: type) {
                let stable = (try? WireValueCodec.value(binary: again, as: type, column: "fuzz")) == value
                require(stable || type == .float4 || type == .float8, "binary \(type) does not read back to itself")
            }
        }
    }

    static var seeds: [[UInt8]] {
        func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
            let length = UInt32(body.count + 4)
            return [type.asciiValue!, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)] + body
        }
        let query = message("Q", Array("SELECT id, ssn FROM customers WHERE ssn = '1'\0".utf8))
        let parse = message("P", Array("s1\0SELECT $1\0".utf8) + [0, 1, 0, 0, 0, 25])
        let bind = message("B", Array("\0s1\0".utf8) + [0, 1, 0, 1, 0, 1, 0, 0, 0, 3] + Array("abc".utf8) + [0, 1, 0, 1])
        let execute = message("E", [0, 0, 0, 0, 0])
        var startup: [UInt8] = [0, 0, 0, 0, 0, 3, 0, 0] + Array("user\0app\0database\0app\0\0".utf8)
        startup[3] = UInt8(startup.count)
        return [
            [0] + query + parse + bind + message("D", Array("Ps1\0".utf8)) + execute + message("S", []),
            [1] + startup,
            [1, 0, 0, 0, 8, 4, 210, 22, 47],
            [2] + Array("SCRAM-SHA-256\0".utf8) + [0, 0, 0, 24] + Array("n,,n=,r=rOprNGfwEbeRWgbN\0c=biws,r=rOprNGfwEbeRWgbNnonce,p=AAAA".utf8),
            [3] + Array("1\tAda\t078-05-1120\n2\t\\N\t\\x41\\101\n\\.\n".utf8),
            [4] + Array("1,\"Ada, Countess\",\"a \"\"quote\"\"\"\n2,,\n".utf8),
            [5 + 6 * 4] + [0, 1, 0, 0, 0, 0, 0, 2, 0, 7],  // numeric 7.00
        ]
    }
}
