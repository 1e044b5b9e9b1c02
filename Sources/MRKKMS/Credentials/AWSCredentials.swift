import Foundation
import MRKCrypto

/// AWS credentials: access key id, secret access key (held in zeroed memory), optional session token
/// and expiration. `description` never shows the secret or the token.
public struct AWSCredentials: Sendable, CustomStringConvertible, CustomReflectable {
    public var accessKeyId: String
    /// The secret access key bytes (UTF-8).
    public var secretAccessKey: SecretBytes
    /// The session token of temporary credentials.
    public var sessionToken: String?
    /// When temporary credentials expire.
    public var expiration: Date?

    /// Credentials from strings (the secret is copied into `SecretBytes`).
    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = SecretBytes(Array(secretAccessKey.utf8))
        self.sessionToken = sessionToken.flatMap { $0.isEmpty ? nil : $0 }
        self.expiration = expiration
    }

    public var description: String {
        "AWSCredentials(accessKeyId: \(accessKeyId), secretAccessKey: <redacted>\(sessionToken == nil ? "" : ", sessionToken: <redacted>"))"
    }

    /// What `dump()` and debuggers show: the same redacted view as `description`.
    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyId": accessKeyId, "secretAccessKey": "<redacted>",
                                "sessionToken": sessionToken == nil ? "nil" : "<redacted>", "expiration": expiration as Any])
    }

    /// Whether the credentials expire within `margin` seconds of `now`.
    func expires(within margin: TimeInterval, now: Date = Date()) -> Bool {
        guard let expiration else { return false }
        return expiration.timeIntervalSince(now) <= margin
    }
}
