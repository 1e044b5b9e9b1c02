import MRKSQL
import Foundation
import MRKKMS
import Logging
import Yams

/// The MRKProxy configuration file: the app's region, the KMS key, each region's database and
/// the encrypted tables and columns. YAML (or JSON, which is YAML). See README § Configuration.
public struct ProxyConfiguration: Sendable {
    /// One region's database.
    public struct Region: Sendable, Equatable {
        /// libpq URL or conninfo of this region's database (the primary or a read replica).
        public var database: String
        /// A replica region: reads only; writes are refused before anything is encrypted.
        public var readOnly: Bool
    }

    /// Where keys come from.
    public struct KMS: Sendable {
        /// ARN (or `mrk-…` id with `account`) of the multi-Region key; any region's ARN works.
        public var key: String
        /// One endpoint for every region (e.g. a local `mrkproxy kms serve`). Default: AWS.
        public var endpoint: URL?
        /// Per-region endpoint overrides.
        public var endpoints: [String: URL]
        /// How long unwrapped branch keys are cached. Default 5 minutes.
        public var cacheTTL: Duration
        /// How long past `cacheTTL` a cached key is still used while KMS cannot be reached (after
        /// that, reads and writes fail). Default 10 minutes.
        public var staleWindow: Duration = .seconds(600)
    }

    /// The app's region (`MRKPROXY_REGION` overrides the file).
    public var region: String
    public var kms: KMS
    /// The keystore keyspace the encrypted columns use. Default `default`.
    public var keyspace: String
    /// Regions by name.
    public var regions: [String: Region]
    /// Encrypted tables by schema-qualified name.
    public var tables: [QualifiedName: EncryptedTable]
    /// The file this was loaded from, for messages.
    public var source: String

    /// The one region whose database is writable.
    public var primaryRegion: String {
        regions.first { !$0.value.readOnly }?.key ?? region
    }

    /// The schema for SQL interception.
    var schema: EncryptedSchema { EncryptedSchema(tables: tables) }

    /// The regional ARN of the configured key in `region`.
    public func keyARN(in region: String) throws -> String {
        try KMSKeyIdentifier.regionalARN(for: kms.key, region: region).description
    }

    /// Loads and validates a configuration file.
    ///
    /// - Parameters:
    ///   - path: the YAML or JSON file.
    ///   - environment: `MRKPROXY_REGION` here overrides `region:`.
    /// - Throws: `ProxyError` `.configuration` naming the file, line and key.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ProxyConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ProxyError(.configuration, "\(path): cannot read the configuration file")
        }
        return try parse(text, source: path, environment: environment)
    }

    /// Parses and validates configuration text; `source` names it in errors.
    public static func parse(_ text: String, source: String = "<config>",
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ProxyConfiguration {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw ProxyError(.configuration, "\(source): the file is empty") }
            root = node
        } catch let error as ProxyError {
            throw error
        } catch let error as YamlError {
            throw ProxyError(.configuration, "\(source): not valid YAML/JSON: \(Self.describe(error))")
        }
        let reader = ConfigReader(source: source)
        return try reader.read(root, environment: environment)
    }

    private static func describe(_ error: YamlError) -> String {
        // YamlError's description quotes the offending line; keep only the position and problem.
        let text = "\(error)"
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}

/// Walks the YAML node tree, validating as it goes and reporting `file:line: key.path: problem`.
private struct ConfigReader {
    let source: String

