import Foundation
internal import COpenSSL

/// Secret key material (data keys, branch keys, derived keys) held in memory that is zeroed with
/// `OPENSSL_cleanse` when the last reference goes away.
///
/// `SecretBytes` is a reference type so that copies share (and zero) one buffer; it is immutable
/// after creation, which makes it safe to share across tasks.
public final class SecretBytes: Sendable, Equatable {
    // Immutable after init; only read through `withUnsafeBytes`, zeroed in deinit.
    private nonisolated(unsafe) let storage: UnsafeMutableRawBufferPointer
    /// Number of key bytes.
    public let count: Int

    /// Copies `bytes` into fresh storage. The caller should zero its own copy if it holds one.
    public init(_ bytes: some Collection<UInt8>) {
        count = bytes.count
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = storage.initializeMemory(as: UInt8.self, from: bytes)
    }

    /// `count` bytes from OpenSSL's CSPRNG.
    public convenience init(randomCount count: Int) {
        var buffer = [UInt8](repeating: 0, count: count)
        SecureRandom.fill(&buffer)
        self.init(buffer)
        buffer.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// Calls `body` with the key bytes; do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy of the bytes, for wrapping by KMS or for tests. Prefer `withUnsafeBytes`.
    package var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Constant-time comparison (`CRYPTO_memcmp`).
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }
}

/// Constant-time equality of two byte strings of equal length (`CRYPTO_memcmp`).
public func constantTimeEquals(_ a: some ContiguousBytes, _ b: some ContiguousBytes) -> Bool {
    a.withUnsafeBytes { l in
        b.withUnsafeBytes { r in
            l.count == r.count && (l.count == 0 || CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0)
        }
    }
}

/// Secrets pass where Foundation's `ContiguousBytes` (arrays, slices, `Data`, raw buffers) do.
extension SecretBytes: ContiguousBytes {}

extension StaticString {
    /// The literal as a NUL-terminated C string in static storage. `OSSL_PARAM` keeps the key
    /// pointer it is given, so keys must not be Swift temporaries (short strings are bridged
    /// through a temporary copy that dies when the call returns).
    var cString: UnsafePointer<CChar> { UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self) }
}

/// Overwrites `buffer` with zeros with `OPENSSL_cleanse`, which the optimizer does not remove:
/// the one way MRKProxy wipes plaintext and key bytes it no longer needs.
package func secureZero(_ buffer: UnsafeMutableRawBufferPointer) {
    if buffer.count > 0 { OPENSSL_cleanse(buffer.baseAddress, buffer.count) }
}

/// Overwrites `bytes` with zeros (see `secureZero(_:)` for buffers).
package func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { secureZero($0) }
}
