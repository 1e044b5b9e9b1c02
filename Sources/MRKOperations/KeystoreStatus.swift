import Foundation
import MRKPostgres
import MRKProxy
import MRKSQL

/// `mrkproxy keystore status` and `retire`: where the keyspace's branch-key versions stand, and
/// how many stored values each configured column holds under each of them.
public enum KeystoreStatus {
    public struct Version: Sendable, Codable {
        public var version: UInt32
        public var state: String
        public var createdAt: String
        /// Values under this version, over every configured compact column.
        public var values: Int
    }

    public struct Column: Sendable, Codable {
        public var table: String
        public var column: String
        public var format: String
        /// Compact values per branch-key version.
        public var valuesByVersion: [String: Int]
        /// ESDK messages (under KMS data keys, not branch keys).
        public var esdkValues: Int
        public var nulls: Int
    }

    public struct Report: Sendable, Codable {
        public var keyspace: String
        public var keyspaceID: UInt32
        public var region: String
        public var versions: [Version]
        /// Whether blind indexes use a beacon key of their own (else it is derived from v1).
        public var beaconEntry: Bool
        public var columns: [Column]
    }

    /// Reads the keystore and counts the values of every configured column by version (a scan of
    /// each configured table; run it where that is affordable, e.g. on a replica region).
    public static func report(_ database: EncryptedDatabase) throws(ProxyError) -> Report {
        let connection = try database.connect()
        let keyspace = database.configuration.keyspace
        let versions = try database.keystore.list(keyspace: keyspace)
        var columns: [Column] = []
        for table in database.configuration.tables.values.sorted(by: { "\($0.name)" < "\($1.name)" }) {
            for spec in table.columns.values.sorted(by: { $0.name < $1.name }) {
                let name = SQLIdentifier.quoted(spec.name)
                var column = Column(table: "\(table.name.schema).\(table.name.name)", column: spec.name, format: spec.format == .esdk ? "esdk" : "compact",
                                    valuesByVersion: [:], esdkValues: 0, nulls: 0)
                // A column still being migrated to ciphertext holds plaintext: nothing to count.
                let type = try connection.operationsExecute("""
                    SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute
                    WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
                    """, [.text("\(table.name)"), .text(spec.name)]).string(row: 0, column: 0)
                guard type == "bytea" else {
                    columns.append(column)
                    continue
                }
                if spec.format == .esdk {
                    let counts = try connection.operationsExecute(
                        "SELECT count(\(name)), count(*) - count(\(name)) FROM \(table.name)")
                    column.esdkValues = Int(counts.string(row: 0, column: 0) ?? "0") ?? 0
                    column.nulls = Int(counts.string(row: 0, column: 1) ?? "0") ?? 0
                } else {
                    // The version is bytes 6…9 of the compact header (docs/FORMATS.md).
                    let counts = try connection.operationsExecute("""
                        SELECT CASE WHEN \(name) IS NULL THEN -1 WHEN pg_catalog.length(\(name)) < 42 THEN -2
                                    ELSE (pg_catalog.get_byte(\(name), 6)::int8 << 24) | (pg_catalog.get_byte(\(name), 7) << 16)
                                         | (pg_catalog.get_byte(\(name), 8) << 8) | pg_catalog.get_byte(\(name), 9) END AS v,
                               count(*)
                        FROM \(table.name) GROUP BY 1 ORDER BY 1
                        """)
                    for row in counts.rows {
                        let version = Int(row.string(0) ?? "") ?? -2
                        let count = Int(row.string(1) ?? "0") ?? 0
                        switch version {
                        case -1: column.nulls = count
                        case -2: column.valuesByVersion["malformed", default: 0] += count
                        default: column.valuesByVersion["v\(version)", default: 0] += count
                        }
                    }
                }
                columns.append(column)
            }
        }
        let byVersion = columns.reduce(into: [String: Int]()) { totals, column in
            for (version, count) in column.valuesByVersion { totals[version, default: 0] += count }
        }
        return Report(keyspace: keyspace, keyspaceID: versions.first?.keyspaceID ?? 0, region: database.region,
                      versions: versions.filter { $0.version >= 1 }.map {
                          Version(version: $0.version, state: $0.state, createdAt: $0.createdAt, values: byVersion["v\($0.version)"] ?? 0)
                      },
                      beaconEntry: versions.contains { $0.version == 0 }, columns: columns)
    }

    /// Retires `version`: refused while any configured column holds values under it.
    public static func retire(_ database: EncryptedDatabase, version: UInt32) throws(ProxyError) -> Report {
        // Processes re-read the version they seal under once per key-cache TTL: until one TTL has
        // passed since the next version was made, some may still seal new values under this one
        // (and then the count below could miss them).
        let keyspace = database.configuration.keyspace
        let ttl = database.configuration.kms.cacheTTL
        if let age = try database.keystore.supersededAge(keyspace: keyspace, version: version), age < ttl {
            let wait = ttl - age
            throw ProxyError(.keystore, "v\(version) stopped sealing new values only \(Int(age.components.seconds)) s ago: processes may still seal "
                             + "under it for up to the key-cache TTL (\(Int(ttl.components.seconds)) s); run reencrypt again and retire it "
                             + "in \(Int(wait.components.seconds) + 1) s")
        }
        // A column being encrypted holds values under the version of its backfill in a shadow
        // column no count sees: wait for migrations to finish.
        let connection = try database.connect()
        if try connection.operationsExecute("SELECT pg_catalog.to_regclass('public.mrkproxy_migrations') IS NOT NULL").string(row: 0, column: 0) == "t" {
            let running = try connection.operationsExecute("""
                SELECT table_schema, table_name, column_name FROM public.mrkproxy_migrations WHERE phase <> 'done' ORDER BY 1, 2, 3
                """)
            // Of the configured tables (other tables in the database are not this keyspace's).
            let names = (0..<running.rowCount).compactMap { row -> String? in
                guard let schema = running.string(row: row, column: 0), let name = running.string(row: row, column: 1),
                      let column = running.string(row: row, column: 2),
                      database.configuration.tables[QualifiedName(schema: schema, name: name)]?.columns[column] != nil else { return nil }
                return "\(schema).\(name).\(column)"
            }.joined(separator: ", ")
            if !names.isEmpty {
                throw ProxyError(.keystore, "a migration is in progress (\(names)): its shadow values are not counted; retire after `mrkproxy migrate` finishes")
            }
        }
        let before = try report(database)
        let using = before.columns.filter { ($0.valuesByVersion["v\(version)"] ?? 0) > 0 }
        guard using.isEmpty else {
            let list = using.map { "\($0.table).\($0.column) (\($0.valuesByVersion["v\(version)"] ?? 0) values)" }.joined(separator: ", ")
            throw ProxyError(.keystore, "v\(version) still seals values in \(list): run `mrkproxy reencrypt` first")
        }
        try database.keystore.retire(keyspace: database.configuration.keyspace, version: version)
        return try report(database)
    }
}
