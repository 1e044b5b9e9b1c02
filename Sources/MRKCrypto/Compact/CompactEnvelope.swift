import Foundation
/// The compact column-value format (version 1): the default storage format for an encrypted column.
///
/// ```
/// offset  size  field
///  0      1     format version (0x01)
///  1      1     plaintext type tag (PlaintextType raw value)
///  2      4     key id: keyspace (u32, big endian)
///  6      4     key id: key version (u32, big endian)
/// 10     16     salt (random)
/// 26      n     AES-256-GCM ciphertext (n = plaintext length)
/// 26+n   16     AES-256-GCM tag
/// ```
///
/// Overhead is 42 bytes. The per-value key is
/// `K = HMAC-SHA256(dataKey, 00000001 ‖ "MRKProxy compact v1" ‖ 00 ‖ bytes[0..<26] ‖ 00000100)`
/// (NIST SP 800-108 counter mode, one block, L = 256), the nonce is twelve zero bytes (each key
/// seals exactly one value) and the associated data is `bytes[0..<26] ‖ ColumnContext.encoded`.
/// See docs/FORMATS.md.
public enum CompactEnvelope {
    /// The only format version this build writes and reads.
    public static let version: UInt8 = 1
    /// Version, type, key id.
    public static let fixedHeaderByteCount = 10
    /// Random salt fed to the per-value key derivation.
    public static let saltByteCount = 16
    /// AES-GCM tag.
    public static let tagByteCount = 16
    /// Everything before the ciphertext (fixed header + salt): authenticated and fed to the KDF.
    public static let headerByteCount = fixedHeaderByteCount + saltByteCount
    /// Bytes added to every value.
    public static let overheadByteCount = headerByteCount + tagByteCount

    /// Label of the SP 800-108 derivation.
    static let kdfLabel: [UInt8] = Array("MRKProxy compact v1".utf8)

    /// Size of the sealed form of a plaintext of `plaintextByteCount` bytes.
    public static func sealedByteCount(plaintextByteCount: Int) -> Int { plaintextByteCount + overheadByteCount }

    /// The clear-text header of a sealed value.
    public struct Header: Hashable, Sendable {
        /// Format version (always 1 for a parsed header).
        public let version: UInt8
        /// The recorded plaintext type. Not authenticated until the value is opened.
        public let type: PlaintextType
        /// The key that sealed the value. Not authenticated until the value is opened.
        public let keyID: CompactKeyID
    }

    /// Reads the header of a sealed value without a key, so the caller can fetch the right key
    /// version before opening. Nothing read here is authenticated yet.
    /// - Throws: `CryptoError` `.malformed` (too short, unknown type tag) or `.unsupported` (unknown version).
    public static func header(of sealed: some ContiguousBytes) throws -> Header {
        try sealed.withUnsafeBytes { try header(raw: $0) }
    }

    /// `header(of:)` for bytes in place.
    public static func header(raw s: UnsafeRawBufferPointer) throws -> Header {
        guard s.count >= 1 else { throw CryptoError(.malformed, "empty compact value") }
        guard s[0] == version else { throw CryptoError(.unsupported, "compact format version \(s[0]) is not supported") }
        guard s.count >= overheadByteCount else {
            throw CryptoError(.malformed, "compact value shorter than its \(overheadByteCount)-byte overhead")
        }
        guard let type = PlaintextType(rawValue: s[1]) else { throw CryptoError(.malformed, "unknown plaintext type tag \(s[1])") }
        return Header(version: s[0], type: type, keyID: CompactKeyID(keyspace: s.loadBigEndianUInt32(at: 2),
                                                                      version: s.loadBigEndianUInt32(at: 6)))
    }
}

extension UnsafeRawBufferPointer {
    func loadBigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }
}
