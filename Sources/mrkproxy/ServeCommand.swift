import ArgumentParser
import Foundation
import Logging
import MRKCrypto
import MRKProxy
import MRKWire

/// `mrkproxy serve`: the PostgreSQL wire-protocol proxy.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve PostgreSQL's protocol: clients in any language connect here, and MRKProxy encrypts and decrypts for them.",
        subcommands: [Run.self, AddUser.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Listen for PostgreSQL clients (the default).",
            discussion: """
            Settings come from the configuration's proxy: section (listen, admin, tls, users, auth, max_sessions); \
            the flags override them. Each client session gets a connection of its own to the region's database \
            (the primary, or in a replica region the replica), authenticated with that region's URL. The proxy holds \
            the keys: keep it on loopback, or require TLS and SCRAM users.
            """)

        @Option(help: "The MRKProxy configuration file.") var config: String
        @Option(help: "The region to serve (default: the configuration's region; MRKPROXY_REGION overrides the file).") var region: String?
        @Option(help: "host:port to listen on (default: proxy.listen, else 127.0.0.1:6432).") var listen: String?
        @Option(help: "host:port for /metrics and /health (default: proxy.admin; none when neither is set).") var admin: String?
        @Flag(help: "Let clients in without a password (loopback listen addresses only).") var trust = false

        func run() async throws {
            let configuration = try ProxyConfiguration.load(path: config)
            var settings = configuration.proxy ?? ProxyConfiguration.WireProxy()
            if let listen { settings.listen = listen }
            if let admin { settings.admin = admin }
            if trust {
                let host = ServeCommand.host(of: settings.listen)
                guard ["127.0.0.1", "::1", "localhost"].contains(host) else {
                    throw ValidationError("--trust needs a loopback listen address (got \(settings.listen))")
                }
                settings.trust = true
            }
            guard settings.trust || !settings.users.isEmpty else {
                throw ValidationError("no users: add a proxy: users: section to \(config) (`mrkproxy serve add-user NAME` makes an entry), or pass --trust on a loopback address")
            }
            let region = region ?? configuration.region
            var logger = Logger(label: "mrkproxy.serve")
            logger.logLevel = .info
            let database = try await EncryptedDatabase.open(configuration: configuration, region: region,
                                                            kms: configuration.kmsClient(region: region), logger: logger)
            var serverConfiguration = WireServer.Configuration(settings: settings)
            serverConfiguration.logger = logger
            let server = try WireServer(database: database, configuration: serverConfiguration)
            let (port, adminPort) = try await server.start()
            let mode = database.isReadOnly ? "read-only replica region" : "primary region"
            var banner = "mrkproxy serve: \(region) (\(mode)) on \(serverConfiguration.host):\(port)"
            if let adminPort { banner += ", metrics on http://\(serverConfiguration.adminHost ?? "127.0.0.1"):\(adminPort)/metrics" }
            banner += settings.tls == nil ? "" : ", TLS\(settings.requireTLS ? " required" : "")"
            FileHandle.standardOutput.write(Data((banner + "\n").utf8))
            await KMSCommand.Serve.waitForTermination()
            await server.shutdown()
        }
    }

    struct AddUser: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-user",
            abstract: "Print a proxy user entry (a SCRAM-SHA-256 verifier) for the configuration's proxy.users.",
            discussion: "The password is read from standard input (not echoed on a terminal) and never stored: only the verifier is.")

        @Argument(help: "The user name clients connect with.") var name: String
        @Option(help: "PBKDF2 iterations (PostgreSQL's default is 4096).") var iterations = 4096

        func run() throws {
            guard !name.isEmpty, !name.contains(where: { $0 == ":" || $0.isWhitespace }) else {
                throw ValidationError("a user name without spaces or ':'")
            }
            let password: String
            if isatty(STDIN_FILENO) == 1 {
                guard let typed = getpass("Password for \(name): ").map({ String(cString: $0) }), !typed.isEmpty else {
                    throw ValidationError("no password given")
                }
                password = typed
            } else {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw ValidationError("no password on standard input") }
                password = line
            }
            let verifier = SCRAMVerifier(password: password, iterations: iterations)
            print("    \(name): \"\(verifier.text)\"")
        }
    }

    static func host(of address: String) -> String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host
    }
}

extension ProxyConfiguration.WireProxy {
    var tls: String? { tlsCertificate }
}
