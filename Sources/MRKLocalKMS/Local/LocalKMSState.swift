import MRKKMS
import Foundation
import MRKCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A credential the embedded KMS accepts, and the principal it maps to.
///
/// Identities live in the state file (`identities`); out of the box the state has access key id
/// `test` / secret `test` → `arn:aws:iam::111122223333:root`, the usual local-AWS convention.
public struct LocalKMSIdentity: Codable, Sendable, Hashable {
    public var accessKeyId: String
    /// The SigV4 secret. Stored in the state file (mode 0600); never logged.
    public var secretAccessKey: String
    /// The principal ARN the key policies see, e.g. `arn:aws:iam::111122223333:role/app`.
    public var principal: String

    public init(accessKeyId: String, secretAccessKey: String, principal: String) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.principal = principal
    }
}

/// One version of a key family's 256-bit material. Shared by every region of an MRK.
struct KeyMaterialVersion: Codable {
    var version: UInt32
    var createdAt: Double
    var key: SecretBytes

    init(version: UInt32, createdAt: Double, key: SecretBytes) {
        self.version = version
        self.createdAt = createdAt
        self.key = key
    }

    enum CodingKeys: String, CodingKey { case version, createdAt, key }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(UInt32.self, forKey: .version)
        createdAt = try c.decode(Double.self, forKey: .createdAt)
        let encoded = try c.decode(String.self, forKey: .key)
        guard var raw = Data(base64Encoded: encoded), raw.count == 32 else {
            throw KMSError(.configuration, "state file: key material version \(version) is not 32 base64 bytes")
        }
        key = SecretBytes(raw)
        raw.resetBytes(in: 0..<raw.count)
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(Data(key.bytes).base64EncodedString(), forKey: .key)
    }
}

/// What all regions of a key share: id, material versions, primary region, rotation settings.
struct KeyFamily: Codable {
    var keyId: String
    var multiRegion: Bool
    var primaryRegion: String
    var creationDate: Double
    var rotationEnabled: Bool = false
    var rotationPeriodInDays: Int = 365
    var lastRotationDate: Double?
    var materials: [KeyMaterialVersion]

    var current: KeyMaterialVersion { materials.max { $0.version < $1.version }! }
    func material(_ version: UInt32) -> KeyMaterialVersion? { materials.first { $0.version == version } }
}

/// What each region's key holds independently: policy, enabled state, description, tags.
struct RegionKey: Codable {
    var region: String
    var keyId: String
    var description: String
    var enabled: Bool
    /// The key policy document (JSON text).
    var policy: String
    var tags: [String: String]
    var creationDate: Double
}

/// An alias in one region.
struct AliasEntry: Codable {
    var region: String
    /// `alias/…`
    var name: String
    var targetKeyId: String
    var creationDate: Double
}

/// The persisted state of the embedded KMS.
struct LocalKMSState: Codable {
    var formatVersion: Int = 1
    var accountId: String = "111122223333"
    var partition: String = "aws"
    var identities: [LocalKMSIdentity] = [
        LocalKMSIdentity(accessKeyId: "test", secretAccessKey: "test", principal: "arn:aws:iam::111122223333:root"),
    ]
    var families: [String: KeyFamily] = [:]
    var keys: [RegionKey] = []
    var aliases: [AliasEntry] = []

    init() {}

    enum CodingKeys: String, CodingKey { case formatVersion, accountId, partition, identities, families, keys, aliases }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decodeIfPresent(Int.self, forKey: .formatVersion) ?? 1
        accountId = try c.decodeIfPresent(String.self, forKey: .accountId) ?? "111122223333"
        partition = try c.decodeIfPresent(String.self, forKey: .partition) ?? "aws"
        identities = try c.decodeIfPresent([LocalKMSIdentity].self, forKey: .identities) ?? LocalKMSState().identities
        families = try c.decodeIfPresent([String: KeyFamily].self, forKey: .families) ?? [:]
        keys = try c.decodeIfPresent([RegionKey].self, forKey: .keys) ?? []
        aliases = try c.decodeIfPresent([AliasEntry].self, forKey: .aliases) ?? []
    }

    /// Loads `path`, or returns a fresh default state when the file does not exist.
    static func load(from path: String) throws -> LocalKMSState {
        guard FileManager.default.fileExists(atPath: path) else { return LocalKMSState() }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw KMSError(.configuration, "cannot read KMS state file \(path)")
        }
        do { return try JSONDecoder().decode(LocalKMSState.self, from: data) } catch let error as KMSError {
            throw error
        } catch {
            throw KMSError(.configuration, "KMS state file \(path) is not valid state JSON")
        }
    }

    /// Writes the state atomically, readable by the owner only (`AtomicFile`).
    func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(self)
        defer { data.resetBytes(in: 0..<data.count) }
        do {
            try AtomicFile.write(data, to: path)
        } catch {
            throw KMSError(.configuration, "cannot write KMS state file: \(error.description)")
        }
    }
}
