import Foundation
@testable import MRKDevTools
import MRKCrypto
import MRKPostgres
@testable import MRKProxy
@testable import MRKWire
@testable import MRKWireProtocol
import NIOCore
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `mrkproxy serve` with real clients: psql, psycopg 3, SQLAlchemy and pgbench, against the
/// stack's primary (through the primary region's proxy) and replica (through the replica
/// region's). The suite's no-leak scan afterwards covers everything they wrote.
extension ProxyIntegration {
    @Suite(.serialized) struct WireProxy {
        @Test("psycopg 3: server-side binding, binary results and parameters, prepared statements, pipelines, COPY, refusals, cancel; reads in the replica region")
        func psycopg() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let secrets = (0..<5).map { _ in secret("PSYCOPG") }
            let (status, out, err) = try await WireClients.python("psycopg_client.py", environment: [
                "EAST_DSN": fixture.dsn(), "SOUTH_DSN": fixture.dsn(replica: true), "TABLE": fixture.table,
                "SECRETS": secrets.joined(separator: ","),
            ])
            #expect(status == 0 && out.contains("done"), "\(out)\(err)")
            // What the database holds is ciphertext.
            let raw = try PostgresConnection(fixture.stack.databaseURL(replica: false))
                .execute("SELECT ssn, dob, balance FROM \(fixture.table) WHERE id = 1", resultFormat: .binary)
            let stored = try #require(raw.bytes(row: 0, column: 0))
            #expect(stored.count == secrets[0].utf8.count + 42 && stored[0] == 1, "a compact envelope")
            await fixture.stop()
        }

