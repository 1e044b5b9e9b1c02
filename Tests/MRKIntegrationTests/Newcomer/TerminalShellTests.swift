import Foundation
@testable import MRKDevTools
import Testing

/// `mrkproxy sql` on a terminal (a pseudo-terminal here), as a person types into it: arrow keys
/// edit and recall history, `\d` shows whole type names, `\q` ends the session successfully even
/// after a failed statement.
@Suite(.serialized) struct TerminalShell {
    /// glibc's pseudo-terminal functions (Glibc's module map leaves them out: they need _XOPEN_SOURCE).
    enum PTY {
        typealias OpenPT = @convention(c) (Int32) -> Int32
        typealias FDCall = @convention(c) (Int32) -> Int32
        typealias PTSName = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?

        static func function<T>(_ name: String, as type: T.Type) throws -> T {
            let symbol = try #require(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name), "libc has no \(name)")
            return unsafeBitCast(symbol, to: type)
        }

        /// A new pseudo-terminal: the master descriptor and the slave's path.
        static func open() throws -> (master: Int32, slave: String) {
            let master = try function("posix_openpt", as: OpenPT.self)(O_RDWR | O_NOCTTY)
            try #require(master >= 0)
            try #require(try function("grantpt", as: FDCall.self)(master) == 0)
            try #require(try function("unlockpt", as: FDCall.self)(master) == 0)
            let name = try #require(try function("ptsname", as: PTSName.self)(master))
            return (master, String(cString: name))
        }
    }

    /// A process whose standard input, output and error are a pseudo-terminal.
    /// `@unchecked Sendable`: used by one thread at a time (the test's blocking thread).
    final class Terminal: @unchecked Sendable {
        let process = Process()
        let master: Int32
        private var screen = ""

        init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
            let (master, name) = try PTY.open()
            self.master = master
            let slave = open(name, O_RDWR | O_NOCTTY)
            try #require(slave >= 0)
            let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardInput = handle
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        deinit {
            if process.isRunning { process.terminate() }
            close(master)
        }

        func type(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        }

        /// Reads until the screen output since the last call contains `text` (or `timeout` passes).
        @discardableResult
        func waitFor(_ text: String, timeout: TimeInterval = 20) -> String {
            let deadline = Date().addingTimeInterval(timeout)
            while !screen.contains(text) && Date() < deadline {
                var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, 200) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = read(master, &buffer, buffer.count)
                if n <= 0 { break }
                screen += String(decoding: buffer[0..<n], as: UTF8.self)
            }
            // Hand out up to the match; what came after it is kept for the next wait.
            guard let match = screen.range(of: text) else {
                defer { screen = "" }
                return screen
            }
            let seen = String(screen[..<match.upperBound])
            screen = String(screen[match.upperBound...])
            return seen
        }

        func exitStatus() -> Int32? {
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline {
                _ = waitFor("\u{0}never", timeout: 0.1)  // drain output so the child never blocks
            }
            return process.isRunning ? nil : process.terminationStatus
        }
    }

    @Test("arrow keys edit and recall history, \\d shows whole types, \\q exits 0 after an error")
    func interactiveSession() async throws {
        var configuration = LocalStack.Configuration(sqlDirectory: CLITests.repo.appendingPathComponent("sql"))
        configuration.database = "terminal"
        let stack = try await LocalStack.start(configuration: configuration)
        do {
            let file = stack.directory.appendingPathComponent("app.yaml")
            try stack.configurationYAML(region: "us-east-1", tables: Demo.tablesYAML).write(to: file, atomically: true, encoding: .utf8)
            let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                               "MRKPROXY_HISTORY": stack.directory.appendingPathComponent("history").path]
            var (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: environment)
            #expect(status == 0, "\(err)")
            (status, _, err) = try await CLITests.run(["sql", "--config", file.path, "-c",
                "INSERT INTO customers (id, name, ssn, dob) VALUES (1, 'Ada', '078-05-1120', '1815-12-10')"], environment: environment)
            #expect(status == 0, "\(err)")

            let binary = try CLITests.binary()
            let terminal = try await onBlockingThread { try Terminal(binary, ["sql", "--config", file.path], environment: environment) }
            try await onBlockingThread {
                #expect(terminal.waitFor("=> ").contains("MRKProxy SQL shell"))
                // A statement; then ↑ recalls it and Enter runs it again.
                terminal.type("SELECT id, ssn FROM customers WHERE id = 1;\r")
                #expect(terminal.waitFor("(1 row)").contains("078-05-1120"))
                terminal.waitFor("=> ")
                terminal.type("\u{1B}[A")
                #expect(terminal.waitFor("id = 1;").contains("SELECT id, ssn FROM customers WHERE id = 1;"))
                terminal.type("\r")
                #expect(terminal.waitFor("(1 row)").contains("078-05-1120"))
                terminal.waitFor("=> ")
                // Editing: type "SELECT 4 AS n;", go left past "AS n;", insert "2 ", Home, End.
                terminal.type("SELECT 4 AS n;\u{1B}[D\u{1B}[D\u{1B}[D\u{1B}[D\u{1B}[D\u{1B}[D2\u{1B}[H\u{1B}[F\r")
                let edited = terminal.waitFor("(1 row)")
                #expect(edited.contains(" 42"), "\(edited)")
                #expect(!edited.contains("^[[D"), "escape sequences are keys, not text")
                terminal.waitFor("=> ")
                // \d TABLE: full type names.
                terminal.type("\\d customers\r")
                let described = terminal.waitFor("timestamp with time zone")
                #expect(described.contains("bigint") && described.contains("row identity") && described.contains("bytea")
                        && described.contains("encrypted date"), "\(described)")
                terminal.waitFor("=> ")
                // A failing statement, then \q: exit 0.
                terminal.type("SELECT nope FROM customers;\r")
                #expect(terminal.waitFor("error:").contains("error:"))
                terminal.waitFor("=> ")
                terminal.type("\\q\r")
                #expect(terminal.exitStatus() == 0)
            }
            // History was kept across the session (owner-only file).
            let history = try String(contentsOf: stack.directory.appendingPathComponent("history"), encoding: .utf8)
            #expect(history.contains("SELECT 42 AS n;"), "\(history)")
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }
}
