import Foundation
@testable import MRKDevTools
import Testing

/// A newcomer's path, from a copy of the repository with nothing beside it: the README's library
/// example, in a new package made of only the README's Package.swift lines, builds against that
/// copy and runs against `mrkproxy demo --keep`; the commands the demo prints work as printed.
@Suite(.serialized) struct ExampleApp {
    static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// What a clone of the repository holds now: tracked files and new files git does not
    /// ignore, copied into `directory/mrkproxy` (so `..` holds nothing of ours).
    static func copyOfRepository(into directory: URL) throws -> URL {
        let listing = try run("/usr/bin/env", ["git", "-C", repo.path, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        #expect(listing.status == 0, "git ls-files failed: \(listing.error)")
        let copy = directory.appendingPathComponent("mrkproxy")
        for path in listing.output.split(separator: "\0").map(String.init) {
            let source = repo.appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: source.path) else { continue }  // deleted, not yet committed
            let target = copy.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: source, to: target)
        }
        return copy
    }

    /// The fenced code block after `<!-- marker -->` in README.md.
    static func readmeBlock(_ marker: String) throws -> String {
        let readme = try String(contentsOf: repo.appendingPathComponent("README.md"), encoding: .utf8)
        let after = try #require(readme.range(of: "<!-- \(marker) -->"), "README.md has no <!-- \(marker) --> block")
        let rest = readme[after.upperBound...]
        let open = try #require(rest.range(of: "```swift\n"))
        let close = try #require(rest[open.upperBound...].range(of: "\n```"))
        return String(rest[open.upperBound..<close.lowerBound])
    }

