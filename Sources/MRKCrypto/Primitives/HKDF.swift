internal import COpenSSL

/// HKDF (RFC 5869) over libcrypto's `EVP_KDF` "HKDF".
public enum HKDF {
    /// The hash HKDF runs over.
    public enum Hash: Sendable {
        case sha256, sha384, sha512
        var name: String { switch self { case .sha256: "SHA256"; case .sha384: "SHA384"; case .sha512: "SHA512" } }
    }

    /// Extract-and-expand: `length` bytes from `ikm`, `salt` and `info`.
    public static func deriveKey(_ hash: Hash, ikm: some ContiguousBytes, salt: some ContiguousBytes,
                                 info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm: ikm, salt: salt, info: info, length: length)
    }

    /// Expand only (RFC 5869 §2.3): `ikm` is already a pseudorandom key.
    public static func expand(_ hash: Hash, prk: some ContiguousBytes, info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXPAND_ONLY, ikm: prk, salt: [UInt8](), info: info, length: length)
    }

    private static func derive(_ hash: Hash, mode: Int32, ikm: some ContiguousBytes, salt: some ContiguousBytes,
                               info: some ContiguousBytes, length: Int) throws -> SecretBytes {
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { throw CryptoError.libcrypto("EVP_KDF_fetch(HKDF)") }
        defer { EVP_KDF_free(kdf) }
        guard let kctx = EVP_KDF_CTX_new(kdf) else { throw CryptoError.libcrypto("EVP_KDF_CTX_new") }
        defer { EVP_KDF_CTX_free(kctx) }
        var out = [UInt8](repeating: 0, count: length)
        defer { out.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        var modeValue = mode
        let ok: Int32 = hash.name.withCString { digest in
            ikm.withUnsafeBytes { k in
                salt.withUnsafeBytes { s in
                    info.withUnsafeBytes { i in
                        var params = [OSSL_PARAM]()
                        params.append(OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, UnsafeMutablePointer(mutating: digest), 0))
                        params.append(OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &modeValue))
                        params.append(OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, UnsafeMutableRawPointer(mutating: k.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!), k.count))
                        if s.count > 0 {
                            params.append(OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, UnsafeMutableRawPointer(mutating: s.baseAddress!), s.count))
                        }
                        if i.count > 0 {
                            params.append(OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, UnsafeMutableRawPointer(mutating: i.baseAddress!), i.count))
                        }
                        params.append(OSSL_PARAM_construct_end())
                        return out.withUnsafeMutableBufferPointer { o in
                            params.withUnsafeBufferPointer { p in EVP_KDF_derive(kctx, o.baseAddress, length, p.baseAddress) }
                        }
                    }
                }
            }
        }
        guard ok == 1 else { throw CryptoError.libcrypto("HKDF derive") }
        return SecretBytes(out)
    }
}
