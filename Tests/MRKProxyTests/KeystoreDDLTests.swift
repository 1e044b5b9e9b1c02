import Foundation
@testable import MRKProxy
import MRKSQL
import Testing

/// `sql/01-keystore.sql` (run by docker compose's primary) and `mrkproxy keystore init` create
/// the same keystore table.
@Suite struct KeystoreDDL {
    @Test func theSQLFileIsTheDDLKeystoreInitRuns() throws {
        let file = try String(contentsOf: DockerCompose.repo.appendingPathComponent("sql/01-keystore.sql"), encoding: .utf8)
        let statements = file.split(separator: "\n").filter { !$0.hasPrefix("--") }.joined(separator: "\n")
        let normalize = { (sql: String) in sql.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let ddl = BranchKeyStore.ddl(QualifiedName(schema: "public", name: "mrkproxy_keystore"))
        #expect(normalize(statements) == normalize(ddl))
    }
}
