/// The keys below a branch key and the names bound into every compact value: everything that
/// decides bytes on disk besides the envelope itself (docs/FORMATS.md, "Key hierarchy" and
/// "Associated data"). Changing any of it makes existing values unreadable.
public enum CompactKeyHierarchy {
    /// HKDF info label of a column data key.
    public static let columnKeyLabel = "mrkproxy/v1/column-key"
    /// HKDF info label of a column's blind-index key (from the keyspace's beacon key).
    public static let blindIndexKeyLabel = "mrkproxy/v1/blind-index"
    /// HKDF info label of the beacon key derived from branch key version 1 (keyspaces created
    /// before the beacon key had a keystore entry of its own).
    public static let beaconLabel = "mrkproxy/v1/beacon"

    /// The name a table is bound by (in associated data and derivations): `schema.table`, unquoted.
    public static func tableName(schema: String, table: String) -> String { schema + "." + table }

    /// The data key of one column under one branch-key version:
    /// `HKDF-SHA256(ikm: branch key, salt: empty, info: label ‖ 00 ‖ table ‖ 00 ‖ column, 32 bytes)`.
    public static func columnKey(branchKey: SecretBytes, table: String, column: String) throws -> SecretBytes {
        try derive(branchKey, label: columnKeyLabel, table: table, column: column)
    }

    /// The blind-index (HMAC) key of one column, from the keyspace's beacon key; the same layout as
    /// `columnKey` with its own label.
    public static func blindIndexKey(beaconKey: SecretBytes, table: String, column: String) throws -> SecretBytes {
        try derive(beaconKey, label: blindIndexKeyLabel, table: table, column: column)
    }

    /// The beacon key derived from branch key version 1: `HKDF-SHA256(v1, salt: empty, info: "mrkproxy/v1/beacon")`.
    public static func beaconKey(fromFirstBranchKey key: SecretBytes) throws -> SecretBytes {
        try key.withUnsafeBytes { try HKDF.deriveKey(.sha256, ikm: $0, salt: [UInt8](), info: Array(beaconLabel.utf8), length: 32) }
    }

    private static func derive(_ key: SecretBytes, label: String, table: String, column: String) throws -> SecretBytes {
        let info = Array(label.utf8) + [0] + Array(table.utf8) + [0] + Array(column.utf8)
        return try key.withUnsafeBytes { ikm in
            try HKDF.deriveKey(.sha256, ikm: ikm, salt: [UInt8](), info: info, length: 32)
        }
    }
}

/// How a row's identity value is written into the associated data of its compact values: the
/// text PostgreSQL outputs for it, so that what a write binds is byte for byte what a later read
/// gets back from the server.
public enum RowIdentityEncoding {
    /// The kinds of column a row identity may be.
    public enum Kind: String, Sendable {
        /// `smallint`, `integer`, `bigint`: decimal digits, `-` for negatives.
        case integer
        /// `text`, `varchar`: the UTF-8 bytes.
        case text
        /// `uuid`: lower-case hex, hyphenated 8-4-4-4-12.
        case uuid
    }

    public static func bytes(integer: Int64) -> [UInt8] { Array(String(integer).utf8) }

    public static func bytes(text: String) -> [UInt8] { Array(text.utf8) }

    public static func bytes(uuid: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                                    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        withUnsafeBytes(of: uuid) { raw in
            for (index, byte) in raw.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
        }
        return out
    }
}
