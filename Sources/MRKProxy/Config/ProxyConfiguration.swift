import MRKSQL
import Foundation
import MRKCrypto
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

    /// `mrkproxy serve`, the PostgreSQL wire-protocol proxy (the `proxy:` section).
    public struct WireProxy: Sendable {
        /// Where clients connect, `host:port`. Default `127.0.0.1:6432`.
        public var listen = "127.0.0.1:6432"
        /// Where `/metrics` (Prometheus) and `/health` are served, `host:port`; nil: not served.
        public var admin: String?
        /// TLS for clients: certificate chain and private key (PEM files).
        public var tlsCertificate: String?
        public var tlsKey: String?
        /// Refuse clients that do not use TLS. Default: true when a certificate is configured.
        public var requireTLS = false
        /// Users and their SCRAM-SHA-256 verifiers (`mrkproxy serve add-user` makes one).
        public var users: [String: SCRAMVerifier] = [:]
        /// Let clients in without a password — allowed only when `listen` is a loopback address.
        public var trust = false
        /// Concurrent client sessions (each holds one server connection). Default 64.
        public var maxSessions = 64

        public init() {}
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
    /// The wire proxy's settings (nil when the file has no `proxy:` section).
    public var proxy: WireProxy?
    /// The file this was loaded from, for messages.
    public var source: String
    /// Lines of the configuration's entries (`table` or `table.column` → line), for messages.
    var lines: [String: Int] = [:]

    /// The one region whose database is writable.
    public var primaryRegion: String {
        regions.first { !$0.value.readOnly }?.key ?? region
    }

    /// The schema for SQL interception.
    var schema: EncryptedSchema { EncryptedSchema(tables: tables) }

    /// The regional ARN of the configured key in `region`.
    public func keyARN(in region: String) throws(ProxyError) -> String {
        do {
            return try KMSKeyIdentifier.regionalARN(for: kms.key, region: region).description
        } catch {
            throw ProxyError(.configuration, "\(source): kms.key \(kms.key) has no ARN in \(region)")
        }
    }

    /// `file:line: ` of a table's entry (or empty when unknown), to begin a message with.
    func location(of table: QualifiedName) -> String {
        lines["\(table.schema).\(table.name)"].map { "\(source):\($0): " } ?? ""
    }

    /// `file:line: ` of a column's entry (or empty when unknown).
    func location(of column: EncryptedColumn) -> String {
        lines["\(column.table.schema).\(column.table.name).\(column.name)"].map { "\(source):\($0): " } ?? ""
    }

    /// The KMS endpoint used for `region`, and which setting chose it.
    func kmsEndpoint(for region: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> (url: String, origin: String) {
        if let url = kms.endpoints[region] { return (url.absoluteString, "kms.endpoints.\(region) in \(source)") }
        if let url = kms.endpoint { return (url.absoluteString, "kms.endpoint in \(source)") }
        if let url = environment["AWS_ENDPOINT_URL_KMS"], !url.isEmpty { return (url, "AWS_ENDPOINT_URL_KMS") }
        if let url = environment["AWS_ENDPOINT_URL"], !url.isEmpty { return (url, "AWS_ENDPOINT_URL") }
        return ("https://kms.\(region).amazonaws.com", "the AWS default for \(region)")
    }

    /// A KMS failure (the client's reason) explained in terms of this configuration: an endpoint
    /// that cannot be reached is named with the setting it comes from; missing credentials for
    /// a loopback (local) KMS say which ones it takes.
    func explainKMSFailure(_ reason: String, region: String) -> String {
        let (url, origin) = kmsEndpoint(for: region)
        if reason.contains("TransportError") {
            return "cannot reach the KMS endpoint \(url) (from \(origin)); is the KMS running there?"
        }
        if reason.contains("CredentialsError") {
            if let host = URL(string: url)?.host, AWSKMSClient.isLoopbackHost(host) {
                return "no AWS credentials found for the local KMS at \(url) (from \(origin)); "
                    + "set AWS_ACCESS_KEY_ID=test and AWS_SECRET_ACCESS_KEY=test, the identity `mrkproxy kms serve` accepts"
            }
            return "no AWS credentials found (environment, shared files, ECS or EC2 instance metadata) for \(url)"
        }
        return reason
    }

    /// Loads and validates a configuration file.
    ///
    /// - Parameters:
    ///   - path: the YAML or JSON file.
    ///   - environment: `MRKPROXY_REGION` here overrides `region:`, `MRKPROXY_PRIMARY_REGION`
    ///     overrides `primary_region:` (the writable region, after a failover).
    /// - Throws: `ProxyError` `.configuration` naming the file, line and key.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ProxyError) -> ProxyConfiguration {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ProxyError(.configuration, "\(path): cannot read the configuration file: no such file")
        }
        guard !isDirectory.boolValue else {
            throw ProxyError(.configuration, "\(path): cannot read the configuration file: it is a directory")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ProxyError(.configuration, "\(path): cannot read the configuration file: permission denied")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProxyError(.configuration, "\(path): cannot read the configuration file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProxyError(.configuration, "\(path): the configuration file is not UTF-8 text")
        }
        return try parse(text, source: path, environment: environment)
    }

    /// Parses and validates configuration text; `source` names it in errors.
    public static func parse(_ text: String, source: String = "<config>",
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(ProxyError) -> ProxyConfiguration {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ProxyError(.configuration, "\(source)\(Self.describe(error))")
        } catch {
            throw ProxyError(.configuration, "\(source): not valid YAML/JSON")
        }
        guard let root = node else { throw ProxyError(.configuration, "\(source): the file is empty") }
        let reader = ConfigReader(source: source)
        do {
            return try reader.read(root, environment: environment)
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(.configuration, "\(source): \(error)")
        }
    }

    /// `:line:column: problem` from a YAML error, without the quoted line (it may hold secrets,
    /// e.g. a password in a database URL) and as a whole sentence.
    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let within = context.map { " (\($0.text) that starts at line \($0.mark.line))" } ?? ""
            return ":\(mark.line):\(mark.column): not valid YAML: \(problem)\(within)."
        default:
            let first = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            return ": not valid YAML: \(first)"
        }
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
        try checkKeys(top, allowed: ["region", "primary_region", "kms", "keyspace", "regions", "tables", "proxy"], "")
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
        // After a regional failover the writable region moves: `primary_region:` (or
        // MRKPROXY_PRIMARY_REGION) names it, and every other region becomes read-only.
        let primaryNode = top.first { $0.key == "primary_region" }?.value
        var primary = try primaryNode.map { try string($0, "primary_region") }
        if let override = environment["MRKPROXY_PRIMARY_REGION"], !override.isEmpty { primary = override }
        if let primary {
            guard regions[primary] != nil else {
                throw fail(primaryNode ?? regionsNode, primaryNode == nil ? "MRKPROXY_PRIMARY_REGION" : "primary_region",
                           "\(primary) is not one of the configured regions (\(regions.keys.sorted().joined(separator: ", ")))")
            }
            for name in regions.keys { regions[name]?.readOnly = name != primary }
        }
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

        // The key's region must exist: a configured region, or one AWS has.
        if regions[arn.region] == nil && !AWSRegions.known.contains(arn.region) {
            let suggestion = AWSRegions.closest(to: arn.region, among: Set(regions.keys).union(AWSRegions.known)).map { " (did you mean \($0)?)" } ?? ""
            throw fail(keyEntry.value, "kms.key", "unknown AWS region '\(arn.region)' in the key ARN\(suggestion); "
                       + "configured regions: \(regions.keys.sorted().joined(separator: ", "))")
        }

        // Tables.
        var tables: [QualifiedName: EncryptedTable] = [:]
        var lines: [String: Int] = [:]
        if let tablesNode = optional("tables") {
            for entry in try mapping(tablesNode, "tables") {
                let (table, tableLines) = try readTable(entry.key, entry.keyNode, entry.value)
                guard tables[table.name] == nil else { throw fail(entry.keyNode, "tables.\(entry.key)", "configured twice") }
                tables[table.name] = table
                lines.merge(tableLines) { first, _ in first }
            }
        }

        var configuration = ProxyConfiguration(
            region: region,
            kms: .init(key: key, endpoint: endpoint, endpoints: endpoints, cacheTTL: ttl, staleWindow: staleWindow),
            keyspace: keyspace, regions: regions, tables: tables, proxy: try optional("proxy").map(readProxy), source: source)
        configuration.lines = lines
        return configuration
    }

    func readProxy(_ node: Node) throws -> ProxyConfiguration.WireProxy {
        var proxy = ProxyConfiguration.WireProxy()
        let fields = try mapping(node, "proxy")
        try checkKeys(fields, allowed: ["listen", "admin", "tls", "users", "auth", "max_sessions"], "proxy")
        func field(_ key: String) -> (key: String, keyNode: Node, value: Node)? { fields.first { $0.key == key } }
        if let entry = field("listen") { proxy.listen = try address(entry.value, "proxy.listen") }
        if let entry = field("admin") { proxy.admin = try address(entry.value, "proxy.admin") }
        if let entry = field("tls") {
            let tls = try mapping(entry.value, "proxy.tls")
            try checkKeys(tls, allowed: ["certificate", "key", "require"], "proxy.tls")
            for (name, path) in [("certificate", "proxy.tls.certificate"), ("key", "proxy.tls.key")] {
                guard let item = tls.first(where: { $0.key == name }) else { throw fail(entry.value, path, "missing (required with tls)") }
                let file = try string(item.value, path)
                guard FileManager.default.isReadableFile(atPath: file) else { throw fail(item.value, path, "cannot read \(file)") }
                if name == "certificate" { proxy.tlsCertificate = file } else { proxy.tlsKey = file }
            }
            proxy.requireTLS = try tls.first { $0.key == "require" }.map { try bool($0.value, "proxy.tls.require") } ?? true
        }
        if let entry = field("users") {
            for user in try mapping(entry.value, "proxy.users") {
                let text = try string(user.value, "proxy.users.\(user.key)")
                guard let verifier = SCRAMVerifier(text) else {
                    throw fail(user.value, "proxy.users.\(user.key)", "expected a SCRAM-SHA-256 verifier (SCRAM-SHA-256$4096:salt$StoredKey:ServerKey; "
                               + "`mrkproxy serve add-user NAME` makes one), never a password")
                }
                proxy.users[user.key] = verifier
            }
        }
        if let entry = field("auth") {
            switch try string(entry.value, "proxy.auth") {
            case "scram-sha-256": proxy.trust = false
            case "trust":
                let host = proxy.listen.split(separator: ":").dropLast().joined(separator: ":")
                guard ["127.0.0.1", "::1", "[::1]", "localhost"].contains(host) else {
                    throw fail(entry.value, "proxy.auth", "trust lets anyone in without a password: it is allowed only when proxy.listen is a loopback address")
                }
                proxy.trust = true
            default: throw fail(entry.value, "proxy.auth", "expected scram-sha-256 or trust")
            }
        }
        if let entry = field("max_sessions") {
            guard let count = entry.value.int, count > 0, count <= 10_000 else { throw fail(entry.value, "proxy.max_sessions", "expected 1…10000") }
            proxy.maxSessions = count
        }
        if !proxy.trust && proxy.users.isEmpty {
            throw fail(node, "proxy.users", "no users: add one (`mrkproxy serve add-user NAME`), or set auth: trust on a loopback listen address")
        }
        return proxy
    }

    /// `host:port` with a port in 0…65535 (`[::1]:6432` for IPv6).
    func address(_ node: Node, _ path: String) throws -> String {
        let text = try string(node, path)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
              colon != text.startIndex else {
            throw fail(node, path, "expected host:port (e.g. 127.0.0.1:6432)")
        }
        return text
    }

    func readTable(_ name: String, _ keyNode: Node, _ node: Node) throws -> (EncryptedTable, [String: Int]) {
        let path = "tables.\(name)"
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy(isPlainIdentifier) else {
            throw fail(keyNode, path, "expected schema.table (lower-case identifiers)")
        }
        let qualified = QualifiedName(schema: parts.count == 2 ? parts[0] : "public", name: parts.last!)
        var lines: [String: Int] = [:]
        if let line = keyNode.mark?.line { lines["\(qualified.schema).\(qualified.name)"] = line }
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
            try checkKeys(spec, allowed: ["type", "search", "format", "index_column", "index_bits", "migrating"], columnPath)
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
            if search == .equality && type == .json {
                throw fail(entry.value, columnPath, "search: equality needs a type with an equality operator; PostgreSQL has none for json (use jsonb)")
            }
            var column = EncryptedColumn(table: qualified, name: entry.key, type: type, search: search, format: format,
                                         blindIndexColumn: indexColumn, blindIndexBits: bits)
            column.migrating = try spec.first { $0.key == "migrating" }.map { try bool($0.value, "\(columnPath).migrating") } ?? false
            columns[entry.key] = column
            if let line = entry.keyNode.mark?.line { lines["\(qualified.schema).\(qualified.name).\(entry.key)"] = line }
        }
        guard !columns.isEmpty else { throw fail(columnsEntry.value, "\(path).columns", "at least one column is required") }
        return (EncryptedTable(name: qualified, rowIdentity: rowIdentity, columns: Array(columns.values)), lines)
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

extension ProxyConfiguration {
    /// The AWS KMS client for `region`: the configured endpoint(s) (else the AWS regional endpoint,
    /// honouring `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`) and the standard credentials chain.
    public func kmsClient(region: String, logger: Logger = Logger(label: "mrkproxy.kms", factory: { _ in SwiftLogNoOpLogHandler() })) -> AWSKMSClient {
        AWSKMSClient(configuration: .init(region: region, endpoints: kms.endpoints, endpoint: kms.endpoint, logger: logger))
    }
}

/// The AWS regions, to catch a misspelt region (`us-eats-1`) in a key ARN.
enum AWSRegions {
    static let known: Set<String> = [
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1", "il-central-1", "me-south-1",
        "me-central-1", "mx-central-1", "sa-east-1", "us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1",
    ]

    /// The candidate within two edits of `name`, if one is.
    static func closest(to name: String, among candidates: Set<String>) -> String? {
        candidates.map { ($0, distance(Array(name), Array($0))) }.filter { $0.1 <= 2 }.min { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }

    /// Levenshtein distance, counting a swap of two neighbours as one edit.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
