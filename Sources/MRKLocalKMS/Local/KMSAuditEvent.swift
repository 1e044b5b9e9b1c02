import MRKCrypto
import MRKKMS
import Foundation

/// One CloudTrail-like record of a call to the embedded KMS, written as a JSON line to the audit log
/// and kept in memory. It names keys and principals; it never holds plaintext or key material.
public struct KMSAuditEvent: Codable, Sendable, Hashable {
    /// ISO 8601 time of the call (UTC, milliseconds).
    public var time: String
    /// The region that served the call (from the SigV4 credential scope over HTTP).
    public var region: String
    /// The caller's principal ARN.
    public var principal: String
    /// The access key id used over HTTP, when there was one.
    public var accessKeyId: String?
    /// The KMS operation, e.g. `Decrypt`.
    public var operation: String
    /// The ARN of the key the call resolved to, in `region`, when one was resolved.
    public var keyArn: String?
    /// The encryption context of the call (non-secret by definition).
    public var encryptionContext: EncryptionContext?
    /// `Success` or `Failure`.
    public var outcome: String
    /// The AWS error name on failure.
    public var errorCode: String?
    /// The short error message on failure.
    public var errorMessage: String?
    /// A unique id for the call.
    public var requestId: String
    /// The client address for HTTP calls.
    public var sourceIPAddress: String?

    /// Whether the call succeeded.
    public var succeeded: Bool { outcome == "Success" }

    enum CodingKeys: String, CodingKey {
        case time = "eventTime", region = "awsRegion", principal, accessKeyId, operation = "eventName", keyArn
        case encryptionContext, outcome, errorCode, errorMessage, requestId, sourceIPAddress
    }

    /// Reads an audit log file (one JSON object per line; blank lines are skipped).
    ///
    /// - Throws: `KMSError` `.configuration` when the file cannot be read or a line is not an event.
    public static func readLog(at path: String) throws -> [KMSAuditEvent] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw KMSError(.configuration, "cannot read audit log \(path)")
        }
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { return nil }
            do { return try decoder.decode(KMSAuditEvent.self, from: Data(trimmed.utf8)) } catch {
                throw KMSError(.configuration, "audit log \(path) has a line that is not an event")
            }
        }
    }

    /// The event as one JSON line (sorted keys, no trailing newline).
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(data: encoder.encode(self), encoding: .utf8)) ?? "{}"
    }
}
