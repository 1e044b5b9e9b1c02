import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import MRKCrypto
import MRKProxy
import MRKWireProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// `mrkproxy serve`: a PostgreSQL protocol 3.0 server in front of one region's database. Clients
/// (psql, pgbench, any driver or ORM) connect to it as to PostgreSQL; each session runs its
/// statements through the library on a server connection of its own, so the configured columns
/// are encrypted before they reach the database and decrypted on the way back, exactly as for an
/// app that links MRKProxy.
public final class WireServer: Sendable {
    /// How the server listens and who may connect.
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 6432
        /// `/metrics` and `/health` over HTTP; nil: not served.
        public var adminHost: String?
        public var adminPort = 0
        public var settings: ProxyConfiguration.WireProxy
        public var logger = Logger(label: "mrkproxy.serve", factory: { _ in SwiftLogNoOpLogHandler() })

        public init(settings: ProxyConfiguration.WireProxy) {
            self.settings = settings
            let (host, port) = Self.split(settings.listen)
            self.host = host
            self.port = port
            if let admin = settings.admin {
                let (adminHost, adminPort) = Self.split(admin)
                self.adminHost = adminHost
                self.adminPort = adminPort
            }
        }

        /// `host:port` (IPv6 in brackets).
        static func split(_ address: String) -> (String, Int) {
            guard let colon = address.lastIndex(of: ":") else { return (address, 6432) }
            var host = String(address[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (host, Int(address[address.index(after: colon)...]) ?? 6432)
        }
    }

    let database: EncryptedDatabase
    let configuration: Configuration
    let metrics = WireMetrics()
    let registry = SessionRegistry()
    let tls: NIOSSLContext?
    /// Accepts connections.
    private let group: MultiThreadedEventLoopGroup
    /// One event loop per client connection (its session blocks it while the server works).
    let loops = SessionLoops()
    private let listener = Mutex<Listener?>(nil)
    private let channels = Mutex<[any Channel]>([])

    /// - Throws: `ProxyError` `.configuration` when the TLS certificate or key cannot be read.
    public init(database: EncryptedDatabase, configuration: Configuration) throws(ProxyError) {
        self.database = database
        self.configuration = configuration
        if let certificate = configuration.settings.tlsCertificate, let key = configuration.settings.tlsKey {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
                let tlsConfiguration = TLSConfiguration.makeServerConfiguration(
                    certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                tls = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw ProxyError(.configuration, "proxy.tls: cannot load \(certificate) and \(key): \(error)")
            }
        } else {
            tls = nil
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Starts listening; returns the bound port (and the admin port when served).
    public func start() async throws -> (port: Int, adminPort: Int?) {
        let listener = try Listener(host: configuration.host, port: configuration.port)
        self.listener.withLock { $0 = listener }
        let port = listener.port
        let thread = Thread { [self] in
            // Accepted sockets are registered on a loop of their own (a session blocks it while
            // the server works on its statement).
            while let socket = listener.accept() {
                let loop = loops.lease()
                let registered = ClientBootstrap(group: loop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 256 * 1024))
                    .channelInitializer { [self] channel in
                        let loops = self.loops
                        channel.closeFuture.whenComplete { _ in loops.release(loop) }
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(server: self))
                        }
                    }
                    .withConnectedSocket(socket)
                registered.whenFailure { [self] _ in
                    loops.release(loop)
                    configuration.logger.warning("could not register a client connection")
                }
            }
        }
        thread.name = "mrkproxy-accept"
        thread.start()
        var adminPort: Int?
        if let adminHost = configuration.adminHost {
            let admin = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                        channel.pipeline.addHandler(AdminHandler(server: self))
                    }
                }
                .bind(host: adminHost, port: configuration.adminPort)
                .get()
            channels.withLock { $0.append(admin) }
            adminPort = admin.localAddress?.port
        }
        configuration.logger.info("mrkproxy serve listening", metadata: ["port": "\(port)", "region": "\(database.region)"])
        return (port, adminPort)
    }

    /// Stops listening and ends every session.
    public func shutdown() async {
        let listening = channels.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in listening { try? await channel.close() }
        listener.withLock { $0?.close() }
        registry.closeAll()
        try? await group.shutdownGracefully()
        await loops.shutdown()
    }

    /// The metrics in Prometheus's text format (what `/metrics` serves).
    public func metricsText() -> String { metrics.exposition() }

    /// Sessions running now.
    public var sessionCount: Int { registry.count }
}

