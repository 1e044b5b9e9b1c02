import Foundation
internal import COpenSSL

/// NIST SP 800-108 key derivation in counter mode with HMAC-SHA256 (the KDF the AWS Hierarchical
/// keyring uses): `K(i) = HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ context ‖ [L]₃₂)`, output `K(1) ‖ K(2) …`
/// truncated to `L` bits.
public enum KBKDF {
    /// Derives `length` bytes with libcrypto's `EVP_KDF` "KBKDF" (counter mode, HMAC-SHA256).
    /// This is the reference path; `ColumnCipher` computes the same function with a reusable,
    /// pre-keyed HMAC context.
    /// - Throws: `CryptoError` `.libcrypto` if libcrypto fails, `.invalidLength` for an empty key.
    public static func hmacSHA256Counter(key: SecretBytes, label: some ContiguousBytes, context: some ContiguousBytes,
                                         length: Int) throws -> SecretBytes {
        guard key.count > 0, length > 0 else { throw CryptoError(.invalidLength, "KBKDF key and length must be non-empty") }
        guard let kdf = EVP_KDF_fetch(nil, "KBKDF", nil) else { throw CryptoError.libcrypto("EVP_KDF_fetch(KBKDF)") }
        defer { EVP_KDF_free(kdf) }
        guard let kctx = EVP_KDF_CTX_new(kdf) else { throw CryptoError.libcrypto("EVP_KDF_CTX_new") }
        defer { EVP_KDF_CTX_free(kctx) }
        var out = [UInt8](repeating: 0, count: length)
        defer { out.withUnsafeMutableBytes { secureZero($0) } }
        let ok: Int32 = "counter".withCString { mode in
            "HMAC".withCString { mac in
                "SHA256".withCString { digest in
                    key.withUnsafeBytes { k in
                        label.withUnsafeBytes { l in
                            context.withUnsafeBytes { c in
                                var params = [OSSL_PARAM]()
                                params.append(OSSL_PARAM_construct_utf8_string(StaticString("mode").cString, UnsafeMutablePointer(mutating: mode), 0))
                                params.append(OSSL_PARAM_construct_utf8_string(StaticString("mac").cString, UnsafeMutablePointer(mutating: mac), 0))
                                params.append(OSSL_PARAM_construct_utf8_string(StaticString("digest").cString, UnsafeMutablePointer(mutating: digest), 0))
                                params.append(OSSL_PARAM_construct_octet_string(StaticString("key").cString, UnsafeMutableRawPointer(mutating: k.baseAddress!), k.count))
                                if l.count > 0 {
                                    params.append(OSSL_PARAM_construct_octet_string(StaticString("salt").cString, UnsafeMutableRawPointer(mutating: l.baseAddress!), l.count))
                                }
                                if c.count > 0 {
                                    params.append(OSSL_PARAM_construct_octet_string(StaticString("info").cString, UnsafeMutableRawPointer(mutating: c.baseAddress!), c.count))
                                }
                                params.append(OSSL_PARAM_construct_end())
                                return out.withUnsafeMutableBufferPointer { o in
                                    params.withUnsafeBufferPointer { p in EVP_KDF_derive(kctx, o.baseAddress, length, p.baseAddress) }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard ok == 1 else { throw CryptoError.libcrypto("KBKDF derive") }
        return SecretBytes(out)
    }
}

/// A reusable HMAC context. Setting a key computes the inner/outer states once; each `mac` call
/// starts from them, so repeated MACs under one key cost no key schedule and no algorithm fetch.
/// HMAC-SHA256 (every per-value MAC of the compact format and blind indexes) copies keyed
/// `SHA256_CTX` states directly; other hashes use `EVP_MAC`. Not thread-safe.
final class HMACContext {
    private enum Backend {
        /// Keyed inner/outer SHA-256 states; cleansed and freed in `deinit`.
        case sha256(UnsafeMutablePointer<COpenSSL_HMACSHA256Key>)
        case evp(OpaquePointer)
    }
    private let backend: Backend
    /// Output length in bytes.
    let outputByteCount: Int

    /// - Parameter key: the key, or nil to set one later with `setKey`.
    init(hash: HKDF.Hash, key: UnsafeRawBufferPointer? = nil) throws {
        outputByteCount = hash.byteCount
        if hash == .sha256 {
            let state = UnsafeMutablePointer<COpenSSL_HMACSHA256Key>.allocate(capacity: 1)
            state.initialize(to: COpenSSL_HMACSHA256Key())
            backend = .sha256(state)
        } else {
            guard let ctx = EVP_MAC_CTX_new(FetchedMACs.hmac) else { throw CryptoError.libcrypto("EVP_MAC_CTX_new") }
            let ok: Int32 = hash.name.withCString { digest in
                var params = [
                    OSSL_PARAM_construct_utf8_string(StaticString("digest").cString, UnsafeMutablePointer(mutating: digest), 0),
                    OSSL_PARAM_construct_end(),
                ]
                return params.withUnsafeMutableBufferPointer { p in EVP_MAC_CTX_set_params(ctx, p.baseAddress) }
            }
            guard ok == 1 else {
                EVP_MAC_CTX_free(ctx)
                throw CryptoError.libcrypto("HMAC digest")
            }
            backend = .evp(ctx)
        }
        try setKey(key ?? .empty)
    }

    deinit {
        switch backend {
        case .sha256(let state):
            OPENSSL_cleanse(state, MemoryLayout<COpenSSL_HMACSHA256Key>.size)
            state.deallocate()
        case .evp(let ctx):
            EVP_MAC_CTX_free(ctx)
        }
    }

    /// Replaces the key. An empty key is allowed (HMAC pads it with zeros).
    func setKey(_ key: UnsafeRawBufferPointer) throws {
        switch backend {
        case .sha256(let state):
            guard COpenSSL_hmac_sha256_setkey(state, key.u8, key.count) == 1 else { throw CryptoError.libcrypto("HMAC-SHA256 key") }
        case .evp(let ctx):
            // EVP_MAC_init treats a NULL key as "keep the old key", so an empty key needs a real pointer.
            let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { dummy in
                EVP_MAC_init(ctx, key.u8 ?? UnsafePointer(dummy.baseAddress!), key.count, nil)
            }
            guard ok == 1 else { throw CryptoError.libcrypto("EVP_MAC_init") }
        }
    }

    /// Writes HMAC(key, part1 ‖ part2 ‖ part3) to `output` (`outputByteCount` bytes).
    func mac(_ part1: UnsafeRawBufferPointer, _ part2: UnsafeRawBufferPointer = .empty, _ part3: UnsafeRawBufferPointer = .empty,
             into output: UnsafeMutablePointer<UInt8>) throws {
        switch backend {
        case .sha256(let state):
            guard COpenSSL_hmac_sha256(state, part1.baseAddress, part1.count, part2.baseAddress, part2.count,
                                       part3.baseAddress, part3.count, output) == 1 else {
                throw CryptoError.libcrypto("HMAC-SHA256")
            }
        case .evp(let ctx):
            var outLen = 0
            guard EVP_MAC_init(ctx, nil, 0, nil) == 1,
                  part1.count == 0 || EVP_MAC_update(ctx, part1.u8, part1.count) == 1,
                  part2.count == 0 || EVP_MAC_update(ctx, part2.u8, part2.count) == 1,
                  part3.count == 0 || EVP_MAC_update(ctx, part3.u8, part3.count) == 1,
                  EVP_MAC_final(ctx, output, &outLen, outputByteCount) == 1, outLen == outputByteCount else {
                throw CryptoError.libcrypto("HMAC")
            }
        }
    }
}

/// MAC algorithms fetched once per process.
enum FetchedMACs {
    // A fetched EVP_MAC is immutable and reference-counted; OpenSSL documents it as shareable.
    nonisolated(unsafe) static let hmac: OpaquePointer = {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { fatalError("libcrypto has no HMAC") }
        return mac
    }()
}
