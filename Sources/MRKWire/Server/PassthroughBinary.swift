import MRKPostgres
import MRKProxy
import MRKWireProtocol
import MRKSQL

/// The binary form of a plain column's text value, for a client that asks for binary results of
/// some columns and text of others (the server is asked for text then). Only for the common
/// types; nil for others (the proxy then says so).
enum PassthroughBinary {
    static func binary(fromText bytes: UnsafeRawBufferPointer, type oid: UInt32) -> [UInt8]? {
        switch oid {
        case 25, 1043, 19, 1042, 114: return Array(bytes)  // text, varchar, name, bpchar, json
        case 3802: return [1] + Array(bytes)                // jsonb
        default: break
        }
        let types: [UInt32: ColumnValueType] = [16: .bool, 17: .bytea, 20: .int8, 21: .int2, 23: .int4, 700: .float4, 701: .float8,
                                               1082: .date, 1114: .timestamp, 1184: .timestamptz, 1700: .numeric, 2950: .uuid]
        guard let type = types[oid], let text = String(validating: bytes, as: UTF8.self) else { return nil }
        let value = SQLValue(postgresText: text, oid: PostgresOID(oid))
        if case .text = value { return nil }  // did not read as its type
        return try? WireValueCodec.binary(value, as: type)
    }
}
