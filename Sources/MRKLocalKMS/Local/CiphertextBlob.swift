import Foundation
import MRKKMS
import MRKCrypto

/// The embedded KMS's ciphertext blob. Byte layout (all integers big-endian):
///
/// ```
/// offset  size  field
/// 0       4     magic "LKMS"
/// 4       1     format version (1)
/// 5       1     key id length n (1…255)
/// 6       n     key id, UTF-8 (`mrk-…` or a UUID); no region, so any related MRK can decrypt
/// 6+n     4     key material version
/// 10+n    12    AES-GCM nonce (random)
/// 22+n    …     AES-256-GCM ciphertext followed by the 16-byte tag
/// ```
///
/// The AAD is the header (bytes 0 ..< 10+n) followed by the canonical encryption context: a 2-byte
/// pair count, then for each pair sorted by key bytes, 2-byte length + key, 2-byte length + value.
struct CiphertextBlob {
    static let magic: [UInt8] = Array("LKMS".utf8)
    static let formatVersion: UInt8 = 1

    var keyId: String
    var materialVersion: UInt32
    var nonce: [UInt8]
    var sealed: [UInt8]

    var header: [UInt8] {
        var out = Self.magic
        out.append(Self.formatVersion)
        let id = Array(keyId.utf8)
        out.append(UInt8(id.count))
        out += id
        out += [UInt8(materialVersion >> 24), UInt8((materialVersion >> 16) & 0xff), UInt8((materialVersion >> 8) & 0xff),
                UInt8(materialVersion & 0xff)]
        return out
    }

    var serialized: [UInt8] { header + nonce + sealed }

    init(keyId: String, materialVersion: UInt32, nonce: [UInt8], sealed: [UInt8]) {
        self.keyId = keyId
        self.materialVersion = materialVersion
        self.nonce = nonce
        self.sealed = sealed
    }

    /// Parses a blob; throws `InvalidCiphertextException` on anything malformed.
    init(parsing bytes: [UInt8]) throws {
        let invalid = KMSError(.invalidCiphertext, "the ciphertext is invalid or was not produced by this KMS")
        guard bytes.count >= 6, Array(bytes[0..<4]) == Self.magic, bytes[4] == Self.formatVersion else { throw invalid }
        let n = Int(bytes[5])
        guard n > 0, bytes.count >= 6 + n + 4 + AESGCM.nonceByteCount + AESGCM.tagByteCount,
              let id = String(validating: bytes[6..<(6 + n)], as: UTF8.self) else { throw invalid }
        keyId = id
        var v: UInt32 = 0
        for b in bytes[(6 + n)..<(10 + n)] { v = v << 8 | UInt32(b) }
        materialVersion = v
        nonce = Array(bytes[(10 + n)..<(22 + n)])
        sealed = Array(bytes[(22 + n)...])
    }

    static func canonicalContext(_ context: EncryptionContext) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ n: Int) { out += [UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] }
        let pairs = context.map { (Array($0.key.utf8), Array($0.value.utf8)) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        u16(pairs.count)
        for (k, v) in pairs {
            u16(k.count); out += k
            u16(v.count); out += v
        }
        return out
    }

    static func seal(_ plaintext: some ContiguousBytes, keyId: String, material: KeyMaterialVersion,
                     context: EncryptionContext) throws -> [UInt8] {
        var blob = CiphertextBlob(keyId: keyId, materialVersion: material.version,
                                  nonce: SecureRandom.bytes(count: AESGCM.nonceByteCount), sealed: [])
        blob.sealed = try AESGCM.seal(plaintext, key: material.key, nonce: blob.nonce, aad: blob.header + canonicalContext(context))
        return blob.serialized
    }

    func open(material: KeyMaterialVersion, context: EncryptionContext) throws -> SecretBytes {
        var plain: [UInt8]
        do {
            plain = try AESGCM.open(sealed, key: material.key, nonce: nonce, aad: header + Self.canonicalContext(context))
        } catch {
            throw KMSError(.invalidCiphertext, "the ciphertext or encryption context does not match")
        }
        defer { for i in plain.indices { plain[i] = 0 } }
        return SecretBytes(plain)
    }
}
