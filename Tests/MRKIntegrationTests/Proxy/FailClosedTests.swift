import Foundation
import Logging
import MRKCluster
import MRKCrypto
@testable import MRKDevTools
import MRKKMS
@testable import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Testing

extension ProxyIntegration {
    @Suite struct FailClosed {
        /// Statements that misuse encrypted columns. Each carries a unique marker literal so the
        /// server log can prove it never arrived. `{t}` is the table, `{m}` the marker.
        static let statements: [(sql: String, column: String)] = [
            ("SELECT id FROM {t} WHERE ssn LIKE '{m}%'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn ILIKE '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn SIMILAR TO '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn ~ '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn > '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn <= '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn BETWEEN '{m}' AND 'z'", "ssn"),
            ("SELECT id FROM {t} WHERE dob > '{m}'", "dob"),
            ("SELECT id FROM {t} WHERE dob = '{m}'", "dob"),
            ("SELECT id FROM {t} WHERE lower(ssn) = '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn || 'x' = '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn::text = '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE coalesce(ssn, '{m}') = 'x'", "ssn"),
            ("SELECT id FROM {t} WHERE substring(ssn from 1 for 3) = '{m}'", "ssn"),
            ("SELECT id, '{m}' FROM {t} ORDER BY ssn", "ssn"),
            ("SELECT ssn, '{m}' FROM {t} GROUP BY ssn", "ssn"),
            ("SELECT DISTINCT ON (dob) id, '{m}' FROM {t}", "dob"),
            ("SELECT id FROM {t} WHERE ssn = dob AND name = '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn = name AND name = '{m}'", "ssn"),
            ("SELECT max(ssn), '{m}' FROM {t}", "ssn"),
            ("SELECT upper(ssn), '{m}' FROM {t}", "ssn"),
            ("INSERT INTO {t} (id, name, ssn) SELECT 99, '{m}', name FROM {t}", "ssn"),
            ("UPDATE {t} SET ssn = name WHERE id = 1 AND name = '{m}'", "ssn"),
            ("UPDATE {t} SET ssn = upper('{m}') WHERE id = 1", "ssn"),
            ("UPDATE {t} SET ssn = '{m}'", "{t}"),
            ("UPDATE {t} SET ssn = '{m}' WHERE id > 1", "{t}"),
            ("UPDATE {t} SET id = 5 WHERE name = '{m}'", "id"),
            ("INSERT INTO {t} (name, ssn) VALUES ('n', '{m}')", "ssn"),
            ("INSERT INTO {t} (id, name, ssn_bidx) VALUES (1, '{m}', '\\x00')", "ssn_bidx"),
            ("SELECT id FROM {t} WHERE ssn = '{m}'; DELETE FROM {t}", "{t}"),
            ("SELECT id FROM {t} WHERE ssn = '{m}' AND ((", "{t}"),
            ("DELETE FROM {t} WHERE ssn LIKE '{m}'", "ssn"),
            ("SELECT id FROM {t} WHERE ssn IN (SELECT name FROM {t} WHERE name = '{m}')", "ssn"),
            ("INSERT INTO {t} VALUES (1, '{m}', NULL, 'x')", "{t}"),
        ]

        @Test("at least 30 misuses of encrypted columns are refused, naming table and column, and never reach the server")
        func refusals() async throws {
            let stack = try currentStack()
            let table = uniqueName("fc")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            let conn = try east.connect()
            #expect(Self.statements.count >= 30)
            var markers: [String] = []
            for (template, column) in Self.statements {
                let marker = secret("FC")
                markers.append(marker)
                let sql = template.replacingOccurrences(of: "{t}", with: table).replacingOccurrences(of: "{m}", with: marker)
                do {
                    _ = try conn.query(sql)
                    Issue.record("not refused: \(template)")
                } catch {
                    #expect(error.code == .refused, "\(template): \(error)")
                    #expect(error.description.contains(table), "\(template): \(error)")
                    if column != "{t}" { #expect(error.description.contains(column), "\(template): \(error)") }
                    #expect(!error.description.contains(marker), "the error must not quote the statement's values")
                }
            }
            // Harmless statements on the same table still pass.
            #expect(try conn.query("SELECT count(*) FROM \(table) WHERE name = 'x'").rows.count == 1)
            let log = try String(contentsOfFile: try #require(stack.cluster.logFile(replica: false)), encoding: .utf8)
            #expect(log.contains("SELECT count(*) FROM \(table)"), "log_statement = all is on")
            for marker in markers { #expect(!log.contains(marker), "a refused statement reached the server") }
        }
    }
}
