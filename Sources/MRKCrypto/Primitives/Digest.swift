import Foundation
internal import COpenSSL

/// One-shot message digests and HMAC (libcrypto `EVP_Digest`, `HMAC`).
public enum Digest {
    /// SHA-256 of `data`.
    public static func sha256(_ data: some ContiguousBytes) -> [UInt8] { digest(data, EVP_sha256(), 32) }
    /// SHA-384 of `data`.
    public static func sha384(_ data: some ContiguousBytes) -> [UInt8] { digest(data, EVP_sha384(), 48) }
    /// SHA-512 of `data`.
    public static func sha512(_ data: some ContiguousBytes) -> [UInt8] { digest(data, EVP_sha512(), 64) }

    private static func digest(_ data: some ContiguousBytes, _ md: OpaquePointer?, _ size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var outLen: UInt32 = 0
        let ok = data.withUnsafeBytes { d in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(d.baseAddress, d.count, o.baseAddress, &outLen, md, nil)
            }
        }
        precondition(ok == 1 && Int(outLen) == size, "EVP_Digest failed")
        return out
    }
}

/// HMAC over libcrypto.
public enum HMAC {
    /// HMAC-SHA256(key, data).
    public static func sha256(key: some ContiguousBytes, data: some ContiguousBytes) -> [UInt8] {
        mac(EVP_sha256(), 32, key: key, data: data)
    }

    /// HMAC-SHA256 keyed by secret key material.
    public static func sha256(key: SecretBytes, data: some ContiguousBytes) -> [UInt8] {
        key.withUnsafeBytes { mac(EVP_sha256(), 32, key: $0, data: data) }
    }

    /// HMAC-SHA512(key, data).
    public static func sha512(key: some ContiguousBytes, data: some ContiguousBytes) -> [UInt8] {
        mac(EVP_sha512(), 64, key: key, data: data)
    }

    private static func mac(_ md: OpaquePointer?, _ size: Int, key: some ContiguousBytes, data: some ContiguousBytes) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var outLen: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                out.withUnsafeMutableBufferPointer { o in
                    COpenSSL.HMAC(md, k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                  d.count, o.baseAddress, &outLen)
                }
            }
        }
        precondition(result != nil && Int(outLen) == size, "HMAC failed")
        return out
    }
}

/// PBKDF2 (RFC 8018) over libcrypto (`PKCS5_PBKDF2_HMAC`).
public enum PBKDF2 {
    /// PBKDF2-HMAC-SHA256 of `password` with `salt`, `iterations` rounds, `length` bytes (SCRAM's `Hi`).
    public static func sha256(password: some ContiguousBytes, salt: some ContiguousBytes, iterations: Int, length: Int = 32) -> [UInt8] {
        precondition(iterations > 0 && length > 0, "PBKDF2 needs iterations and a length")
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBytes { p in
            salt.withUnsafeBytes { s in
                out.withUnsafeMutableBufferPointer { o in
                    PKCS5_PBKDF2_HMAC(p.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(p.count),
                                      s.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(s.count), Int32(iterations),
                                      EVP_sha256(), Int32(length), o.baseAddress)
                }
            }
        }
        precondition(ok == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }
}
