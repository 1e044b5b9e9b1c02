internal import COpenSSL

/// AES-256-GCM (libcrypto EVP) with a 12-byte nonce and 16-byte tag.
///
/// These one-shot functions allocate an `EVP_CIPHER_CTX` per call; hot paths that seal millions of
/// values should hold an `AESGCM.Context` instead.
public enum AESGCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

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
    public final class Context {
        private let ctx: OpaquePointer

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
        public func sealRaw(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                            aad: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
            guard key.count == AESGCM.keyByteCount else { throw CryptoError(.invalidLength, "AES-256-GCM key must be 32 bytes") }
            guard nonce.count == AESGCM.nonceByteCount else { throw CryptoError(.invalidLength, "AES-GCM nonce must be 12 bytes") }
            guard output.count == plaintext.count + AESGCM.tagByteCount else {
                throw CryptoError(.invalidLength, "AES-GCM output buffer has the wrong size")
            }
            let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var len: Int32 = 0
            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key.u8, nonce.u8) == 1 else {
                throw CryptoError.libcrypto("EVP_EncryptInit_ex")
            }
            if aad.count > 0 {
                guard EVP_EncryptUpdate(ctx, nil, &len, aad.u8, Int32(aad.count)) == 1 else { throw CryptoError.libcrypto("AAD") }
            }
            var written = 0
            if plaintext.count > 0 {
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
                                out.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
                                throw error
                            }
                            return out
                        }
                    }
                }
            }
        }

        /// Opens into `output` (`ciphertextAndTag.count - 16` bytes). On failure `output` may hold
        /// unauthenticated bytes: the caller must discard (and should zero) it.
        public func openRaw(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, ciphertextAndTag: UnsafeRawBufferPointer,
                            aad: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
            guard key.count == AESGCM.keyByteCount else { throw CryptoError(.invalidLength, "AES-256-GCM key must be 32 bytes") }
            guard nonce.count == AESGCM.nonceByteCount else { throw CryptoError(.invalidLength, "AES-GCM nonce must be 12 bytes") }
            guard ciphertextAndTag.count >= AESGCM.tagByteCount,
                  output.count == ciphertextAndTag.count - AESGCM.tagByteCount else {
                throw CryptoError(.invalidLength, "AES-GCM output buffer has the wrong size")
            }
            let ctLen = ciphertextAndTag.count - AESGCM.tagByteCount
            var len: Int32 = 0
            guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key.u8, nonce.u8) == 1 else {
                throw CryptoError.libcrypto("EVP_DecryptInit_ex")
            }
            if aad.count > 0 {
                guard EVP_DecryptUpdate(ctx, nil, &len, aad.u8, Int32(aad.count)) == 1 else { throw CryptoError.libcrypto("AAD") }
            }
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
            var scratch = [UInt8](repeating: 0, count: 16)
            let ok = scratch.withUnsafeMutableBufferPointer { s in
                EVP_DecryptFinal_ex(ctx, (out.map { $0 + written }) ?? s.baseAddress, &len)
            }
            guard ok == 1 else {
                ERR_clear_error()
                throw CryptoError(.authenticationFailed, "AES-GCM authentication failed")
            }
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes as `UInt8*` for C calls (nil when empty).
    var u8: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
}
