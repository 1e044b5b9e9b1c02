import Foundation
@testable import MRKProxy
import Testing

@Suite struct ConfigurationTests {
    static let valid = """
        region: us-east-1
        kms:
          key: arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab
          endpoint: http://127.0.0.1:4599
          cache_ttl: 5m
        regions:
          us-east-1:      { database: "postgres://app@127.0.0.1:5432/app" }
          ap-southeast-2: { database: "postgres://app@127.0.0.1:5433/app", read_only: true }
        tables:
          public.customers:
            row_identity: id
            columns:
              ssn: { type: text, search: equality }
              dob: { type: date }
              notes: { type: text, format: esdk }
        """

    @Test func parsesTheDocumentedExample() throws {
        let config = try ProxyConfiguration.parse(Self.valid, source: "app.yaml", environment: [:])
        #expect(config.region == "us-east-1" && config.primaryRegion == "us-east-1")
        #expect(config.regions["ap-southeast-2"]?.readOnly == true)
        #expect(config.kms.cacheTTL == .seconds(300))
        let table = try #require(config.tables[QualifiedName(schema: "public", name: "customers")])
        #expect(table.rowIdentity == "id")
        #expect(table.columns["ssn"]?.search == .equality && table.columns["ssn"]?.blindIndexColumn == "ssn_bidx")
        #expect(table.columns["notes"]?.format == .esdk && table.columns["dob"]?.type == .date)
        #expect(try config.keyARN(in: "ap-southeast-2") == "arn:aws:kms:ap-southeast-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab")
    }

    @Test func regionComesFromTheEnvironmentWhenSet() throws {
        let config = try ProxyConfiguration.parse(Self.valid, environment: ["MRKPROXY_REGION": "ap-southeast-2"])
        #expect(config.region == "ap-southeast-2")
    }

    @Test func jsonIsAcceptedToo() throws {
        let json = """
            {"region": "eu-west-1", "kms": {"key": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
             "regions": {"eu-west-1": {"database": "postgres://x@h/db"}},
             "tables": {"accounts": {"columns": {"iban": {"type": "text"}}}}}
            """
        let config = try ProxyConfiguration.parse(json, environment: [:])
        #expect(config.tables[QualifiedName(schema: "public", name: "accounts")]?.columns["iban"]?.type == .text)
    }

    @Test("errors name the file, the line and the key", arguments: [
        ("    columns:\n      ssn: { type: txt }", ":12: tables.public.customers.columns.ssn.type: unknown type 'txt'"),
        ("    colums:\n      ssn: { type: text }", ":11: tables.public.customers.colums: unknown key"),
        ("    columns:\n      ssn: { type: text, search: fuzzy }", ":12: tables.public.customers.columns.ssn.search: expected equality or none"),
        ("    columns:\n      ssn: { type: text, index_bits: 12, search: equality }", ":12: tables.public.customers.columns.ssn.index_bits"),
        ("    row_identity: id\n    columns:\n      id: { type: int8 }", ":13: tables.public.customers.columns.id: the row_identity column cannot itself be encrypted"),
    ])
    func errorsNameFileLineAndKey(columns: String, expected: String) throws {
        let text = Self.valid.components(separatedBy: "    row_identity: id\n")[0] + columns + "\n"
        let error = try #require(throws: ProxyError.self) { try ProxyConfiguration.parse(text, source: "app.yaml", environment: [:]) }
        #expect(error.code == .configuration)
        #expect(error.description.contains("app.yaml" + expected), "\(error)")
    }

    @Test("KMS endpoints: https anywhere, plain http only to loopback; stale_window parses")
    func kmsEndpointsAndStaleWindow() throws {
        func parse(_ endpoint: String, extra: String = "") throws -> ProxyConfiguration {
            let text = Self.valid.replacingOccurrences(of: "  endpoint: http://127.0.0.1:4599\n", with: "  endpoint: \(endpoint)\n\(extra)")
            return try ProxyConfiguration.parse(text, source: "app.yaml", environment: [:])
        }
        #expect(try parse("https://kms.internal.example").kms.endpoint?.host == "kms.internal.example")
        #expect(try parse("http://localhost:4599").kms.endpoint != nil)
        #expect(try parse("http://127.0.0.1:4599", extra: "  stale_window: 30s\n").kms.staleWindow == .seconds(30))
        #expect(try parse("http://127.0.0.1:4599").kms.staleWindow == .seconds(600))
        let error = try #require(throws: ProxyError.self) { try parse("http://kms.internal.example:4599") }
        #expect(error.description.contains("app.yaml:4: kms.endpoint: plain http is allowed to a loopback address only"), "\(error)")
    }

    @Test func singleRegionKeyIsAcceptedOnlyWithOneRegion() throws {
        let single = Self.valid.replacingOccurrences(of: "mrk-1234abcd12ab34cd56ef1234567890ab", with: "1234abcd-12ab-34cd-56ef-1234567890ab")
        let error = try #require(throws: ProxyError.self) { try ProxyConfiguration.parse(single, source: "app.yaml", environment: [:]) }
        #expect(error.description.contains("app.yaml:3: kms.key"))
        #expect(error.description.contains("multi-Region key"))
        let oneRegion = single.replacingOccurrences(of: "  ap-southeast-2: { database: \"postgres://app@127.0.0.1:5433/app\", read_only: true }\n", with: "")
        #expect(try ProxyConfiguration.parse(oneRegion, environment: [:]).regions.count == 1)
    }

    @Test func aliasesAndBadRegionsAreRejected() throws {
        let alias = Self.valid.replacingOccurrences(of: "key/mrk-1234abcd12ab34cd56ef1234567890ab", with: "alias/app")
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(alias, environment: [:]) }
        let twoPrimaries = Self.valid.replacingOccurrences(of: ", read_only: true", with: "")
        let error = try #require(throws: ProxyError.self) { try ProxyConfiguration.parse(twoPrimaries, source: "c.yaml", environment: [:]) }
        #expect(error.description.contains("exactly one region is the primary"))
        let unknownRegion = Self.valid.replacingOccurrences(of: "region: us-east-1", with: "region: eu-north-1")
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(unknownRegion, environment: [:]) }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse("region: [", environment: [:]) }
    }
}