    struct Output {
        var status: Int32
        var output: String
        var error: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    directory: URL? = nil) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let directory { process.currentDirectoryURL = directory }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("example-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out"), err = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, output: try String(contentsOf: out, encoding: .utf8),
                      error: try String(contentsOf: err, encoding: .utf8))
    }

    /// `mrkproxy demo --keep`, running until `stop`; `output` is what it printed up to "Press Ctrl-C".
    /// `@unchecked Sendable`: `output` is immutable; `Process` is thread-safe for these calls.
    final class RunningDemo: @unchecked Sendable {
        let process = Process()
        let output: String

        init() throws {
            process.executableURL = URL(fileURLWithPath: try CLITests.binary())
            process.arguments = ["demo", "--keep", "--sql-directory", ExampleApp.repo.appendingPathComponent("sql").path]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            var text = ""
            while !text.contains("Press Ctrl-C") {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            output = text
            // Keep draining so the demo never blocks on a full pipe.
            pipe.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
        }

        /// The configuration file the demo wrote.
        func configurationPath() throws -> String {
            let line = try #require(output.split(separator: "\n").first { $0.contains("Configuration (") }, "\(output)")
            let start = try #require(line.range(of: "Configuration ("))
            return String(line[start.upperBound...].dropLast(2))  // "…yaml):"
        }

        func stop() {
            guard process.isRunning else { return }
            process.interrupt()
            process.waitUntilExit()
        }
    }

    @Test("a copy of the repository is self-contained; the README's library example builds from it and runs against demo --keep")
    func readmeExampleRunsAgainstTheDemo() async throws {
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-newcomer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workspace, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: workspace) }
        let copy = try Self.copyOfRepository(into: workspace)

        // Nothing in the repository reaches outside it (the vectors were once read from ../shared).
        for directory in ["Package.swift", "Sources", "Tests", "scripts", ".ci", "docker"] {
            let grep = try Self.run("/usr/bin/env", ["grep", "-rIl", "--exclude=ExampleAppTests.swift", "-e", "\\.\\./shared", "-e", "/work/", directory], directory: copy)
            #expect(grep.output.isEmpty, "references outside the repository in: \(grep.output)")
        }
        // What the tests read from the source tree is in the copy.
        for path in ["Tests/MRKCryptoTests/Vectors/esdk/NOTICE", "Tests/MRKKMSTests/Vectors/sigv4", "Fuzz/Corpus/sql",
                     "sql/01-keystore.sql", "docker/docker-compose.yml", "scripts/test", ".ci/run"] {
            #expect(FileManager.default.fileExists(atPath: copy.appendingPathComponent(path).path), "\(path) is not in a clone")
        }

        // A new package made of the README's lines, depending on the copy.
        let app = workspace.appendingPathComponent("app")
        try FileManager.default.createDirectory(at: app.appendingPathComponent("Sources/App"), withIntermediateDirectories: true)
        let lines = try Self.readmeBlock("package-lines")
        let remote = #".package(url: "https://github.com/mrkproxy/mrkproxy.git", branch: "main")"#
        #expect(lines.contains(remote), "the README's dependency line changed; update this test")
        let manifest = """
            // swift-tools-version:6.1
            import PackageDescription

            let package = Package(
                name: "App",
                platforms: [.macOS(.v15)],
            \(lines.replacingOccurrences(of: remote, with: ".package(path: \"\(copy.path)\")"))
            )
            """
        try manifest.write(to: app.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        try Self.readmeBlock("example-app").write(to: app.appendingPathComponent("Sources/App/main.swift"), atomically: true, encoding: .utf8)
        // Not from the README: report which signals the process catches, after the example ran.
        try """
            import Foundation

            /// The SigCgt mask of /proc/self/status.
            func caughtSignals() -> UInt64 {
                let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\\n").first { $0.hasPrefix("SigCgt:") } ?? ""
                return UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) ?? .max
            }
            """.write(to: app.appendingPathComponent("Sources/App/Signals.swift"), atomically: true, encoding: .utf8)
        try (try String(contentsOf: app.appendingPathComponent("Sources/App/main.swift"), encoding: .utf8)
             + "\nprint(\"SigCgt \\(caughtSignals())\")\n")
            .write(to: app.appendingPathComponent("Sources/App/main.swift"), atomically: true, encoding: .utf8)

        let build = try await onBlockingThread {
            try Self.run("/usr/bin/env", ["swift", "build", "--package-path", app.path, "--scratch-path", app.appendingPathComponent(".build").path])
        }
        try #require(build.status == 0, "the README example does not build:\n\(build.output.suffix(4000))\(build.error.suffix(2000))")
        // Only the library's targets were built: no development tooling came with the product.
        let built = try FileManager.default.contentsOfDirectory(atPath: app.appendingPathComponent(".build/debug/Modules").path)
        #expect(built.contains("MRKProxy.swiftmodule"))
        for tooling in ["MRKLocalKMS", "MRKCluster", "MRKDevTools", "NIOCore", "NIOPosix"] {
            #expect(!built.contains("\(tooling).swiftmodule"), "building the app built \(tooling)")
        }

        let demo = try await onBlockingThread { try RunningDemo() }
        defer { demo.stop() }
        let configuration = try demo.configurationPath()
        let credentials = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
        let result = try await onBlockingThread {
            try Self.run(app.appendingPathComponent(".build/debug/App").path, [configuration], environment: credentials)
        }
        #expect(result.status == 0, "\(result.error)")
        let printed = result.output.split(separator: "\n").map(String.init)
        #expect(printed.first == "111-22-3333 1918-08-26", "\(result.output)")
        #expect(printed.contains("1"))
        #expect(printed.contains("streamed 8 rows"), "\(result.output)")
        #expect(printed.contains("111-22-4444"), "\(result.output)")
        // SIGHUP (1), SIGINT (2) and SIGTERM (15) are left to the app.
        let mask = try #require(printed.last.flatMap { UInt64($0.dropFirst("SigCgt ".count)) })
        for signal in [SIGHUP, SIGINT, SIGTERM] {
            #expect(mask & (1 << UInt64(signal - 1)) == 0, "linking MRKProxy installed a handler for signal \(signal)")
        }

        // The commands the demo prints under "Try it:" work as printed.
        let hints = demo.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let export = try #require(hints.first { $0.hasPrefix("export AWS_ACCESS_KEY_ID=") })
        let select = try #require(hints.first { $0.contains(" sql --config ") && $0.contains("SELECT") }, "\(demo.output)")
        let shell = try await onBlockingThread { try Self.run("/bin/sh", ["-c", "\(export) && \(select)"]) }
        #expect(shell.status == 0, "\(select): \(shell.error)")
        #expect(shell.output.contains("111-22-4444") && shell.output.contains("Ada Lovelace"), "\(shell.output)")
        // …and the psql commands for the proxies: the replica region's decrypts what the example wrote.
        let proxyHint = try #require(hints.first { $0.hasPrefix("psql 'host=127.0.0.1 port=") && $0.contains("ap-southeast-2") }, "\(demo.output)")
        let proxyCommand = String(proxyHint[..<(proxyHint.range(of: "#")?.lowerBound ?? proxyHint.endIndex)])
        let viaProxy = try await onBlockingThread {
            try Self.run("/bin/sh", ["-c", proxyCommand + " -tA -c 'SELECT id, ssn FROM customers WHERE id = 42'"])
        }
        #expect(viaProxy.status == 0 && viaProxy.output.contains("42|111-22-4444"), "\(viaProxy.output)\(viaProxy.error)")
        demo.stop()
        #expect(demo.process.terminationStatus == 0)
    }
}
