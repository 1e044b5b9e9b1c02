import Foundation
import Logging

/// A source of AWS credentials.
public protocol AWSCredentialsProvider: Sendable {
    /// Returns credentials, or `nil` when this source is not configured (so a chain tries the next).
    ///
    /// - Throws: `KMSError` `.credentials` when the source is configured but fails.
    func credentials() async throws -> AWSCredentials?
}

/// Fixed credentials.
public struct StaticCredentialsProvider: AWSCredentialsProvider {
    public let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() async throws -> AWSCredentials? { value }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
public struct EnvironmentCredentialsProvider: AWSCredentialsProvider {
    let environment: [String: String]
    /// - Parameter environment: the variables to read. Default: the process environment.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) { self.environment = environment }

    public func credentials() async throws -> AWSCredentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty else { return nil }
        guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
            throw KMSError(.credentials, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
    }
}

/// Static keys from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
/// `~/.aws/credentials`) and config file (`AWS_CONFIG_FILE`, default `~/.aws/config`) for the
/// profile `AWS_PROFILE` (default `default`). The credentials file wins over the config file.
/// Role assumption (`role_arn`, `source_profile`), SSO and `credential_process` are not supported.
public struct ProfileCredentialsProvider: AWSCredentialsProvider {
    let environment: [String: String]
    let profile: String?

    /// - Parameters:
    ///   - profile: the profile; `nil` uses `AWS_PROFILE`, then `default`.
    ///   - environment: the variables to read. Default: the process environment.
    public init(profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.profile = profile
        self.environment = environment
    }

    var profileName: String { profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default" }

    static func expand(_ path: String, _ environment: [String: String]) -> String {
        guard path.hasPrefix("~/") else { return path }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + path.dropFirst(1)
    }

    var credentialsFile: String { Self.expand(environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "~/.aws/credentials", environment) }
    var configFile: String { Self.expand(environment["AWS_CONFIG_FILE"] ?? "~/.aws/config", environment) }

    /// Parses an INI file: section → key → value (keys lower-cased; `#`/`;` comments).
    package static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            // A line starting with whitespace continues a nested block (e.g. `s3 =`); skip those.
            if rawLine.first == " " || rawLine.first == "\t" { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            sections[current]![key] = value
        }
        return sections
    }

    /// The merged settings of the profile: config file `[profile NAME]` (or `[default]`), overlaid
    /// by credentials file `[NAME]`.
    func settings() -> [String: String] {
        var merged: [String: String] = [:]
        if let text = try? String(contentsOfFile: configFile, encoding: .utf8) {
            let ini = Self.parseINI(text)
            let section = profileName == "default" ? (ini["default"] ?? ini["profile default"]) : ini["profile \(profileName)"]
            merged.merge(section ?? [:]) { $1 }
        }
        if let text = try? String(contentsOfFile: credentialsFile, encoding: .utf8) {
            merged.merge(Self.parseINI(text)[profileName] ?? [:]) { $1 }
        }
        return merged
    }

    public func credentials() async throws -> AWSCredentials? {
        let settings = settings()
        guard let id = settings["aws_access_key_id"], !id.isEmpty else {
            if profile != nil || environment["AWS_PROFILE"] != nil, settings.isEmpty {
                throw KMSError(.credentials, "profile '\(profileName)' not found in \(credentialsFile) or \(configFile)")
            }
            return nil
        }
        guard let secret = settings["aws_secret_access_key"], !secret.isEmpty else {
            throw KMSError(.credentials, "profile '\(profileName)' has aws_access_key_id but no aws_secret_access_key")
        }
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: settings["aws_session_token"])
    }

    /// The profile's `region`, if set.
    public func region() -> String? { settings()["region"] }
}

