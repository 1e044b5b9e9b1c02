import Foundation
internal import COpenSSL

/// AES-GCM (libcrypto EVP) with a 12-byte nonce and 16-byte tag.
///
/// The one-shot functions and the `Context` methods without a `keySize` take AES-256 keys; the
/// `keySize:` variants also accept the AES-128/192 keys that older AWS Encryption SDK suites use.
/// The one-shot functions allocate an `EVP_CIPHER_CTX` per call; hot paths that seal millions of
/// values should hold an `AESGCM.Context` instead.
public enum AESGCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// An AES key size.
    public enum KeySize: Int, Sendable, CaseIterable {
        case aes128 = 16
        case aes192 = 24
        case aes256 = 32

        /// Key length in bytes.
        public var byteCount: Int { rawValue }

        /// The provider cipher, fetched once per process.
        var cipher: OpaquePointer {
            switch self {
            case .aes128: FetchedCiphers.aes128GCM
            case .aes192: FetchedCiphers.aes192GCM
            case .aes256: FetchedCiphers.aes256GCM
            }
        }
    }

    /// Encrypts `plaintext`, returning ciphertext followed by the 16-byte tag.
    public static func seal(_ plaintext: some ContiguousBytes, key: SecretBytes, nonce: some ContiguousBytes,
                            aad: some ContiguousBytes) throws -> [UInt8] {
        try Context().seal(plaintext, key: key, nonce: nonce, aad: aad)
    }

    /// Decrypts `ciphertextAndTag` (ciphertext followed by the 16-byte tag). Throws
    /// `.authenticationFailed` without releasing any plaintext when the tag does not verify.
    public static func open(_ ciphertextAndTag: some ContiguousBytes, key: SecretBytes, nonce: some ContiguousBytes,
                            aad: some ContiguousBytes) throws -> [UInt8] {
        try Context().open(ciphertextAndTag, key: key, nonce: nonce, aad: aad)
    }

    /// A reusable cipher context. Not thread-safe: use one per task/thread.
    ///
    /// The context keeps its provider cipher between calls, so re-keying costs only the AES key
    /// schedule (no algorithm fetch, no allocation).
    public final class Context {
        private let ctx: OpaquePointer
        /// The cipher the context was last initialised with (nil before first use).
        private var currentCipher: OpaquePointer?

        public init() {
            guard let ctx = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new failed: out of memory") }
            self.ctx = ctx
        }

        deinit { EVP_CIPHER_CTX_free(ctx) }

        /// See `AESGCM.seal`.
        public func seal(_ plaintext: some ContiguousBytes, key: SecretBytes, nonce: some ContiguousBytes,
                         aad: some ContiguousBytes) throws -> [UInt8] {
            try key.withUnsafeBytes { k in
                try nonce.withUnsafeBytes { n in
                    try plaintext.withUnsafeBytes { p in
                        try aad.withUnsafeBytes { a in
                            var out = [UInt8](repeating: 0, count: p.count + AESGCM.tagByteCount)
                            try out.withUnsafeMutableBytes { o in
                                try sealRaw(key: k, nonce: n, plaintext: p, aad: a, output: o)
                            }
                            return out
                        }
                    }
                }
            }
        }

        /// Seals into `output`, which must hold `plaintext.count + 16` bytes (ciphertext ‖ tag).
        /// The key must be 32 bytes (AES-256).
        package func sealRaw(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                            aad: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
            try sealParts(keySize: .aes256, key: key, nonce: nonce, plaintext: plaintext, aad: aad, output: output)
        }

        /// Seals with an AES-128/192/256 key into `output` (`plaintext.count + 16` bytes).
        /// - Throws: `.invalidLength` when the key does not match `keySize` or a buffer is mis-sized.
        package func sealRaw(keySize: KeySize, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                            plaintext: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                            output: UnsafeMutableRawBufferPointer) throws {
            try sealParts(keySize: keySize, key: key, nonce: nonce, plaintext: plaintext, aad: aad, output: output)
        }

        /// Seals with the associated data given in up to three parts (fed to GCM in order, so the
        /// caller need not concatenate them, and nothing is allocated).
        func sealParts(keySize: KeySize, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                       plaintext: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                       aad2: UnsafeRawBufferPointer = .empty, aad3: UnsafeRawBufferPointer = .empty,
                       output: UnsafeMutableRawBufferPointer) throws {
            guard output.count == plaintext.count + AESGCM.tagByteCount else {
                throw CryptoError(.invalidLength, "AES-GCM output buffer has the wrong size")
            }
            try initialise(encrypt: true, keySize: keySize, key: key, nonce: nonce)
            var len: Int32 = 0
            try addAAD(aad, encrypt: true)
            try addAAD(aad2, encrypt: true)
            try addAAD(aad3, encrypt: true)
            let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var written = 0
            if plaintext.count > 0 {
                guard plaintext.count <= Int(Int32.max) else { throw CryptoError(.invalidLength, "AES-GCM input too large") }
                guard EVP_EncryptUpdate(ctx, out, &len, plaintext.u8, Int32(plaintext.count)) == 1 else {
                    throw CryptoError.libcrypto("EVP_EncryptUpdate")
                }
                written = Int(len)
            }
            guard EVP_EncryptFinal_ex(ctx, out + written, &len) == 1 else { throw CryptoError.libcrypto("EVP_EncryptFinal_ex") }
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(AESGCM.tagByteCount), out + plaintext.count) == 1 else {
                throw CryptoError.libcrypto("EVP_CTRL_GCM_GET_TAG")
            }
        }

        /// See `AESGCM.open`.
        public func open(_ ciphertextAndTag: some ContiguousBytes, key: SecretBytes, nonce: some ContiguousBytes,
                         aad: some ContiguousBytes) throws -> [UInt8] {
            try key.withUnsafeBytes { k in
                try nonce.withUnsafeBytes { n in
                    try ciphertextAndTag.withUnsafeBytes { c in
                        try aad.withUnsafeBytes { a in
                            guard c.count >= AESGCM.tagByteCount else {
                                throw CryptoError(.authenticationFailed, "AES-GCM ciphertext shorter than its tag")
                            }
                            var out = [UInt8](repeating: 0, count: c.count - AESGCM.tagByteCount)
                            do {
                                try out.withUnsafeMutableBytes { o in
                                    try openRaw(key: k, nonce: n, ciphertextAndTag: c, aad: a, output: o)
                                }
                            } catch {
                                out.withUnsafeMutableBytes { secureZero($0) }
                                throw error
                            }
                            return out
                        }
                    }
                }
            }
        }

        /// Opens into `output` (`ciphertextAndTag.count - 16` bytes). The key must be 32 bytes.
        /// On failure `output` may hold unauthenticated bytes: the caller must discard (and should
        /// zero) it.
        package func openRaw(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, ciphertextAndTag: UnsafeRawBufferPointer,
                            aad: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
            try openParts(keySize: .aes256, key: key, nonce: nonce, ciphertextAndTag: ciphertextAndTag, aad: aad, output: output)
        }

        /// Opens with an AES-128/192/256 key. Same contract as `openRaw(key:nonce:ciphertextAndTag:aad:output:)`.
        package func openRaw(keySize: KeySize, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                            ciphertextAndTag: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                            output: UnsafeMutableRawBufferPointer) throws {
            try openParts(keySize: keySize, key: key, nonce: nonce, ciphertextAndTag: ciphertextAndTag, aad: aad, output: output)
        }

        /// Opens with the associated data given in up to three parts.
        func openParts(keySize: KeySize, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                       ciphertextAndTag: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                       aad2: UnsafeRawBufferPointer = .empty, aad3: UnsafeRawBufferPointer = .empty,
                       output: UnsafeMutableRawBufferPointer) throws {
            guard ciphertextAndTag.count >= AESGCM.tagByteCount,
                  output.count == ciphertextAndTag.count - AESGCM.tagByteCount else {
                throw CryptoError(.invalidLength, "AES-GCM output buffer has the wrong size")
            }
            let ctLen = ciphertextAndTag.count - AESGCM.tagByteCount
            guard ctLen <= Int(Int32.max) else { throw CryptoError(.invalidLength, "AES-GCM input too large") }
            try initialise(encrypt: false, keySize: keySize, key: key, nonce: nonce)
            var len: Int32 = 0
            try addAAD(aad, encrypt: false)
            try addAAD(aad2, encrypt: false)
            try addAAD(aad3, encrypt: false)
            let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
            var written = 0
            if ctLen > 0 {
                guard EVP_DecryptUpdate(ctx, out, &len, ciphertextAndTag.u8, Int32(ctLen)) == 1 else {
                    throw CryptoError.libcrypto("EVP_DecryptUpdate")
                }
                written = Int(len)
            }
            let tag = UnsafeMutableRawPointer(mutating: ciphertextAndTag.baseAddress! + ctLen)
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(AESGCM.tagByteCount), tag) == 1 else {
                throw CryptoError.libcrypto("EVP_CTRL_GCM_SET_TAG")
            }
            // GCM's final step writes no bytes; a 16-byte stack scratch covers the empty-output case.
            let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { s in
                EVP_DecryptFinal_ex(ctx, (out.map { $0 + written }) ?? s.baseAddress, &len)
            }
            guard ok == 1 else {
                ERR_clear_error()
                throw CryptoError(.authenticationFailed, "AES-GCM authentication failed")
            }
        }

        private func addAAD(_ part: UnsafeRawBufferPointer, encrypt: Bool) throws {
            guard part.count > 0 else { return }
            guard part.count <= Int(Int32.max) else { throw CryptoError(.invalidLength, "AES-GCM associated data too large") }
            var len: Int32 = 0
            let ok = encrypt ? EVP_EncryptUpdate(ctx, nil, &len, part.u8, Int32(part.count))
                             : EVP_DecryptUpdate(ctx, nil, &len, part.u8, Int32(part.count))
            guard ok == 1 else { throw CryptoError.libcrypto("AES-GCM AAD") }
        }

        /// Sets cipher (only when it changes: a full init re-creates the provider context), key and IV.
        private func initialise(encrypt: Bool, keySize: KeySize, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer) throws {
            guard key.count == keySize.byteCount else {
                throw CryptoError(.invalidLength, "AES-\(keySize.byteCount * 8)-GCM key must be \(keySize.byteCount) bytes")
            }
            guard nonce.count == AESGCM.nonceByteCount else { throw CryptoError(.invalidLength, "AES-GCM nonce must be 12 bytes") }
            let cipher = keySize.cipher
            if currentCipher != cipher {
                currentCipher = nil
                let ok = encrypt ? EVP_EncryptInit_ex(ctx, cipher, nil, nil, nil) : EVP_DecryptInit_ex(ctx, cipher, nil, nil, nil)
                guard ok == 1 else { throw CryptoError.libcrypto("EVP_CipherInit_ex") }
                currentCipher = cipher
            }
            let ok = encrypt ? EVP_EncryptInit_ex(ctx, nil, nil, key.u8, nonce.u8) : EVP_DecryptInit_ex(ctx, nil, nil, key.u8, nonce.u8)
            guard ok == 1 else { throw CryptoError.libcrypto("EVP_CipherInit_ex(key)") }
        }
    }
}

/// Provider ciphers fetched once (`EVP_CIPHER_fetch`): passing the legacy `EVP_aes_256_gcm()` to
/// every init makes OpenSSL 3 fetch the implementation again on each call.
enum FetchedCiphers {
    // Fetched EVP_CIPHER objects are immutable, reference-counted and documented as shareable
    // between threads; they live for the whole process.
    nonisolated(unsafe) static let aes128GCM: OpaquePointer = fetch("AES-128-GCM")
    nonisolated(unsafe) static let aes192GCM: OpaquePointer = fetch("AES-192-GCM")
    nonisolated(unsafe) static let aes256GCM: OpaquePointer = fetch("AES-256-GCM")

    private static func fetch(_ name: String) -> OpaquePointer {
        guard let cipher = EVP_CIPHER_fetch(nil, name, nil) else { fatalError("libcrypto has no \(name)") }
        return cipher
    }
}

extension UnsafeRawBufferPointer {
    /// An empty buffer.
    static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// The bytes as `UInt8*` for C calls (nil when empty).
    var u8: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
}
