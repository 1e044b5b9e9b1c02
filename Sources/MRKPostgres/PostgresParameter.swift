/// A PostgreSQL type OID.
public struct PostgresOID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }

    /// Let the server infer the type from context.
    public static let unspecified = PostgresOID(0)
    public static let bool = PostgresOID(16)
    public static let bytea = PostgresOID(17)
    public static let int8 = PostgresOID(20)
    public static let int2 = PostgresOID(21)
    public static let int4 = PostgresOID(23)
    public static let text = PostgresOID(25)
    public static let oid = PostgresOID(26)
    public static let json = PostgresOID(114)
    public static let float4 = PostgresOID(700)
    public static let float8 = PostgresOID(701)
    public static let unknown = PostgresOID(705)
    public static let varchar = PostgresOID(1043)
    public static let date = PostgresOID(1082)
    public static let timestamp = PostgresOID(1114)
    public static let timestamptz = PostgresOID(1184)
    public static let numeric = PostgresOID(1700)
    public static let uuid = PostgresOID(2950)
    public static let pgLSN = PostgresOID(3220)
    public static let jsonb = PostgresOID(3802)
}

/// Wire format of a parameter or result column.
public enum PostgresFormat: Int32, Sendable {
    case text = 0
    case binary = 1
}

/// One statement parameter as sent to libpq: bytes (nil for SQL NULL), their format and type OID.
public struct PostgresParameter: Sendable, Equatable {
    public var bytes: [UInt8]?
    public var format: PostgresFormat
    public var type: PostgresOID

    public init(bytes: [UInt8]?, format: PostgresFormat, type: PostgresOID = .unspecified) {
        self.bytes = bytes
        self.format = format
        self.type = type
    }

    /// SQL NULL.
    public static let null = PostgresParameter(bytes: nil, format: .text)

    /// A value in PostgreSQL's text representation; the server parses it as `type`.
    public static func text(_ value: String, type: PostgresOID = .unspecified) -> PostgresParameter {
        PostgresParameter(bytes: Array(value.utf8), format: .text, type: type)
    }

    /// Raw bytes sent in binary format as `bytea`.
    public static func bytea(_ value: [UInt8]) -> PostgresParameter {
        PostgresParameter(bytes: value, format: .binary, type: .bytea)
    }

    /// An integer sent as `int8` text.
    public static func int(_ value: Int) -> PostgresParameter { .text(String(value), type: .int8) }

    /// A boolean sent as `bool` text.
    public static func bool(_ value: Bool) -> PostgresParameter { .text(value ? "t" : "f", type: .bool) }
}

extension PostgresParameter: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
}