        @Test("SQLAlchemy ORM: create, read, update, filter by equality on a searchable encrypted column, in both regions")
        func sqlalchemy() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let secrets = (0..<3).map { _ in secret("ORM") }
            let url = { (port: Int) in "postgresql+psycopg://\(WireFixture.user):\(WireFixture.password)@127.0.0.1:\(port)/app?sslmode=disable" }
            let (status, out, err) = try await WireClients.python("sqlalchemy_client.py", environment: [
                "EAST_URL": url(fixture.eastPort), "SOUTH_URL": url(fixture.southPort), "TABLE": fixture.table,
                "SECRETS": secrets.joined(separator: ","),
            ])
            #expect(status == 0 && out.contains("done"), "\(out)\(err)")
            await fixture.stop()
        }

        @Test("psql: -c, -f (several statements, a transaction), interactive on a terminal; the replica region's proxy reads")
        func psql() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let ssn = secret("PSQL")
            var (status, out, err) = try await fixture.psql(["-c", "INSERT INTO \(fixture.table) (id, name, ssn, dob) VALUES (1, 'Ada', '\(ssn)', '1815-12-10')"])
            #expect(status == 0 && out.contains("INSERT 0 1"), "\(err)")

            let script = FileManager.default.temporaryDirectory.appendingPathComponent("wire-\(UUID().uuidString).sql")
            defer { try? FileManager.default.removeItem(at: script) }
            let second = secret("PSQL")
            try """
                BEGIN;
                INSERT INTO \(fixture.table) (id, name, ssn, balance) VALUES (2, 'Grace', '\(second)', 12.50);
                UPDATE \(fixture.table) SET dob = '1906-12-09' WHERE id = 2;
                COMMIT;
                SELECT id, name, ssn, dob, balance FROM \(fixture.table) ORDER BY id;
                """.write(to: script, atomically: true, encoding: .utf8)
            (status, out, err) = try await fixture.psql(["-f", script.path])
            #expect(status == 0, "\(err)")
            #expect(out.contains(ssn) && out.contains(second) && out.contains("1906-12-09") && out.contains("12.50") && out.contains("(2 rows)"), "\(out)")

            // Several statements in one Query (psql -c): one implicit transaction, as on the server.
            (status, _, err) = try await fixture.psql(["-c", "INSERT INTO \(fixture.table) (id, name, ssn) VALUES (3, 'x', '\(secret("PSQL"))'); SELECT 1/0"])
            #expect(status != 0 && err.contains("division by zero"), "\(err)")
            (status, out, _) = try await fixture.psql(["-tA", "-c", "SELECT count(*) FROM \(fixture.table) WHERE id = 3"])
            #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "the first statement was rolled back with the second")

            // The replica region's proxy: reads decrypt, writes are refused.
            try fixture.stack.cluster.waitForReplication()
            (status, out, err) = try await fixture.psql(["-tA", "-c", "SELECT id, ssn FROM \(fixture.table) WHERE ssn = '\(second)'"], replica: true)
            #expect(status == 0 && out.trimmingCharacters(in: .whitespacesAndNewlines) == "2|\(second)", "\(out)\(err)")
            (status, _, err) = try await fixture.psql(["-c", "DELETE FROM \(fixture.table)"], replica: true)
            #expect(status != 0 && err.contains("read-only"), "\(err)")

            // Interactive psql on a terminal.
            let terminal = try await onBlockingThread {
                try TerminalShell.Terminal("/usr/bin/psql", ["-X", "-P", "pager=off", "-h", "127.0.0.1", "-p", String(fixture.eastPort), "-U", WireFixture.user, "app"],
                                           environment: fixture.environment)
            }
            try await onBlockingThread {
                #expect(terminal.waitFor("app=").contains("app="))
                terminal.type("SELECT id, ssn FROM \(fixture.table) WHERE id = 1;\r")
                let shown = terminal.waitFor("(1 row)")
                #expect(shown.contains(ssn), "\(shown)")
                terminal.type("\\d \(fixture.table)\r")
                #expect(terminal.waitFor("ssn_bidx").contains("bytea"))
                terminal.type("\\q\r")
                #expect(terminal.exitStatus() == 0)
            }
            await fixture.stop()
        }

        @Test("pgbench with a custom script (simple, extended and prepared protocols): no failed transactions, every row readable")
        func pgbench() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let script = FileManager.default.temporaryDirectory.appendingPathComponent("wire-bench-\(UUID().uuidString).sql")
            defer { try? FileManager.default.removeItem(at: script) }
            try """
                \\set id random(1, 1000000000)
                INSERT INTO \(fixture.table) (id, name, balance) VALUES (:id, 'pgbench', :id) ON CONFLICT (id) DO NOTHING;
                SELECT id, name, balance FROM \(fixture.table) WHERE id = :id;
                """.write(to: script, atomically: true, encoding: .utf8)
            for mode in ["simple", "extended", "prepared"] {
                let (status, out, err) = try await WireClients.run("/usr/bin/env", [
                    "pgbench", "-n", "-M", mode, "-f", script.path, "-t", "150", "-c", "2", "-h", "127.0.0.1", "-p", String(fixture.eastPort),
                    "-U", WireFixture.user, "app",
                ], environment: fixture.environment)
                #expect(status == 0, "\(mode): \(out)\(err)")
                #expect(out.contains("number of transactions actually processed: 300/300"), "\(mode): \(out)")
                #expect(out.contains("number of failed transactions: 0"), "\(mode): \(out)")
            }
            // Every row reads back decrypted, its balance equal to its id (as the script wrote it).
            let (status, out, err) = try await fixture.psql(["-tA", "-F", ",", "-c", "SELECT id, balance FROM \(fixture.table)"])
            #expect(status == 0, "\(err)")
            let rows = out.split(separator: "\n")
            #expect(rows.count >= 890 && rows.allSatisfy { row in
                let fields = row.split(separator: ",")
                return fields.count == 2 && fields[0] == fields[1]
            }, "\(rows.prefix(5))")
            await fixture.stop()
        }

        @Test("refused statements: an ErrorResponse with MRKProxy's SQLSTATE, and the server never sees them")
        func refusalsNeverReachTheServer() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let marker = secret("REFUSED")
            for sql in [
                "SELECT id FROM \(fixture.table) WHERE ssn LIKE '\(marker)%'",
                "SELECT lower(ssn) FROM \(fixture.table) WHERE name = '\(marker)'",
                "SELECT id FROM \(fixture.table) ORDER BY ssn LIMIT 1 -- \(marker)",
                "COPY \(fixture.table) TO STDOUT -- \(marker)",
            ] {
                let (status, _, err) = try await fixture.psql(["-c", sql])
                #expect(status != 0 && err.contains("refused") && err.contains("nothing reached the database"), "\(sql): \(err)")
            }
            let (_, out, _) = try await fixture.psql(["-tA", "-c", "SELECT 'still here'"])
            #expect(out.contains("still here"))
            if let directory = fixture.stack.cluster.directory {
                let findings = try LeakScanner.scan(directories: [directory], needles: [marker])
                #expect(findings.isEmpty, "the server saw a refused statement: \(findings)")
            }
            await fixture.stop()
        }

        @Test("SCRAM-SHA-256: the right password gets in; a wrong one and an unknown user get the same refusal")
        func scram() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            var (status, out, _) = try await fixture.psql(["-tA", "-c", "SELECT 'in'"])
            #expect(status == 0 && out.contains("in"))
            var environment = fixture.environment
            environment["PGPASSWORD"] = "wrong"
            (status, _, _) = try await WireClients.run("/usr/bin/env", ["psql", "-X", "-h", "127.0.0.1", "-p", String(fixture.eastPort), "-U", WireFixture.user,
                                                                         "-d", "app", "-c", "SELECT 1"], environment: environment)
            #expect(status != 0)
            let (_, _, wrong) = try await WireClients.run("/usr/bin/env", ["psql", "-X", "-h", "127.0.0.1", "-p", String(fixture.eastPort), "-U", WireFixture.user,
                                                                            "-d", "app", "-c", "SELECT 1"], environment: environment)
            let (_, _, unknown) = try await WireClients.run("/usr/bin/env", ["psql", "-X", "-h", "127.0.0.1", "-p", String(fixture.eastPort), "-U", "nobody",
                                                                              "-d", "app", "-c", "SELECT 1"], environment: environment)
            #expect(wrong.contains("password authentication failed for user \"app\""), "\(wrong)")
            #expect(unknown.contains("password authentication failed for user \"nobody\""), "\(unknown)")
            // A verifier is never a password: the config holds only the verifier.
            #expect(SCRAMVerifier(WireFixture.password) == nil)
            await fixture.stop()
        }

        @Test("TLS: verify-full against the proxy's certificate; without TLS the proxy refuses the client")
        func tls() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wire-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: path("san.ext"), atomically: true, encoding: .utf8)
            for arguments in [
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=mrkproxy-test-ca"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=localhost"],
                ["x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                 "-out", path("server.crt"), "-days", "2", "-extfile", path("san.ext")],
            ] {
                let (status, _, err) = try await WireClients.run("/usr/bin/env", ["openssl"] + arguments)
                try #require(status == 0, "openssl: \(err)")
            }
            let fixture = try await WireFixture.start(try currentStack()) { settings in
                settings.tlsCertificate = path("server.crt")
                settings.tlsKey = path("server.key")
                settings.requireTLS = true
            }
            var environment = fixture.environment
            environment["PGSSLMODE"] = "verify-full"
            environment["PGSSLROOTCERT"] = path("ca.crt")
            var (status, out, err) = try await WireClients.run("/usr/bin/env", [
                "psql", "-X", "-tA", "-h", "localhost", "-p", String(fixture.eastPort), "-U", WireFixture.user, "-d", "app",
                "-c", "SELECT 'over tls'",
            ], environment: environment)
            #expect(status == 0 && out.contains("over tls"), "\(err)")
            (status, _, err) = try await fixture.psql(["-c", "SELECT 1"])
            #expect(status != 0 && err.contains("requires TLS"), "\(err)")
            // psycopg over TLS too.
            let python = try InteropPython.require(repository: CLITests.repo)
            (status, out, err) = try await WireClients.run(python, ["-c", """
                import psycopg
                with psycopg.connect("\(fixture.dsn(extra: "sslmode=verify-full host=localhost sslrootcert=\(path("ca.crt"))"))") as c:
                    print(c.execute("SELECT 'psycopg tls'").fetchone()[0], c.info.pgconn.ssl_in_use)
                """])
            #expect(status == 0 && out.contains("psycopg tls True"), "\(out)\(err)")
            await fixture.stop()
        }

        @Test("a slow client holds the server back instead of making the proxy buffer the result")
        func backpressure() async throws {
            let fixture = try await WireFixture.start(try currentStack()) { $0.trust = true }
            // A client that asks for ~200 MB and reads almost none of it.
            let client = try await RawClient.connect(port: fixture.eastPort, parameters: ["user": "app", "database": "app",
                                                                                          "application_name": "wire-backpressure"])
            try await client.send(query: "SELECT g, repeat('x', 1000) FROM generate_series(1, 200000) g")
            _ = try await client.read(atLeast: 64 * 1024)
            // The server's backend for this session ends up waiting to write to the proxy.
            let admin = try PostgresConnection(fixture.stack.databaseURL(replica: false))
            var waitEvent: String?
            for _ in 0..<200 {
                waitEvent = try admin.execute("SELECT wait_event FROM pg_stat_activity WHERE application_name = 'wire-backpressure'").string(row: 0, column: 0)
                if waitEvent == "ClientWrite" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(waitEvent == "ClientWrite", "the server was not held back: \(waitEvent ?? "no session")")
            // The client goes away: the session ends, the statement is cancelled.
            try await client.close()
            var sessions = fixture.east.sessionCount
            for _ in 0..<200 where sessions > 0 {
                try await Task.sleep(for: .milliseconds(50))
                sessions = fixture.east.sessionCount
            }
            #expect(sessions == 0)
            let (status, out, _) = try await fixture.psql(["-tA", "-c", "SELECT 'next client'"])
            #expect(status == 0 && out.contains("next client"))
            await fixture.stop()
        }

        @Test("binary forms of decrypted values are byte for byte PostgreSQL's send functions")
        func binaryFormsMatchTheServer() async throws {
            let connection = try PostgresConnection(try currentStack().databaseURL(replica: false))
            let samples: [(ColumnValueType, String, String)] = [
                (.text, "textsend", "héllo wörld"), (.int2, "int2send", "-32768"), (.int4, "int4send", "2147483647"),
                (.int8, "int8send", "-9223372036854775808"), (.numeric, "numeric_send", "0"), (.numeric, "numeric_send", "-0.000100"),
                (.numeric, "numeric_send", "123456789012345678901234567890.123456789"), (.numeric, "numeric_send", "1e300"),
                (.numeric, "numeric_send", "NaN"), (.numeric, "numeric_send", "Infinity"), (.numeric, "numeric_send", "-Infinity"),
                (.float4, "float4send", "3.14159"), (.float4, "float4send", "-0"), (.float8, "float8send", "1e-310"),
                (.float8, "float8send", "-Infinity"), (.bool, "boolsend", "true"), (.date, "date_send", "1815-12-10"),
                (.date, "date_send", "4713-01-01 BC"), (.date, "date_send", "infinity"), (.timestamp, "timestamp_send", "2020-02-29 23:59:59.999999"),
                (.timestamp, "timestamp_send", "-infinity"), (.timestamptz, "timestamptz_send", "1999-12-31 23:00:00+00"),
                (.uuid, "uuid_send", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), (.bytea, "byteasend", "\\x00ff10"),
                (.json, "json_send", "{\"b\": [1, 2.50], \"a\": null}"), (.jsonb, "jsonb_send", "{\"b\": [1, 2.50], \"a\": null}"),
            ]
            for (type, function, text) in samples {
                let context = ColumnCodec.Context(timeZone: "UTC")
                let plaintext = try ColumnCodec.encode(.text(text), as: type, column: "c", context: context)
                let value = try ColumnCodec.decode(plaintext, as: type.plaintextType)
                let ours = try WireValueCodec.binary(value, as: type)
                let theirs = try connection.execute("SELECT \(function)($1::\(type.rawValue))", [.text(text)], resultFormat: .binary)
                    .bytes(row: 0, column: 0)
                #expect(ours == theirs, "\(type) \(text)")
                #expect(try WireValueCodec.value(binary: ours, as: type, column: "c") == value, "\(type) \(text) reads back")
            }
        }

        @Test("metrics and health on the admin port")
        func metrics() async throws {
            let fixture = try await WireFixture.start(try currentStack())
            let ssn = secret("METRICS")
            _ = try await fixture.psql(["-c", "INSERT INTO \(fixture.table) (id, name, ssn) VALUES (1, 'm', '\(ssn)')"])
            _ = try await fixture.psql(["-c", "SELECT id, ssn FROM \(fixture.table) WHERE ssn = '\(ssn)'"])
            _ = try await fixture.psql(["-c", "SELECT id FROM \(fixture.table) WHERE ssn LIKE 'x%'"])
            let port = try #require(fixture.eastAdminPort)
            let (status, out, _) = try await WireClients.run("/usr/bin/env", ["curl", "-sf", "http://127.0.0.1:\(port)/metrics"])
            #expect(status == 0)
            for expected in ["mrkproxy_sessions_total", "mrkproxy_statements_total{kind=\"insert\"}", "mrkproxy_statements_total{kind=\"select\"}",
                             "mrkproxy_refusals_total{code=\"unsupportedConstruct\"}", "mrkproxy_values_sealed_total", "mrkproxy_values_opened_total",
                             "mrkproxy_kms_calls_total", "mrkproxy_key_cache_hits_total", "mrkproxy_seal_seconds_count"] {
                #expect(out.contains(expected), "\(expected) missing")
            }
            let health = try await WireClients.run("/usr/bin/env", ["curl", "-sf", "http://127.0.0.1:\(port)/health"])
            #expect(health.0 == 0 && health.1.contains("ok: region us-east-1"))
            await fixture.stop()
        }
    }

    @Test("an upstream restart ends the sessions on it; the proxy serves new connections, and psql reconnects")
    func wireProxyUpstreamRestart() async throws {
        var configuration = LocalStack.Configuration(sqlDirectory: CLITests.repo.appendingPathComponent("sql"))
        configuration.database = "restart"
        let stack = try await LocalStack.start(configuration: configuration)
        do {
            let fixture = try await WireFixture.start(stack)
            let terminal = try await onBlockingThread {
                try TerminalShell.Terminal("/usr/bin/psql", ["-X", "-P", "pager=off", "-h", "127.0.0.1", "-p", String(fixture.eastPort), "-U", WireFixture.user, "app"],
                                           environment: fixture.environment)
            }
            try await onBlockingThread {
                #expect(terminal.waitFor("app=").contains("app="))
                terminal.type("SELECT 'before' AS phase;\r")
                #expect(terminal.waitFor("(1 row)").contains("before"))
            }
            try stack.cluster.restart(replica: false)
            try await onBlockingThread {
                terminal.type("SELECT 'after' AS phase;\r")
                let shown = terminal.waitFor("(1 row)")
                #expect(shown.contains("after"), "psql did not get a working session back: \(shown)")
                terminal.type("\\q\r")
                _ = terminal.exitStatus()
            }
            let (status, out, err) = try await fixture.psql(["-tA", "-c", "SELECT 'new connection'"])
            #expect(status == 0 && out.contains("new connection"), "\(err)")
            await fixture.stop()
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }
}