/// The running sessions by their BackendKeyData, for CancelRequests and shutdown.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[Int32: WireSession]>([:])

    var count: Int { sessions.withLock { $0.count } }

    /// A fresh process id and secret for a session, registered with `make`, or nil when `limit`
    /// sessions are running.
    func register(limit: Int, _ make: (Int32, Int32) -> WireSession) -> WireSession? {
        sessions.withLock { table in
            guard table.count < limit else { return nil }
            var id: Int32
            repeat { id = Int32.random(in: 1...Int32.max) } while table[id] != nil
            let session = make(id, Int32.random(in: Int32.min...Int32.max))
            table[id] = session
            return session
        }
    }

    func remove(_ session: WireSession) {
        sessions.withLock { _ = $0.removeValue(forKey: session.processID) }
    }

    /// Cancels the statement of the session with this key (a wrong secret does nothing).
    func cancel(processID: Int32, secretKey: Int32) {
        let session = sessions.withLock { table -> WireSession? in
            guard let session = table[processID], session.secretKey == secretKey else { return nil }
            return session
        }
        session?.cancel()
    }

    func closeAll() {
        for session in sessions.withLock({ Array($0.values) }) { session.closeConnection() }
    }
}

/// One client connection on the event loop: TLS negotiation, the startup message,
/// authentication (SCRAM-SHA-256), then the session, which gets every message.
final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case startup
        case authenticating(user: String, parameters: [String: String], scram: SCRAMServer, sentFirst: Bool)
        case running(WireSession)
        case closed
    }

    /// The longest message a client may send (a statement or a Bind with its values).
    static let maxMessageLength = 64 * 1024 * 1024

    private let server: WireServer
    private var state = State.startup
    private var buffer: ByteBuffer?
    private var tlsActive = false

    init(server: WireServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        do {
            while var pending = buffer, pending.readableBytes > 0 {
                let before = pending.readerIndex
                let progressed: Bool
                switch state {
                case .startup:
                    guard let message = try FrontendCodec.decodeStartup(&pending) else { progressed = false; break }
                    buffer = pending
                    try handleStartup(message, context: context)
                    progressed = true
                case .authenticating, .running:
                    guard let message = try FrontendCodec.decode(&pending, maxLength: Self.maxMessageLength) else { progressed = false; break }
                    let size = pending.readerIndex - before
                    buffer = pending
                    try handle(message, size: size, context: context)
                    progressed = true
                case .closed:
                    buffer = nil
                    return
                }
                if !progressed { break }
            }
            if let pending = buffer, pending.readableBytes == 0 { buffer = nil }
        } catch let violation as ProtocolViolation {
            fail(context, code: "08P01", message: violation.message)
        } catch let failure as SCRAMServer.Failure {
            fail(context, code: "28P01", message: failure.message)
        } catch let failure as WireFailure {
            fail(context, code: failure.code, message: failure.message)
        } catch {
            fail(context, code: "08P01", message: "\(error)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .running(let session) = state { session.clientClosed() }
        state = .closed
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .running(let session) = state {
            let writable = context.channel.isWritable
            session.writabilityChanged(writable)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    // MARK: Startup and authentication

    private func handleStartup(_ message: StartupMessage, context: ChannelHandlerContext) throws {
        switch message {
        case .sslRequest:
            guard !tlsActive, let tls = server.tls else {
                write(context, [UInt8(ascii: "N")])
                return
            }
            write(context, [UInt8(ascii: "S")])
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            tlsActive = true
        case .gssEncryptionRequest:
            write(context, [UInt8(ascii: "N")])
        case .cancel(let processID, let secretKey):
            server.registry.cancel(processID: processID, secretKey: secretKey)
            state = .closed
            context.close(promise: nil)
        case .startup(let version, let parameters):
            guard version == FrontendCodec.protocolVersion3 else {
                throw WireFailure(code: "0A000", message: "unsupported frontend protocol \(version >> 16).\(version & 0xFFFF): server supports 3.0")
            }
            let settings = server.configuration.settings
            if settings.requireTLS && !tlsActive {
                throw WireFailure(code: "28000", message: "this MRKProxy requires TLS: connect with sslmode=require (or verify-full)")
            }
            guard let user = parameters["user"], !user.isEmpty else {
                throw WireFailure(code: "28000", message: "no PostgreSQL user name specified in startup packet")
            }
            let upstream = try Self.upstreamParameters(parameters, database: server.database)
            if settings.trust {
                try startSession(user: user, parameters: upstream, context: context)
                return
            }
            state = .authenticating(user: user, parameters: upstream, scram: SCRAMServer(verifier: settings.users[user]), sentFirst: false)
            var out = context.channel.allocator.buffer(capacity: 32)
            out.writeAuthenticationSASL(mechanisms: ["SCRAM-SHA-256"])
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }

    private func handle(_ message: FrontendMessage, size: Int, context: ChannelHandlerContext) throws {
        switch state {
        case .authenticating(let user, let parameters, var scram, let sentFirst):
            guard case .authenticationResponse(let payload) = message else {
                throw WireFailure(code: "08P01", message: "expected SASL response, got another message")
            }
            var out = context.channel.allocator.buffer(capacity: 128)
            if !sentFirst {
                let (mechanism, data) = try SCRAMServer.initialResponse(payload)
                guard mechanism == "SCRAM-SHA-256" else {
                    throw WireFailure(code: "28000", message: "client selected an invalid SASL authentication mechanism")
                }
                out.writeAuthenticationSASLContinue(try scram.receiveClientFirst(data))
                state = .authenticating(user: user, parameters: parameters, scram: scram, sentFirst: true)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            } else {
                do {
                    out.writeAuthenticationSASLFinal(try scram.receiveClientFinal(payload))
                } catch {
                    server.configuration.logger.notice("authentication failed", metadata: ["user": "\(user)"])
                    throw WireFailure(code: "28P01", message: "password authentication failed for user \"\(user)\"")
                }
                context.write(wrapOutboundOut(out), promise: nil)
                try startSession(user: user, parameters: parameters, context: context)
            }
        case .running(let session):
            session.deliver(message, size: size)
            if case .terminate = message { state = .closed }
        default:
            break
        }
    }

    private func startSession(user: String, parameters: [String: String], context: ChannelHandlerContext) throws {
        let server = self.server
        let channel = context.channel
        let created = server.registry.register(limit: server.configuration.settings.maxSessions) { processID, secretKey in
            WireSession(processID: processID, secretKey: secretKey, channel: channel, database: server.database,
                        parameters: parameters, metrics: server.metrics, logger: server.configuration.logger) { session in
                server.registry.remove(session)
            }
        }
        guard let session = created else { throw WireFailure(code: "53300", message: "sorry, too many clients already") }
        state = .running(session)
        session.start()
    }

    /// The server connection's libpq parameters from the client's startup message: the
    /// settings a session may choose, passed as `options`; anything that would change how the
    /// server reads statements (client_encoding, standard_conforming_strings) is refused.
    static func upstreamParameters(_ startup: [String: String], database: EncryptedDatabase) throws -> [String: String] {
        var settings: [(String, String)] = []
        let allowed: Set<String> = ["timezone", "datestyle", "search_path", "extra_float_digits", "statement_timeout", "lock_timeout",
                                    "idle_in_transaction_session_timeout", "intervalstyle", "application_name", "default_transaction_isolation",
                                    "default_transaction_read_only", "work_mem", "geqo", "jit"]
        func add(_ name: String, _ value: String) throws {
            let lower = name.lowercased()
            if lower == "client_encoding" {
                guard ["utf8", "unicode", "utf-8", "sql_ascii", "auto"].contains(value.lowercased()) else {
                    throw WireFailure(code: "22023", message: "MRKProxy speaks UTF8 only (client_encoding \(value) is not supported)")
                }
                return
            }
            guard allowed.contains(lower) else {
                throw WireFailure(code: "42704", message: "the setting \(name) cannot be given at connection time through MRKProxy")
            }
            if lower == "datestyle" && !value.uppercased().hasPrefix("ISO") {
                throw WireFailure(code: "22023", message: "MRKProxy renders dates in the ISO DateStyle only (DateStyle \(value))")
            }
            settings.append((name, value))
        }
        for (name, value) in startup.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "user", "database", "replication":
                if name == "replication" && !["false", "off", "0", "no"].contains(value.lowercased()) {
                    throw WireFailure(code: "0A000", message: "replication connections are not supported through MRKProxy")
                }
            case "options":
                for (option, optionValue) in try parseOptions(value) { try add(option, optionValue) }
            case "client_encoding": try add(name, value)
            case "_pq_.": break
            default:
                if name.hasPrefix("_pq_.") { continue }
                try add(name, value)
            }
        }
        var parameters: [String: String] = [:]
        var options: [String] = []
        for (name, value) in settings {
            if name == "application_name" {
                parameters["application_name"] = value
            } else {
                options.append("-c \(name)=\(escapeOption(value))")
            }
        }
        if !options.isEmpty { parameters["options"] = options.joined(separator: " ") }
        return parameters
    }

    /// `-c name=value` and `--name=value` pairs of an `options` startup parameter.
    static func parseOptions(_ options: String) throws -> [(String, String)] {
        var words: [String] = []
        var current = ""
        var escaped = false
        for character in options {
            if escaped { current.append(character); escaped = false; continue }
            if character == "\\" { escaped = true; continue }
            if character.isWhitespace {
                if !current.isEmpty { words.append(current); current = "" }
                continue
            }
            current.append(character)
        }
        if !current.isEmpty { words.append(current) }
        var pairs: [(String, String)] = []
        var index = 0
        while index < words.count {
            var word = words[index]
            if word == "-c", index + 1 < words.count {
                index += 1
                word = words[index]
            } else if word.hasPrefix("--") {
                word = String(word.dropFirst(2))
            } else if word.hasPrefix("-c") {
                word = String(word.dropFirst(2))
            } else {
                throw WireFailure(code: "42601", message: "options: only -c name=value settings are supported through MRKProxy")
            }
            guard let equals = word.firstIndex(of: "=") else {
                throw WireFailure(code: "42601", message: "options: expected name=value")
            }
            pairs.append((String(word[..<equals]).replacingOccurrences(of: "-", with: "_"), String(word[word.index(after: equals)...])))
            index += 1
        }
        return pairs
    }

    static func escapeOption(_ value: String) -> String {
        var escaped = ""
        for character in value {
            if character == "\\" || character.isWhitespace { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    private func write(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        var out = context.channel.allocator.buffer(capacity: bytes.count)
        out.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    /// Ends the connection with a FATAL error.
    private func fail(_ context: ChannelHandlerContext, code: String, message: String) {
        if case .running = state {
            // The session owns the connection from here; protocol errors end it.
            context.close(promise: nil)
            return
        }
        state = .closed
        buffer = nil
        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeFields(UInt8(ascii: "E"), [(UInt8(ascii: "S"), "FATAL"), (UInt8(ascii: "V"), "FATAL"), (UInt8(ascii: "C"), code),
                                            (UInt8(ascii: "M"), message)])
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// `/metrics` (Prometheus text) and `/health` on the admin port.
final class AdminHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: WireServer
    private var path = "/"

    init(server: WireServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): path = head.uri
        case .body: break
        case .end:
            let (status, body): (HTTPResponseStatus, String)
            switch path.split(separator: "?").first.map(String.init) ?? "/" {
            case "/metrics": (status, body) = (.ok, server.metricsText())
            case "/health":
                (status, body) = (.ok, "ok: region \(server.database.region), \(server.sessionCount) session(s)\n")
            default: (status, body) = (.notFound, "not found: try /metrics or /health\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: path.hasPrefix("/metrics") ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// The event loops of client connections: a loop (one thread) of its own for each connection,
/// kept for reuse when the connection ends.
final class SessionLoops: Sendable {
    private let idle = Mutex<[MultiThreadedEventLoopGroup]>([])
    /// Idle loops kept for the next connections; more are shut down.
    static let keepIdle = 16

    func lease() -> MultiThreadedEventLoopGroup {
        idle.withLock { $0.popLast() } ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    func release(_ group: MultiThreadedEventLoopGroup) {
        let kept = idle.withLock { groups -> Bool in
            guard groups.count < Self.keepIdle else { return false }
            groups.append(group)
            return true
        }
        // Shut down off the loop's own thread.
        if !kept { DispatchQueue.global().async { group.shutdownGracefully { _ in } } }
    }

    func shutdown() async {
        let groups = idle.withLock { groups in
            defer { groups.removeAll() }
            return groups
        }
        for group in groups { try? await group.shutdownGracefully() }
    }
}

/// The listening socket (POSIX), accepted from a thread of its own.
final class Listener: Sendable {
    private let descriptor: Int32
    let port: Int

    init(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            throw ProxyError(.configuration, "cannot resolve the listen address \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ProxyError(.configuration, "cannot create a socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ProxyError(.configuration, "cannot listen on \(host):\(port): \(reason)")
        }
        guard listen(fd, 256) == 0 else {
            Glibc.close(fd)
            throw ProxyError(.configuration, "cannot listen on \(host):\(port)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let family = Int32(storage.ss_family)
        let boundPort: UInt16 = withUnsafePointer(to: &storage) { pointer in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        descriptor = fd
        self.port = Int(boundPort)
    }

    /// The next client socket; nil once the listener is closed.
    func accept() -> Int32? {
        while true {
            let client = Glibc.accept(descriptor, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return client
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                usleep(10_000)  // out of descriptors for a moment: try again
                continue
            default: return nil
            }
        }
    }

    func close() {
        _ = shutdown(descriptor, Int32(SHUT_RDWR))
        _ = Glibc.close(descriptor)
    }
}
