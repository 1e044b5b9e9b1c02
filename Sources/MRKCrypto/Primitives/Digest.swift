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
