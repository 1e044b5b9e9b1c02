import Foundation

/// A SCRAM-SHA-256 verifier in PostgreSQL's form,
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64): what the proxy's
/// configuration stores for a user instead of a password.
public struct SCRAMVerifier: Sendable, Equatable {
    public let iterations: Int
    public let salt: [UInt8]
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    /// Parses PostgreSQL's verifier text; nil when it is not one.
    public init?(_ text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "SCRAM-SHA-256" else { return nil }
        let head = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        let keys = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard head.count == 2, keys.count == 2, let iterations = Int(head[0]), iterations >= 1, iterations <= 10_000_000,
              let salt = Data(base64Encoded: String(head[1])), !salt.isEmpty,
              let stored = Data(base64Encoded: String(keys[0])), stored.count == 32,
              let server = Data(base64Encoded: String(keys[1])), server.count == 32 else { return nil }
        self.iterations = iterations
        self.salt = Array(salt)
        storedKey = Array(stored)
        serverKey = Array(server)
    }

    /// The verifier of `password` (as PostgreSQL computes it for `password_encryption = scram-sha-256`).
    public init(password: String, salt: [UInt8] = SecureRandom.bytes(count: 16), iterations: Int = 4096) {
        let salted = PBKDF2.sha256(password: Array(password.utf8), salt: salt, iterations: iterations)
        let clientKey = HMAC.sha256(key: salted, data: Array("Client Key".utf8))
        self.iterations = iterations
        self.salt = salt
        storedKey = Digest.sha256(clientKey)
        serverKey = HMAC.sha256(key: salted, data: Array("Server Key".utf8))
    }

    public var text: String {
        "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$\(Data(storedKey).base64EncodedString()):\(Data(serverKey).base64EncodedString())"
    }
}

