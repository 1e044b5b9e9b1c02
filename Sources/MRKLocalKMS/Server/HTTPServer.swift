import MRKCrypto
import MRKKMS
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A received HTTP request, body fully read.
package struct HTTPRequest: Sendable {
    package var method: String
    /// The request target: path and query, as sent.
    package var uri: String
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]
    package var remoteAddress: String?

    package init(method: String, uri: String, headers: [(name: String, value: String)], body: [UInt8], remoteAddress: String? = nil) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }

    func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    var path: String { uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/" }
    var query: String {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count > 1 ? String(parts[1]) : ""
    }
}

/// A response to send.
package struct HTTPResponse: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A minimal HTTP/1.1 server over SwiftNIO: keep-alive, `Expect: 100-continue`, a body limit, one
/// async handler call per request. Used by `KMSHTTPServer` and by test stubs (ECS, IMDS, throttling).
actor HTTPServer {
    typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    private let handler: Handler
    private let maxBodyBytes: Int
    private var serverChannel: Channel?
    private var serveTask: Task<Void, Never>?

    init(maxBodyBytes: Int = 1 << 20, handler: @escaping Handler) {
        self.handler = handler
        self.maxBodyBytes = maxBodyBytes
    }

    /// Binds and starts accepting; returns the bound port (useful with port 0).
    func start(host: String, port: Int) async throws -> Int {
        guard serverChannel == nil else { throw KMSError(.configuration, "server already started") }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        serverChannel = server.channel
        let handler = self.handler
        let maxBody = maxBodyBytes
        // Serve on a thread of our own, not the shared concurrency pool: an in-process server (tests,
        // the demo) must keep answering while the app blocks pool threads with synchronous work.
        serveTask = Task(executorPreference: ServerExecutor.shared) {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await Self.serve(connection, handler: handler, maxBodyBytes: maxBody) }
                    }
                }
            }
        }
        guard let bound = server.channel.localAddress?.port else { throw KMSError(.configuration, "server has no local port") }
        return bound
    }

    /// Stops accepting, closes open connections and waits for the accept loop to end.
    func shutdown() async {
        if let serverChannel { try? await serverChannel.close() }
        serveTask?.cancel()
        await serveTask?.value
        serverChannel = nil
        serveTask = nil
    }

    private static func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>,
                              handler: Handler, maxBodyBytes: Int) async {
        let remote = connection.channel.remoteAddress?.ipAddress
        let channel = connection.channel
        await withTaskCancellationHandler {
            try? await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body = []
                        tooLarge = false
                        if h.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                            try await outbound.write(.head(HTTPResponseHead(version: h.version, status: .continue)))
                        }
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > maxBodyBytes { tooLarge = true } else {
                            body.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        guard let h = head else { return }
                        let response: HTTPResponse
                        if tooLarge {
                            response = HTTPResponse(status: 413, headers: [("Content-Type", "text/plain")], body: Array("request too large".utf8))
                        } else {
                            let request = HTTPRequest(method: h.method.rawValue, uri: h.uri,
                                                      headers: h.headers.map { ($0.name, $0.value) }, body: body, remoteAddress: remote)
                            response = await handler(request)
                        }
                        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
                        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
                        let keepAlive = h.isKeepAlive && !tooLarge
                        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                        try await outbound.write(.head(HTTPResponseHead(version: h.version,
                                                                        status: HTTPResponseStatus(statusCode: response.status),
                                                                        headers: headers)))
                        if !response.body.isEmpty {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await outbound.write(.end(nil))
                        if !keepAlive { return }
                        head = nil
                        body = []
                    }
                }
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// Runs the server's tasks on a dedicated serial dispatch queue (which always gets a thread),
/// instead of the cooperative pool. `@unchecked Sendable`: the queue serialises everything.
final class ServerExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = ServerExecutor()
    private let queue = DispatchQueue(label: "mrkproxy.kms.server")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
