import Foundation
import Testing

/// What an app gets when it adds the `MRKProxy` product: the library and nothing of the
/// development tooling (the local KMS and its HTTP server, the throwaway cluster, the demo,
/// the fuzzing harnesses) and no SwiftNIO. Read from the manifest as SwiftPM evaluates it,
/// so a dependency added to a library target shows up here.
@Suite struct LibraryBoundary {
    static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Manifest: Decodable {
        struct Product: Decodable {
            var name: String
            var targets: [String]
        }
        struct Target: Decodable {
            var name: String
            var type: String
            var path: String?
            var dependencies: [Dependency]
        }
        /// `{"byName": [name, condition]}`, `{"target": [...]}` or `{"product": [name, package, ...]}`.
        struct Dependency: Decodable {
            var target: String?
            var product: (name: String, package: String)?

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: Key.self)
                if let byName = try container.decodeIfPresent([String?].self, forKey: .byName) {
                    target = byName.first ?? nil
                } else if let named = try container.decodeIfPresent([String?].self, forKey: .target) {
                    target = named.first ?? nil
                } else if let product = try container.decodeIfPresent([String?].self, forKey: .product),
                          product.count >= 2, let name = product[0], let package = product[1] {
                    self.product = (name, package)
                }
            }

            enum Key: String, CodingKey { case byName, target, product }
        }
        var products: [Product]
        var targets: [Target]
    }

    /// `swift package dump-package`, with its own scratch path so it never waits on the lock
    /// of the build that runs this test.
    static func manifest() throws -> Manifest {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-dump-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "package", "--package-path", repo.path, "--scratch-path", scratch.path, "dump-package"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "swift package dump-package failed")
        return try JSONDecoder().decode(Manifest.self, from: data)
    }

    /// The targets and external products the `MRKProxy` library product pulls in.
    static func closure(of productName: String, in manifest: Manifest) throws -> (targets: Set<String>, products: Set<String>) {
        let byName = Dictionary(uniqueKeysWithValues: manifest.targets.map { ($0.name, $0) })
        let product = try #require(manifest.products.first { $0.name == productName })
        var targets = Set<String>()
        var products = Set<String>()
        var pending = product.targets
        while let name = pending.popLast() {
            guard targets.insert(name).inserted else { continue }
            let target = try #require(byName[name], "target \(name) is not in the manifest")
            for dependency in target.dependencies {
                if let next = dependency.target { pending.append(next) }
                if let external = dependency.product { products.insert("\(external.package)/\(external.name)") }
            }
        }
        return (targets, products)
    }

    @Test func theLibraryProductLinksNoDevelopmentToolingAndNoNIO() throws {
        let manifest = try Self.manifest()
        let (targets, products) = try Self.closure(of: "MRKProxy", in: manifest)
        #expect(targets == ["MRKProxy", "MRKSQL", "MRKCrypto", "MRKKMS", "MRKPostgres", "CLibPQ", "COpenSSL"])
        #expect(products == ["swift-log/Logging", "Yams/Yams"])
        for tooling in ["MRKLocalKMS", "MRKCluster", "MRKDevTools", "MRKFuzzing"] {
            #expect(!targets.contains(tooling), "the library product links \(tooling)")
        }
        #expect(!products.contains { $0.hasPrefix("swift-nio/") }, "the library product links SwiftNIO")
        // The tooling exists, so the closure above is not vacuously small.
        #expect(Set(manifest.targets.map(\.name)).isSuperset(of: ["MRKLocalKMS", "MRKCluster", "MRKDevTools"]))
    }

    /// A library must not take over process-wide state: no signal handlers, no exit, no
    /// printing, no environment writes. (`fatalError` is allowed only for libcrypto
    /// missing an algorithm or out of memory.)
    @Test func librarySourcesDoNotTouchProcessWideState() throws {
        let manifest = try Self.manifest()
        let (targets, _) = try Self.closure(of: "MRKProxy", in: manifest)
        let forbidden = try NSRegularExpression(
            pattern: #"(?<![.\w])(signal|sigaction|exit|_exit|print|setenv|unsetenv|putenv|chdir|umask)\("#)
        var checked = 0
        for name in targets.sorted() where !name.hasPrefix("C") {
            let directory = Self.repo.appendingPathComponent("Sources/\(name)")
            let files = try #require(FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil))
            for case let file as URL in files where file.pathExtension == "swift" {
                let text = try String(contentsOf: file, encoding: .utf8)
                for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = String(line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                    let range = NSRange(code.startIndex..., in: code)
                    #expect(forbidden.firstMatch(in: code, range: range) == nil,
                            "\(name)/\(file.lastPathComponent):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
                checked += 1
            }
        }
        #expect(checked > 50)
    }
}
