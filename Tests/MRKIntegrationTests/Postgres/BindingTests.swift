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
    @Suite struct Binding {
        @Test("connection failure carries libpq's message")
        func connectionFailure() throws {
            let error = try #require(throws: PostgresError.self) {
                _ = try PostgresConnection("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2")
            }
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("127.0.0.1"))
            #expect(error.message.contains("port 1 failed") || error.message.contains("Connection refused"))
        }

        @Test("NULLs, text and binary parameters; bytea round trip of all 256 byte values")
        func parametersAndBytea() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE blobs (id int, label text, data bytea)")
            let all = (0...255).map { UInt8($0) }
            try conn.execute("INSERT INTO blobs VALUES ($1, $2, $3)", [1, "all bytes", .bytea(all)])
            try conn.execute("INSERT INTO blobs VALUES ($1, $2, $3)", [2, nil, nil])
            try conn.execute("INSERT INTO blobs VALUES ($1, $2, $3)", [3, "", .bytea([])])

            let text = try conn.execute("SELECT id, label, data FROM blobs ORDER BY id")
            #expect(text.rowCount == 3)
            #expect(try text.bytea(row: 0, column: 2) == all)
            #expect(text.string(row: 0, column: 1) == "all bytes")
            #expect(text.isNull(row: 1, column: 1) && text.isNull(row: 1, column: 2))
            #expect(try text.bytea(row: 1, column: 2) == nil)
            #expect(text.string(row: 2, column: 1) == "" && !text.isNull(row: 2, column: 1))
            #expect(try text.bytea(row: 2, column: 2) == [])

            let binary = try conn.execute("SELECT data, id FROM blobs WHERE id = $1", [1], resultFormat: .binary)
            #expect(binary.columns[0].format == .binary)
            #expect(binary.bytes(row: 0, column: 0) == all)
            #expect(binary.bytes(row: 0, column: 1) == PostgresBinary.int4(1))
            #expect(binary.columns.map(\.type) == [.bytea, .int4])
        }

        @Test("command tags, affected rows and SQLSTATE of errors")
        func tagsAndErrors() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE k (id int PRIMARY KEY)")
            let insert = try conn.execute("INSERT INTO k SELECT generate_series(1, 5)")
            #expect(insert.commandTag == "INSERT 0 5")
            #expect(insert.affectedRows == 5)
            #expect(try conn.execute("DELETE FROM k WHERE id > $1", [3]).affectedRows == 2)
            let duplicate = try #require(throws: PostgresError.self) { try conn.execute("INSERT INTO k VALUES (1)") }
            #expect(duplicate.sqlState == PostgresError.SQLState.uniqueViolation)
            #expect(duplicate.detail?.contains("already exists") == true)
            #expect(!duplicate.description.contains("(id)=(1)"), "DETAIL may quote values; description must not")
            let syntax = try #require(throws: PostgresError.self) { try conn.execute("SELEC 1") }
            #expect(syntax.sqlState == PostgresError.SQLState.syntaxError)
            let multi = try #require(throws: PostgresError.self) { try conn.execute("SELECT 1; SELECT 2") }
            #expect(multi.sqlState == PostgresError.SQLState.syntaxError, "extended protocol rejects multiple statements")
        }

        @Test("source table OID and column number for a join with aliases")
        func sourceColumns() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.executeScript("""
                CREATE TABLE customers (id int PRIMARY KEY, name text, ssn bytea);
                CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric);
                INSERT INTO customers VALUES (1, 'Ada', '\\x01');
                INSERT INTO orders VALUES (10, 1, 9.5);
                """)
            let oids = try conn.execute("SELECT 'customers'::regclass::oid::int8, 'orders'::regclass::oid::int8")
            let customers = UInt32(oids.string(row: 0, column: 0)!)!, orders = UInt32(oids.string(row: 0, column: 1)!)!
            let result = try conn.execute("""
                SELECT o.total AS amount, c.ssn AS secret, c.name, 42 AS answer, o.id
                FROM orders o JOIN customers AS c ON c.id = o.customer_id
                """)
            let sources = result.columns.map { "\($0.name):\($0.tableOID):\($0.tableColumn)" }
            #expect(sources == ["amount:\(orders):3", "secret:\(customers):3", "name:\(customers):2", "answer:0:0", "id:\(orders):1"])
        }

        @Test("named prepared statements and transactions")
        func preparedAndTransactions() throws {
            let db = try makeDatabase()
            let conn = try PostgresConnection(db.primary)
            try conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
            try conn.prepare(name: "put", sql: "INSERT INTO accounts VALUES ($1, $2)", parameterTypes: [.int4, .int4])
            let described = try conn.describePrepared(name: "put")
            #expect(described.parameterTypes == [.int4, .int4])
            try conn.executePrepared(name: "put", [1, 100])
            try conn.transaction { tx in
                try tx.executePrepared(name: "put", [2, 50])
                #expect(tx.transactionStatus == .inTransaction)
            }
            struct Boom: Error {}
            #expect(throws: Boom.self) {
                try conn.transaction { tx in
                    try tx.executePrepared(name: "put", [3, 1])
                    throw Boom()
                }
            }
            #expect(conn.transactionStatus == .idle)
            let count = try conn.execute("SELECT count(*) FROM accounts")
            #expect(count.string(row: 0, column: 0) == "2", "the rolled-back insert is gone")
        }

        @Test("server notices go to the logger, not to stdout")
        func noticesReachLogger() throws {
            let db = try makeDatabase()
            let sink = CapturedLogs()
            let logger = Logger(label: "test") { _ in CapturingHandler(sink: sink) }
            let conn = try PostgresConnection(db.primary, logger: logger)
            try conn.executeScript("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; RAISE WARNING 'careful'; END $$")
            let lines = sink.lines
            #expect(lines.contains { $0.contains("hello from plpgsql") && $0.hasPrefix("notice") })
            #expect(lines.contains { $0.contains("careful") && $0.hasPrefix("warning") })
        }
    }
}

final class CapturedLogs: @unchecked Sendable {
    // Guarded by `lock`.
    private var storage: [String] = []
    private let lock = NSLock()
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}

struct CapturingHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        sink.append("\(event.level) \(event.message)")
    }
}
