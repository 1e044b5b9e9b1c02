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

extension PostgresIntegration {
    @Suite struct Bulk {
        @Test("single-row streaming of 100k rows keeps memory flat")
        func streamingIsFlat() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            // 100k rows of 8 KiB: holding them all would take more than 800 MiB. RSS is process-wide and
            // other suites run concurrently, so the bound leaves room for their noise (tens of MiB) while
            // staying far below what buffering the result would cost.
            let sql = "SELECT g, repeat(md5(g::text), 256) FROM generate_series(1, 100000) g"
            var rssAtStart = 0, rssAtEnd = 0, sum = 0, payload = 0
            let delivered = try conn.stream(sql) { row in
                let id = Int(row.string(0)!)!
                sum += id
                payload += row.bytes(1)!.count
                if id == 5_000 { rssAtStart = residentBytes() }
                if id == 100_000 { rssAtEnd = residentBytes() }
            }
            #expect(delivered == 100_000)
            #expect(sum == 100_000 * 100_001 / 2)
            #expect(payload == 100_000 * 8192)
            #expect(rssAtStart > 0 && rssAtEnd > 0)
            #expect(rssAtEnd - rssAtStart < 256 << 20, "RSS grew by \((rssAtEnd - rssAtStart) >> 20) MiB while streaming")
        }

        @Test("an error thrown while streaming cancels the query and leaves the connection usable")
        func streamingAbort() throws {
            let conn = try PostgresConnection(try currentCluster().primaryURL)
            struct Stop: Error {}
            var seen = 0
            #expect(throws: Stop.self) {
                try conn.stream("SELECT g FROM generate_series(1, 10000000) g") { _ in
                    seen += 1
                    if seen == 10 { throw Stop() }
                }
            }
            #expect(seen == 10)
            #expect(try conn.execute("SELECT 7").string(row: 0, column: 0) == "7")
        }

        @Test("COPY FROM STDIN loads 100k rows in binary and text formats")
        func copyIn() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE bulk (id int8, name text, blob bytea)")
            let loaded = try conn.copyIn("COPY bulk (id, name, blob) FROM STDIN WITH (FORMAT binary)") { writer in
                for i in 1...100_000 {
                    try writer.appendBinaryRow([PostgresBinary.int8(Int64(i)), PostgresBinary.text("name \(i)"),
                                                i % 10 == 0 ? nil : [UInt8(i & 0xff), 0, 0xff]])
                }
            }
            #expect(loaded == 100_000)
            let textLoaded = try conn.copyIn("COPY bulk (id, name, blob) FROM STDIN") { writer in
                try writer.appendTextRow(["0", "tab\there\nnewline \\ backslash", ByteaText.encode([1, 2, 3])])
                try writer.appendTextRow(["-1", nil, nil])
            }
            #expect(textLoaded == 2)
            let check = try conn.execute("""
                SELECT count(*), count(blob), sum(id), max(name) FILTER (WHERE id = 0) FROM bulk
                """)
            #expect(check.string(row: 0, column: 0) == "100002")
            #expect(check.string(row: 0, column: 1) == "90001")
            #expect(check.string(row: 0, column: 2) == String(100_000 * 100_001 / 2 - 1))
            #expect(check.string(row: 0, column: 3) == "tab\there\nnewline \\ backslash")
            #expect(try conn.execute("SELECT blob FROM bulk WHERE id = 7").bytea(row: 0, column: 0) == [7, 0, 0xff])
        }

        @Test("a failing COPY body aborts the load")
        func copyAbort() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE bulk (id int8)")
            struct Stop: Error {}
            #expect(throws: Stop.self) {
                try conn.copyIn("COPY bulk FROM STDIN") { writer in
                    for i in 1...50_000 { try writer.appendTextRow([String(i)]) }
                    throw Stop()
                }
            }
            #expect(try conn.execute("SELECT count(*) FROM bulk").string(row: 0, column: 0) == "0")
        }

        @Test("pipeline batch insert: 20k statements, results in order")
        func pipelineInsert() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE p (id int PRIMARY KEY, note text)")
            try conn.prepare(name: "ins", sql: "INSERT INTO p VALUES ($1, $2) RETURNING id * 2")
            let statements = (1...20_000).map { PostgresStatement(prepared: "ins", [.int($0), .text("note \($0)")]) }
            let results = try conn.pipeline(statements)
            #expect(results.count == 20_000)
            #expect(results[0].string(row: 0, column: 0) == "2")
            #expect(results[19_999].string(row: 0, column: 0) == "40000")
            #expect(try conn.execute("SELECT count(*) FROM p").string(row: 0, column: 0) == "20000")
            // Back to normal mode afterwards.
            #expect(try conn.execute("SELECT 1").rowCount == 1)
        }

        @Test("a failing statement in a pipeline is named and nothing of the batch is committed")
        func pipelineFailure() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE p (id int PRIMARY KEY)")
            var statements = (1...100).map { PostgresStatement("INSERT INTO p VALUES ($1)", [.int($0)]) }
            statements[57] = PostgresStatement("INSERT INTO p VALUES ($1)", [.int(3)])  // duplicate key
            let error = try #require(throws: PostgresError.self) { try conn.pipeline(statements) }
            #expect(error.statementIndex == 57)
            #expect(error.sqlState == PostgresError.SQLState.uniqueViolation)
            #expect(try conn.execute("SELECT count(*) FROM p").string(row: 0, column: 0) == "0")

            // A large batch that fails early: the rest is aborted, the connection stays usable.
            var large = (1...20_000).map { PostgresStatement("INSERT INTO p VALUES ($1)", [.int($0)]) }
            large[3] = PostgresStatement("INSERT INTO p VALUES ($1)", ["not a number"])
            let early = try #require(throws: PostgresError.self) { try conn.pipeline(large) }
            #expect(early.statementIndex == 3)
            #expect(early.sqlState == "22P02")
            #expect(try conn.execute("SELECT count(*) FROM p").string(row: 0, column: 0) == "0")

            // A statement libpq refuses to queue (over 65,535 parameters) after others were queued:
            // those are not committed, and the connection leaves pipeline mode usable.
            var refused = (1...10).map { PostgresStatement("INSERT INTO p VALUES ($1)", [.int($0)]) }
            refused.append(PostgresStatement("SELECT 1", Array(repeating: PostgresParameter.int(1), count: 70_000)))
            let client = try #require(throws: PostgresError.self) { try conn.pipeline(refused) }
            #expect(client.statementIndex == 10)
            #expect(client.message.contains("65535"), "\(client.message)")
            #expect(try conn.execute("SELECT count(*) FROM p").string(row: 0, column: 0) == "0")
            #expect(try conn.pipeline([PostgresStatement("INSERT INTO p VALUES (1)")]).count == 1)
            #expect(try conn.execute("SELECT count(*) FROM p").string(row: 0, column: 0) == "1")
        }
    }
}

/// Current resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