    func fail(_ node: Node?, _ path: String, _ problem: String) -> ProxyError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return ProxyError(.configuration, "\(source)\(line): \(path): \(problem)")
    }

    func mapping(_ node: Node, _ path: String) throws -> [(key: String, keyNode: Node, value: Node)] {
        guard let mapping = node.mapping else { throw fail(node, path, "expected a mapping") }
        return try mapping.map { pair in
            guard let key = pair.key.string else { throw fail(pair.key, path, "keys must be strings") }
            return (key, pair.key, pair.value)
        }
    }

    func checkKeys(_ entries: [(key: String, keyNode: Node, value: Node)], allowed: [String], _ path: String) throws {
        for entry in entries where !allowed.contains(entry.key) {
            throw fail(entry.keyNode, path.isEmpty ? entry.key : "\(path).\(entry.key)",
                       "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
        }
    }

    func string(_ node: Node, _ path: String) throws -> String {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else { throw fail(node, path, "expected a non-empty string") }
        return scalar.string
    }

    func bool(_ node: Node, _ path: String) throws -> Bool {
        guard let value = node.bool else { throw fail(node, path, "expected true or false") }
        return value
    }

    func read(_ root: Node, environment: [String: String]) throws -> ProxyConfiguration {
        let top = try mapping(root, "(top level)")
        try checkKeys(top, allowed: ["region", "kms", "keyspace", "regions", "tables"], "")
        func required(_ key: String) throws -> Node {
            guard let entry = top.first(where: { $0.key == key }) else { throw fail(root, key, "missing (required)") }
            return entry.value
        }
        func optional(_ key: String) -> Node? { top.first { $0.key == key }?.value }

        // Regions.
        let regionsNode = try required("regions")
        var regions: [String: ProxyConfiguration.Region] = [:]
        for entry in try mapping(regionsNode, "regions") {
            let path = "regions.\(entry.key)"
            try checkRegionName(entry.key, entry.keyNode, path)
            let fields = try mapping(entry.value, path)
            try checkKeys(fields, allowed: ["database", "read_only"], path)
            guard let database = fields.first(where: { $0.key == "database" }) else {
                throw fail(entry.value, "\(path).database", "missing (required)")
            }
            let readOnly = try fields.first { $0.key == "read_only" }.map { try bool($0.value, "\(path).read_only") } ?? false
            regions[entry.key] = .init(database: try string(database.value, "\(path).database"), readOnly: readOnly)
        }
        guard !regions.isEmpty else { throw fail(regionsNode, "regions", "at least one region is required") }
        let writable = regions.filter { !$0.value.readOnly }.keys.sorted()
        guard writable.count == 1 else {
            throw fail(regionsNode, "regions", writable.isEmpty
                ? "no writable region: exactly one region (the primary) must omit read_only: true"
                : "\(writable.count) writable regions (\(writable.joined(separator: ", "))): exactly one region is the primary; mark replicas read_only: true")
        }

        // The app's region.
        let regionNode = try required("region")
        var region = try string(regionNode, "region")
        if let override = environment["MRKPROXY_REGION"], !override.isEmpty { region = override }
        guard regions[region] != nil else {
            throw fail(regionNode, "region", "\(region) is not one of the configured regions (\(regions.keys.sorted().joined(separator: ", ")))")
        }

        // KMS.
        let kmsNode = try required("kms")
        let kmsFields = try mapping(kmsNode, "kms")
        try checkKeys(kmsFields, allowed: ["key", "endpoint", "endpoints", "cache_ttl", "stale_window"], "kms")
        guard let keyEntry = kmsFields.first(where: { $0.key == "key" }) else { throw fail(kmsNode, "kms.key", "missing (required)") }
        let key = try string(keyEntry.value, "kms.key")
        let arn: KMSARN
        do { arn = try KMSARN(parsing: key) } catch {
            throw fail(keyEntry.value, "kms.key", "expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/mrk-…)")
        }
        guard arn.resourceType == .key else {
            throw fail(keyEntry.value, "kms.key", "an alias cannot be used: aliases are per region and never multi-Region keys; use the key ARN")
        }
        if regions.count > 1 && !arn.isMultiRegionKey {
            throw fail(keyEntry.value, "kms.key", "\(regions.count) regions are configured but \(arn.resourceId) is a single-Region key: "
                       + "replica regions must decrypt locally with the same key material, which only a multi-Region key (mrk-…) has")
        }
        let endpoint = try kmsFields.first { $0.key == "endpoint" }.map { try url($0.value, "kms.endpoint") }
        var endpoints: [String: URL] = [:]
        if let entry = kmsFields.first(where: { $0.key == "endpoints" }) {
            for item in try mapping(entry.value, "kms.endpoints") {
                guard regions[item.key] != nil else { throw fail(item.keyNode, "kms.endpoints.\(item.key)", "not a configured region") }
                endpoints[item.key] = try url(item.value, "kms.endpoints.\(item.key)")
            }
        }
        let ttl = try kmsFields.first { $0.key == "cache_ttl" }.map { try duration($0.value, "kms.cache_ttl") } ?? .seconds(300)
        let staleWindow = try kmsFields.first { $0.key == "stale_window" }.map { try duration($0.value, "kms.stale_window") } ?? .seconds(600)

        let keyspace = try optional("keyspace").map { try string($0, "keyspace") } ?? "default"

        // Tables.
        var tables: [QualifiedName: EncryptedTable] = [:]
        if let tablesNode = optional("tables") {
            for entry in try mapping(tablesNode, "tables") {
                let table = try readTable(entry.key, entry.keyNode, entry.value)
                guard tables[table.name] == nil else { throw fail(entry.keyNode, "tables.\(entry.key)", "configured twice") }
                tables[table.name] = table
            }
        }

        return ProxyConfiguration(
            region: region,
            kms: .init(key: key, endpoint: endpoint, endpoints: endpoints, cacheTTL: ttl, staleWindow: staleWindow),
            keyspace: keyspace, regions: regions, tables: tables, source: source)
    }

    func readTable(_ name: String, _ keyNode: Node, _ node: Node) throws -> EncryptedTable {
        let path = "tables.\(name)"
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy(isPlainIdentifier) else {
            throw fail(keyNode, path, "expected schema.table (lower-case identifiers)")
        }
        let qualified = QualifiedName(schema: parts.count == 2 ? parts[0] : "public", name: parts.last!)
        let fields = try mapping(node, path)
        try checkKeys(fields, allowed: ["row_identity", "columns"], path)
        let rowIdentity = try fields.first { $0.key == "row_identity" }.map { entry -> String in
            let column = try string(entry.value, "\(path).row_identity")
            guard isPlainIdentifier(column) else { throw fail(entry.value, "\(path).row_identity", "expected a lower-case column name") }
            return column
        }
        guard let columnsEntry = fields.first(where: { $0.key == "columns" }) else {
            throw fail(node, "\(path).columns", "missing (required)")
        }
        var columns: [String: EncryptedColumn] = [:]
        for entry in try mapping(columnsEntry.value, "\(path).columns") {
            let columnPath = "\(path).columns.\(entry.key)"
            guard isPlainIdentifier(entry.key) else { throw fail(entry.keyNode, columnPath, "expected a lower-case column name") }
            guard entry.key != rowIdentity else {
                throw fail(entry.keyNode, columnPath, "the row_identity column cannot itself be encrypted")
            }
            let spec = try mapping(entry.value, columnPath)
            try checkKeys(spec, allowed: ["type", "search", "format", "index_column", "index_bits"], columnPath)
            guard let typeEntry = spec.first(where: { $0.key == "type" }) else { throw fail(entry.value, "\(columnPath).type", "missing (required)") }
            let typeName = try string(typeEntry.value, "\(columnPath).type")
            guard let type = ColumnValueType(configName: typeName) else {
                throw fail(typeEntry.value, "\(columnPath).type",
                           "unknown type '\(typeName)' (expected one of: \(ColumnValueType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            var search = SearchMode.none
            if let s = spec.first(where: { $0.key == "search" }) {
                switch try string(s.value, "\(columnPath).search") {
                case "equality": search = .equality
                case "none": search = .none
                default: throw fail(s.value, "\(columnPath).search", "expected equality or none")
                }
            }
            var format = CipherFormat.compact
            if let f = spec.first(where: { $0.key == "format" }) {
                switch try string(f.value, "\(columnPath).format") {
                case "compact": format = .compact
                case "esdk": format = .esdk
                default: throw fail(f.value, "\(columnPath).format", "expected compact or esdk")
                }
            }
            if format == .esdk && search == .equality {
                throw fail(entry.value, columnPath, "search: equality needs format: compact")
            }
            let indexColumn = try spec.first { $0.key == "index_column" }.map { try string($0.value, "\(columnPath).index_column") }
                ?? "\(entry.key)_bidx"
            var bits = 256
            if let b = spec.first(where: { $0.key == "index_bits" }) {
                guard let value = b.value.int, value >= 16, value <= 256, value % 8 == 0 else {
                    throw fail(b.value, "\(columnPath).index_bits", "expected a multiple of 8 between 16 and 256")
                }
                guard search == .equality else { throw fail(b.value, "\(columnPath).index_bits", "only meaningful with search: equality") }
                bits = value
            }
            columns[entry.key] = EncryptedColumn(table: qualified, name: entry.key, type: type, search: search, format: format,
                                                 blindIndexColumn: indexColumn, blindIndexBits: bits)
        }
        guard !columns.isEmpty else { throw fail(columnsEntry.value, "\(path).columns", "at least one column is required") }
        return EncryptedTable(name: qualified, rowIdentity: rowIdentity, columns: Array(columns.values))
    }

    func url(_ node: Node, _ path: String) throws -> URL {
        let text = try string(node, path)
        guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw fail(node, path, "expected an http(s) URL")
        }
        guard AWSKMSClient.isPermittedEndpoint(url) else {
            throw fail(node, path, "plain http is allowed to a loopback address only (KMS responses carry key material); use https")
        }
        return url
    }

    /// `300`, `300s`, `5m`, `1h`.
    func duration(_ node: Node, _ path: String) throws -> Duration {
        let text = try string(node, path)
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, millis) in units where text.hasSuffix(suffix) {
            if let n = Int(text.dropLast(suffix.count)), n > 0 { return .milliseconds(n * millis) }
        }
        if let n = Int(text), n > 0 { return .seconds(n) }
        throw fail(node, path, "expected a duration such as 300s, 5m or 1h")
    }

    func checkRegionName(_ name: String, _ node: Node, _ path: String) throws {
        let ok = name.split(separator: "-").count >= 3 && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" }
        guard ok else { throw fail(node, path, "expected an AWS region name such as us-east-1") }
    }
}