/// The JSON the ECS and EC2 metadata endpoints return.
package struct MetadataCredentials: Decodable {
    var AccessKeyId: String
    var SecretAccessKey: String
    var Token: String?
    var Expiration: String?
    var Code: String?

    func credentials(source: String) throws -> AWSCredentials {
        if let code = Code, code != "Success" { throw KMSError(.credentials, "\(source) returned Code \(code)") }
        var expiration = Expiration.flatMap { try? Date.ISO8601FormatStyle().parse($0) }
            ?? Expiration.flatMap { try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse($0) }
            ?? Expiration.flatMap { try? Date($0, strategy: .iso8601) }
        // Temporary credentials whose expiry cannot be read are refreshed soon rather than kept forever.
        if expiration == nil, Expiration != nil || Token != nil { expiration = Date().addingTimeInterval(300) }
        return AWSCredentials(accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration: expiration)
    }

    package static func decode(_ data: Data, source: String) throws -> AWSCredentials {
        do { return try JSONDecoder().decode(MetadataCredentials.self, from: data).credentials(source: source) } catch let e as KMSError {
            throw e
        } catch {
            throw KMSError(.credentials, "\(source) returned credentials JSON that could not be parsed")
        }
    }
}

/// The ECS / EKS Pod Identity container credentials endpoint:
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (against `http://169.254.170.2`) or
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` (https, or http to loopback / the ECS and EKS link-local
/// addresses), with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`
/// sent as `Authorization`.
public struct ECSCredentialsProvider: AWSCredentialsProvider {
    let environment: [String: String]
    let timeout: TimeInterval

    /// - Parameters:
    ///   - environment: the variables to read. Default: the process environment.
    ///   - timeout: per request, seconds. Default 2.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, timeout: TimeInterval = 2) {
        self.environment = environment
        self.timeout = timeout
    }

    static let allowedHTTPHosts: Set<String> = ["127.0.0.1", "localhost", "::1", "[::1]", "169.254.170.2", "169.254.170.23",
                                                 "fd00:ec2::23", "[fd00:ec2::23]"]

    func endpoint() throws -> URL? {
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
            guard let url = URL(string: "http://169.254.170.2" + relative) else {
                throw KMSError(.credentials, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a valid path")
            }
            return url
        }
        if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty {
            guard let url = URL(string: full), let scheme = url.scheme?.lowercased(), let host = url.host else {
                throw KMSError(.credentials, "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL")
            }
            let loopback = AWSKMSClient.isLoopbackHost(host) || Self.allowedHTTPHosts.contains(host.lowercased())
            guard scheme == "https" || (scheme == "http" && loopback) else {
                throw KMSError(.credentials, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or http to a loopback/ECS/EKS address")
            }
            return url
        }
        return nil
    }

    public func credentials() async throws -> AWSCredentials? {
        guard let url = try endpoint() else { return nil }
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
            guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw KMSError(.credentials, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file)")
            }
            headers.append(("Authorization", token.trimmingCharacters(in: .whitespacesAndNewlines)))
        } else if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"], !token.isEmpty {
            headers.append(("Authorization", token))
        }
        let transport = HTTPTransport.shared
        let response: HTTPTransport.Response
        do { response = try await transport.send(method: "GET", url: url, headers: headers, body: nil, timeout: timeout) } catch {
            throw KMSError(.credentials, "container credentials endpoint \(HTTPTransport.redacted(url)) unreachable")
        }
        guard response.status == 200 else {
            throw KMSError(.credentials, "container credentials endpoint returned HTTP \(response.status)")
        }
        return try MetadataCredentials.decode(response.body, source: "container credentials endpoint")
    }
}

/// EC2 instance role credentials through IMDSv2 only: `PUT /latest/api/token`, then
/// `GET /latest/meta-data/iam/security-credentials/[role]` with the token. The endpoint is
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else by `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`
/// (`IPv4` → `http://169.254.169.254`, `IPv6` → `http://[fd00:ec2::254]`);
/// `AWS_EC2_METADATA_DISABLED=true` turns it off.
public struct IMDSCredentialsProvider: AWSCredentialsProvider {
    let environment: [String: String]
    let timeout: TimeInterval
    let tokenTTLSeconds: Int

