/// The PostgreSQL type of a plaintext sealed in the compact format, recorded (and authenticated)
/// in the envelope so that a read gives back the original type.
///
/// MRKCrypto treats the plaintext bytes as opaque: the proxy layer decides their encoding
/// (PostgreSQL text or binary wire format). The raw value is the tag byte stored on disk and
/// must never change for an existing case.
public enum PlaintextType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case text = 1
    case int2 = 2
    case int4 = 3
    case int8 = 4
    case numeric = 5
    case float4 = 6
    case float8 = 7
    case bool = 8
    case date = 9
    /// A `timestamp` as microseconds since 1970 (written before tag 16; read only: it cannot
    /// hold PostgreSQL's latest timestamps).
    case timestampSince1970 = 10
    /// A `timestamptz` as microseconds since 1970 (written before tag 17; read only).
    case timestamptzSince1970 = 11
    case uuid = 12
    case bytea = 13
    case json = 14
    case jsonb = 15
    /// A `timestamp` as microseconds since 2000-01-01, PostgreSQL's own representation.
    case timestamp = 16
    /// A `timestamptz` as microseconds since 2000-01-01 UTC.
    case timestamptz = 17

    /// The PostgreSQL type name.
    public var description: String {
        switch self {
        case .text: "text"
        case .int2: "int2"
        case .int4: "int4"
        case .int8: "int8"
        case .numeric: "numeric"
        case .float4: "float4"
        case .float8: "float8"
        case .bool: "bool"
        case .date: "date"
        case .timestamp, .timestampSince1970: "timestamp"
        case .timestamptz, .timestamptzSince1970: "timestamptz"
        case .uuid: "uuid"
        case .bytea: "bytea"
        case .json: "json"
        case .jsonb: "jsonb"
        }
    }
}
