/// Computes blind indexes, `HMAC-SHA256(key, tag ‖ value)` truncated to a number of bytes, with one
/// reusable HMAC context (no key schedule per value).
///
/// Thread safety: not thread-safe (it owns a libcrypto context); use one per connection or task.
public final class BlindIndexer {
    private let hmac: HMACContext

    /// - Parameter key: the column's blind-index key.
    public init(key: SecretBytes) throws {
        hmac = try key.withUnsafeBytes { try HMACContext(hash: .sha256, key: $0) }
    }

    /// The first `byteCount` bytes (1…32) of `HMAC-SHA256(key, tag ‖ value)`.
    public func index(tag: UInt8, value: [UInt8], byteCount: Int) throws -> [UInt8] {
        precondition((1...32).contains(byteCount), "a blind index is 1…32 bytes")
        var mac = [UInt8](repeating: 0, count: 32)
        var tagByte = tag
        try withUnsafeBytes(of: &tagByte) { tagBuffer in
            try value.withUnsafeBytes { valueBuffer in
                try mac.withUnsafeMutableBufferPointer { try hmac.mac(tagBuffer, valueBuffer, into: $0.baseAddress!) }
            }
        }
        return Array(mac.prefix(byteCount))
    }
}