/// A minimal protocol 3.0 client over a blocking socket, for what psql cannot do (stop reading).
final class RawClient: @unchecked Sendable {
    // Used by one test at a time.
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    static func connect(port: Int, parameters: [String: String]) async throws -> RawClient {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var small: Int32 = 8192
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "connect: \(String(cString: strerror(errno)))")
        let client = RawClient(descriptor: fd)
        var startup = ByteBuffer()
        startup.writeInteger(Int32(0))
        startup.writeInteger(FrontendCodec.protocolVersion3)
        for (name, value) in parameters.sorted(by: { $0.key < $1.key }) {
            startup.writeNullTerminated(name)
            startup.writeNullTerminated(value)
        }
        startup.writeInteger(UInt8(0))
        startup.setInteger(Int32(startup.readableBytes), at: 0)
        try client.write(startup)
        // Up to ReadyForQuery ('Z', length 5, status).
        var seen: [UInt8] = []
        while !seen.suffix(6).starts(with: [UInt8(ascii: "Z"), 0, 0, 0, 5]) {
            seen += try await client.readChunk()
        }
        return client
    }

    func write(_ buffer: ByteBuffer) throws {
        let bytes = Array(buffer.readableBytesView)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            try #require(n > 0, "write failed")
            offset += n
        }
    }

    func send(query: String) async throws {
        var buffer = ByteBuffer()
        buffer.writeMessage(UInt8(ascii: "Q")) { $0.writeNullTerminated(query) }
        try write(buffer)
    }

    private func readChunk() async throws -> [UInt8] {
        let fd = descriptor
        return try await onBlockingThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = Glibc.read(fd, &buffer, buffer.count)
            try #require(n > 0, "the proxy closed the connection")
            return Array(buffer[0..<n])
        }
    }

    /// Reads until at least `count` bytes arrived, then stops reading.
    func read(atLeast count: Int) async throws -> Int {
        var total = 0
        while total < count { total += try await readChunk().count }
        return total
    }

    func close() async throws { _ = Glibc.close(descriptor) }
}
