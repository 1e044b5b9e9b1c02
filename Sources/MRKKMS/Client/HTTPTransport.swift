import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small URLSession wrapper (libcurl on Linux, HTTPS included) for the KMS client and the
/// credential providers.
package struct HTTPTransport: Sendable {
    package struct Response: Sendable {
        package var status: Int
        package var headers: [String: String]
        package var body: Data

        package init(status: Int, headers: [String: String], body: Data) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        func header(_ name: String) -> String? {
            let lower = name.lowercased()
            return headers.first { $0.key.lowercased() == lower }?.value
        }
    }

    let session: URLSession

    init(timeout: TimeInterval) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Self.wholeSeconds(timeout)
        configuration.timeoutIntervalForResource = Self.wholeSeconds(timeout)
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    static let shared = HTTPTransport(timeout: 10)

    static func wholeSeconds(_ timeout: TimeInterval) -> TimeInterval { max(1, timeout.rounded(.up)) }

    /// Sends one request. Throws `KMSError(.transport)` when no HTTP response arrived.
    ///
    /// `timeout` is rounded up to whole seconds: swift-corelibs-foundation truncates sub-second
    /// timeouts to 0, which fails every request at once.
    func send(method: String, url: URL, headers: [(name: String, value: String)], body: Data?, timeout: TimeInterval) async throws -> Response {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: Self.wholeSeconds(timeout))
        request.httpMethod = method
        for (name, value) in headers where name.lowercased() != "host" { request.addValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = body }
        do {
            let (data, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else { throw KMSError(.transport, "not an HTTP response from \(Self.redacted(url))") }
            var out: [String: String] = [:]
            for (k, v) in http.allHeaderFields { if let k = k as? String, let v = v as? String { out[k] = v } }
            return Response(status: http.statusCode, headers: out, body: data)
        } catch let error as KMSError {
            throw error
        } catch let error as URLError {
            throw KMSError(.transport, "\(method) \(Self.redacted(url)) failed: \(error.code == .timedOut ? "timed out" : "URLError \(error.code.rawValue)")")
        } catch {
            throw KMSError(.transport, "\(method) \(Self.redacted(url)) failed")
        }
    }

    /// The URL without query or user info (which could hold secrets).
    static func redacted(_ url: URL) -> String {
        var c = URLComponents(url: url, resolvingAgainstBaseURL: false)
        c?.query = nil
        c?.user = nil
        c?.password = nil
        return c?.string ?? "<url>"
    }

    /// The `Host` header value libcurl sends for `url` (port only when not the scheme's default).
    static func hostHeader(_ url: URL) -> String {
        let host = url.host ?? ""
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        guard let port = url.port else { return bracketed }
        let scheme = url.scheme?.lowercased()
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) { return bracketed }
        return "\(bracketed):\(port)"
    }
}