    /// - Parameters:
    ///   - environment: the variables to read. Default: the process environment.
    ///   - timeout: per request, seconds. Default 1.
    ///   - tokenTTLSeconds: the session token lifetime asked for. Default 21600.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, timeout: TimeInterval = 1,
                tokenTTLSeconds: Int = 21600) {
        self.environment = environment
        self.timeout = timeout
        self.tokenTTLSeconds = tokenTTLSeconds
    }

    var endpoint: String {
        if let e = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"], !e.isEmpty { return e.hasSuffix("/") ? String(e.dropLast()) : e }
        return environment["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"]?.lowercased() == "ipv6"
            ? "http://[fd00:ec2::254]" : "http://169.254.169.254"
    }

    public func credentials() async throws -> AWSCredentials? {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" { return nil }
        let transport = HTTPTransport.shared
        guard let tokenURL = URL(string: endpoint + "/latest/api/token"),
              let listURL = URL(string: endpoint + "/latest/meta-data/iam/security-credentials/") else {
            throw KMSError(.credentials, "AWS_EC2_METADATA_SERVICE_ENDPOINT is not a valid URL")
        }
        let tokenResponse: HTTPTransport.Response
        do {
            tokenResponse = try await transport.send(method: "PUT", url: tokenURL,
                                                     headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(tokenTTLSeconds))],
                                                     body: Data(), timeout: timeout)
        } catch {
            return nil  // no metadata service: not on EC2
        }
        guard tokenResponse.status == 200, let token = String(data: tokenResponse.body, encoding: .utf8), !token.isEmpty else {
            throw KMSError(.credentials, "IMDSv2 token request returned HTTP \(tokenResponse.status)")
        }
        let auth = [(name: "X-aws-ec2-metadata-token", value: token)]
        let list = try await transport.send(method: "GET", url: listURL, headers: auth, body: nil, timeout: timeout)
        if list.status == 404 { return nil }  // no instance profile attached
        guard list.status == 200, let role = String(data: list.body, encoding: .utf8)?
            .split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw KMSError(.credentials, "IMDS role listing returned HTTP \(list.status)")
        }
        guard let roleURL = URL(string: endpoint + "/latest/meta-data/iam/security-credentials/" + SigV4.uriEncode(role, keepSlash: false))
        else { throw KMSError(.credentials, "IMDS returned an unusable role name") }
        let creds = try await transport.send(method: "GET", url: roleURL, headers: auth, body: nil, timeout: timeout)
        guard creds.status == 200 else { throw KMSError(.credentials, "IMDS credentials request returned HTTP \(creds.status)") }
        return try MetadataCredentials.decode(creds.body, source: "IMDS")
    }
}

/// Tries providers in order and caches the first credentials found until 5 minutes before they
/// expire; concurrent callers share one refresh.
public actor CredentialsProviderChain: AWSCredentialsProvider {
    private let providers: [any AWSCredentialsProvider]
    private let refreshMargin: TimeInterval
    private var cached: AWSCredentials?
    private var refreshing: Task<AWSCredentials, any Error>?

    /// - Parameters:
    ///   - providers: tried in order; the first non-nil result wins.
    ///   - refreshMargin: refresh this many seconds before expiration. Default 300.
    public init(_ providers: [any AWSCredentialsProvider], refreshMargin: TimeInterval = 300) {
        self.providers = providers
        self.refreshMargin = refreshMargin
    }

    /// The standard chain: environment, shared credentials/config files, ECS container endpoint,
    /// EC2 IMDSv2.
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> CredentialsProviderChain {
        CredentialsProviderChain([
            EnvironmentCredentialsProvider(environment: environment),
            ProfileCredentialsProvider(environment: environment),
            ECSCredentialsProvider(environment: environment),
            IMDSCredentialsProvider(environment: environment),
        ])
    }

    /// Cached or fresh credentials.
    ///
    /// - Throws: `KMSError` `.credentials` when no provider has credentials (listing why).
    public func credentials() async throws -> AWSCredentials? {
        if let cached, !cached.expires(within: refreshMargin) { return cached }
        if let refreshing { return try await refreshing.value }
        let providers = self.providers
        let task = Task<AWSCredentials, any Error> {
            var reasons: [String] = []
            for provider in providers {
                do {
                    if let found = try await provider.credentials() { return found }
                } catch let error as KMSError {
                    reasons.append(error.message)
                }
            }
            throw KMSError(.credentials, "no AWS credentials found (environment, shared files, ECS, IMDS)"
                + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; ")))
        }
        refreshing = task
        defer { refreshing = nil }
        let fresh = try await task.value
        cached = fresh
        return fresh
    }
}

/// Region resolution as the AWS SDKs do it: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's
/// `region` in the config file.
public enum AWSRegionResolver {
    /// The configured region, or `nil`.
    public static func region(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let r = environment["AWS_REGION"], !r.isEmpty { return r }
        if let r = environment["AWS_DEFAULT_REGION"], !r.isEmpty { return r }
        return ProfileCredentialsProvider(environment: environment).region()
    }
}
