import Foundation
internal import COpenSSL

/// HKDF (RFC 5869) over libcrypto's `EVP_KDF` "HKDF".
public enum HKDF {
    /// The hash HKDF runs over.
    public enum Hash: Sendable {
        case sha256, sha384, sha512
        var name: String { switch self { case .sha256: "SHA256"; case .sha384: "SHA384"; case .sha512: "SHA512" } }
        /// Output length of the hash in bytes.
        public var byteCount: Int { switch self { case .sha256: 32; case .sha384: 48; case .sha512: 64 } }
    }

    /// Extract-and-expand: `length` bytes from `ikm`, `salt` and `info`.
    public static func deriveKey(_ hash: Hash, ikm: some ContiguousBytes, salt: some ContiguousBytes,
                                 info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm: ikm, salt: salt, info: info, length: length)
    }

    /// Extract only (RFC 5869 §2.2): the pseudorandom key (hash-length bytes) from `ikm` and `salt`.
    /// An empty salt means hash-length zero bytes, as the RFC specifies.
    public static func extract(_ hash: Hash, ikm: some ContiguousBytes, salt: some ContiguousBytes) throws -> SecretBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm: ikm, salt: salt, info: [UInt8](), length: hash.byteCount)
    }

    /// Expand only (RFC 5869 §2.3): `ikm` is already a pseudorandom key.
    public static func expand(_ hash: Hash, prk: some ContiguousBytes, info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXPAND_ONLY, ikm: prk, salt: [UInt8](), info: info, length: length)
    }

    private static func derive(_ hash: Hash, mode: Int32, ikm: some ContiguousBytes, salt: some ContiguousBytes,
                               info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        guard let kctx = EVP_KDF_CTX_new(FetchedKDFs.hkdf) else { throw CryptoError.libcrypto("EVP_KDF_CTX_new") }
        defer { EVP_KDF_CTX_free(kctx) }
        var out = [UInt8](repeating: 0, count: length)
        defer { out.withUnsafeMutableBytes { secureZero($0) } }
        var modeValue = mode
        let ok: Int32 = withUnsafeMutablePointer(to: &modeValue) { mode in hash.name.withCString { digest in
            ikm.withUnsafeBytes { k in
                salt.withUnsafeBytes { s in
                    info.withUnsafeBytes { i in
                        var params = [OSSL_PARAM]()
                        params.append(OSSL_PARAM_construct_utf8_string(StaticString("digest").cString, UnsafeMutablePointer(mutating: digest), 0))
                        params.append(OSSL_PARAM_construct_int(StaticString("mode").cString, mode))
                        params.append(OSSL_PARAM_construct_octet_string(StaticString("key").cString, UnsafeMutableRawPointer(mutating: k.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!), k.count))
                        if s.count > 0 {
                            params.append(OSSL_PARAM_construct_octet_string(StaticString("salt").cString, UnsafeMutableRawPointer(mutating: s.baseAddress!), s.count))
                        }
                        if i.count > 0 {
                            params.append(OSSL_PARAM_construct_octet_string(StaticString("info").cString, UnsafeMutableRawPointer(mutating: i.baseAddress!), i.count))
                        }
                        params.append(OSSL_PARAM_construct_end())
                        return out.withUnsafeMutableBufferPointer { o in
                            params.withUnsafeBufferPointer { p in EVP_KDF_derive(kctx, o.baseAddress, length, p.baseAddress) }
                        }
                    }
                }
            }
        } }
        guard ok == 1 else { throw CryptoError.libcrypto("HKDF derive") }
        return SecretBytes(out)
    }
}

/// KDF algorithms fetched once per process.
enum FetchedKDFs {
    // A fetched EVP_KDF is immutable and reference-counted; OpenSSL documents it as shareable.
    nonisolated(unsafe) static let hkdf: OpaquePointer = {
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { fatalError("libcrypto has no HKDF") }
        return kdf
    }()
}

extension HKDF {
    /// RFC 5869 extract-then-expand composed on one reusable HMAC context (`EVP_MAC`), deriving
    /// several outputs from one PRK. `EVP_KDF` builds a fresh HMAC context (and fetches the
    /// digest) for every derive, which costs several microseconds per call; this is the hot path
    /// of ESDK message key derivation. Tests pin it to the `EVP_KDF` functions above.
    /// - Parameters:
    ///   - salt: the extract salt; empty means hash-length zeros.
    ///   - outputs: (info, length) pairs expanded from the same PRK.
    static func extractAndExpand(_ hash: Hash, ikm: SecretBytes, salt: some ContiguousBytes,
                                 outputs: [(info: [UInt8], length: Int)]) throws -> [SecretBytes] {
        let hashLength = hash.byteCount
        let mac = try HMACContext(hash: hash)
        var prk = [UInt8](repeating: 0, count: hashLength)
        var block = [UInt8](repeating: 0, count: hashLength)
        defer {
            prk.withUnsafeMutableBytes { secureZero($0) }
            block.withUnsafeMutableBytes { secureZero($0) }
        }
        try salt.withUnsafeBytes { s in try mac.setKey(s) }
        try ikm.withUnsafeBytes { k in try prk.withUnsafeMutableBufferPointer { try mac.mac(k, into: $0.baseAddress!) } }
        try prk.withUnsafeBytes { try mac.setKey($0) }
        var results = [SecretBytes]()
        for (info, length) in outputs {
            guard length > 0, length <= 255 * hashLength else { throw CryptoError(.invalidLength, "HKDF output length out of range") }
            var okm = [UInt8]()
            okm.reserveCapacity(length + hashLength)
            var counter: UInt8 = 1
            while okm.count < length {
                let previous = counter == 1 ? [UInt8]() : block
                try previous.withUnsafeBytes { t in
                    try info.withUnsafeBytes { i in
                        try withUnsafeBytes(of: counter) { c in
                            try block.withUnsafeMutableBufferPointer { try mac.mac(t, i, c, into: $0.baseAddress!) }
                        }
                    }
                }
                okm += block
                counter &+= 1
            }
            results.append(SecretBytes(okm.prefix(length)))
            okm.withUnsafeMutableBytes { secureZero($0) }
        }
        return results
    }
}