/// A lower-case SQL identifier that needs no quoting.
func isPlainIdentifier(_ name: String) -> Bool {
    guard let first = name.unicodeScalars.first, first == "_" || ("a"..."z").contains(first) else { return false }
    return name.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
}

extension ColumnValueType {
    init?(configName: String) {
        let aliases: [String: ColumnValueType] = [
            "smallint": .int2, "integer": .int4, "int": .int4, "bigint": .int8, "real": .float4, "double": .float8,
            "double precision": .float8, "boolean": .bool, "decimal": .numeric, "varchar": .text,
            "timestamp with time zone": .timestamptz, "timestamp without time zone": .timestamp,
        ]
        if let value = ColumnValueType(rawValue: configName) ?? aliases[configName] { self = value } else { return nil }
    }
}

extension ProxyConfiguration {
    /// The AWS KMS client for `region`: the configured endpoint(s) (else the AWS regional endpoint,
    /// honouring `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`) and the standard credentials chain.
    public func kmsClient(region: String, logger: Logger = Logger(label: "mrkproxy.kms", factory: { _ in SwiftLogNoOpLogHandler() })) -> AWSKMSClient {
        AWSKMSClient(configuration: .init(region: region, endpoints: kms.endpoints, endpoint: kms.endpoint, logger: logger))
    }
}
