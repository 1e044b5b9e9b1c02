import Foundation
internal import COpenSSL

/// ECDSA over the NIST curves P-256 and P-384 (libcrypto `EVP_PKEY`, `EVP_DigestSign*`), with
/// DER (`ECDSA-Sig-Value`) signatures and SEC 1 §2.3.3 compressed public keys, as the AWS
/// Encryption SDK uses them.
public enum ECDSA {
    /// A curve and the hash that goes with it in the Encryption SDK suites.
    public enum Curve: Sendable, Hashable {
        /// P-256 with SHA-256.
        case p256
        /// P-384 with SHA-384.
        case p384

        var groupName: String { switch self { case .p256: "P-256"; case .p384: "P-384" } }
        var digestName: String { switch self { case .p256: "SHA256"; case .p384: "SHA384" } }
        /// Length of a compressed public key (0x02/0x03 ‖ x).
        public var compressedPublicKeyByteCount: Int { switch self { case .p256: 33; case .p384: 49 } }
    }

    /// A private signing key. Immutable after creation.
    public final class SigningKey: @unchecked Sendable {
        // @unchecked: the EVP_PKEY is never mutated after init, and libcrypto allows concurrent signing with one key through separate
        // EVP_MD_CTX objects, which `Signer` creates per use.
        let pkey: OpaquePointer
        /// The key's curve.
        public let curve: Curve

        /// Generates a fresh key pair from OpenSSL's CSPRNG.
        /// - Throws: `CryptoError` `.libcrypto` if generation fails.
        public init(generating curve: Curve) throws {
            guard let pctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw CryptoError.libcrypto("EVP_PKEY_CTX_new_from_name") }
            defer { EVP_PKEY_CTX_free(pctx) }
            var key: OpaquePointer?
            guard EVP_PKEY_keygen_init(pctx) == 1,
                  EVP_PKEY_CTX_set_group_name(pctx, curve.groupName) == 1,
                  EVP_PKEY_generate(pctx, &key) == 1, let key else {
                throw CryptoError.libcrypto("EC key generation")
            }
            self.pkey = key
            self.curve = curve
        }

        deinit { EVP_PKEY_free(pkey) }

        /// The public key, compressed (SEC 1 §2.3.3).
        public var compressedPublicKey: [UInt8] {
            var buffer: UnsafeMutablePointer<UInt8>?
            let count = EVP_PKEY_get1_encoded_public_key(pkey, &buffer)
            guard count > 0, let buffer else { fatalError("EVP_PKEY_get1_encoded_public_key failed") }
            defer { COpenSSL_free(buffer) }
            let encoded = UnsafeBufferPointer(start: buffer, count: count)
            // libcrypto encodes uncompressed (04 ‖ x ‖ y); SEC 1 §2.3.3 compression keeps x and
            // records y's parity in the prefix (02 even, 03 odd).
            let coordinate = curve.compressedPublicKeyByteCount - 1
            precondition(count == 1 + 2 * coordinate && encoded[0] == 4, "unexpected EC public key encoding")
            return [2 | (encoded[count - 1] & 1)] + encoded[1...coordinate]
        }

        /// A streaming signer over the curve's hash.
        public func signer() throws -> Signer { try Signer(key: self) }

        /// Signs `message` in one go; returns a DER signature.
        public func sign(_ message: some ContiguousBytes) throws -> [UInt8] {
            let signer = try signer()
            try signer.update(message)
            return try signer.finalize()
        }
    }

    /// A public verification key.
    public final class VerifyingKey: @unchecked Sendable {
        // @unchecked: the EVP_PKEY is never mutated after init; verification uses a fresh
        // EVP_MD_CTX per `Verifier`.
        let pkey: OpaquePointer
        /// The key's curve.
        public let curve: Curve

        /// Imports a SEC 1 encoded point (compressed or uncompressed). The point must lie on `curve`.
        /// - Throws: `CryptoError` `.malformed` when the bytes are not a valid point.
        public init(encodedPoint: some ContiguousBytes, curve: Curve) throws {
            guard let pctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw CryptoError.libcrypto("EVP_PKEY_CTX_new_from_name") }
            defer { EVP_PKEY_CTX_free(pctx) }
            var key: OpaquePointer?
            let selection = Int32(OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS | OSSL_KEYMGMT_SELECT_OTHER_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
            let ok: Int32 = curve.groupName.withCString { group in
                encodedPoint.withUnsafeBytes { point in
                    guard point.count > 0 else { return 0 }
                    var params = [
                        OSSL_PARAM_construct_utf8_string(StaticString("group").cString, UnsafeMutablePointer(mutating: group), 0),
                        OSSL_PARAM_construct_octet_string(StaticString("pub").cString, UnsafeMutableRawPointer(mutating: point.baseAddress!), point.count),
                        OSSL_PARAM_construct_end(),
                    ]
                    return params.withUnsafeMutableBufferPointer { p in
                        guard EVP_PKEY_fromdata_init(pctx) == 1 else { return 0 }
                        return EVP_PKEY_fromdata(pctx, &key, selection, p.baseAddress)
                    }
                }
            }
            guard ok == 1, let key else {
                ERR_clear_error()
                throw CryptoError(.malformed, "invalid \(curve.groupName) public key")
            }
            self.pkey = key
            self.curve = curve
        }

        deinit { EVP_PKEY_free(pkey) }

        /// A streaming verifier over the curve's hash.
        public func verifier() throws -> Verifier { try Verifier(key: self) }

        /// Whether `signature` (DER) is valid for `message`.
        public func isValidSignature(_ signature: some ContiguousBytes, for message: some ContiguousBytes) throws -> Bool {
            let verifier = try verifier()
            try verifier.update(message)
            return verifier.verify(signature)
        }
    }

    /// Hashes data incrementally and signs it. Single use, not thread-safe.
    public final class Signer {
        private let mdctx: OpaquePointer
        private let key: SigningKey

        init(key: SigningKey) throws {
            guard let mdctx = EVP_MD_CTX_new() else { throw CryptoError.libcrypto("EVP_MD_CTX_new") }
            self.mdctx = mdctx
            self.key = key
            guard EVP_DigestSignInit_ex(mdctx, nil, key.curve.digestName, nil, nil, key.pkey, nil) == 1 else {
                throw CryptoError.libcrypto("EVP_DigestSignInit_ex")
            }
        }

        deinit { EVP_MD_CTX_free(mdctx) }

        /// Adds `data` to the signed message.
        public func update(_ data: some ContiguousBytes) throws {
            try data.withUnsafeBytes { d in
                guard d.count == 0 || EVP_DigestSignUpdate(mdctx, d.baseAddress, d.count) == 1 else {
                    throw CryptoError.libcrypto("EVP_DigestSignUpdate")
                }
            }
        }

        /// The DER signature over everything added.
        public func finalize() throws -> [UInt8] {
            var length = 0
            guard EVP_DigestSignFinal(mdctx, nil, &length) == 1 else { throw CryptoError.libcrypto("EVP_DigestSignFinal") }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_DigestSignFinal(mdctx, &signature, &length) == 1 else { throw CryptoError.libcrypto("EVP_DigestSignFinal") }
            return Array(signature.prefix(length))
        }
    }

    /// Hashes data incrementally and verifies a signature over it. Single use, not thread-safe.
    public final class Verifier {
        private let mdctx: OpaquePointer
        private let key: VerifyingKey

        init(key: VerifyingKey) throws {
            guard let mdctx = EVP_MD_CTX_new() else { throw CryptoError.libcrypto("EVP_MD_CTX_new") }
            self.mdctx = mdctx
            self.key = key
            guard EVP_DigestVerifyInit_ex(mdctx, nil, key.curve.digestName, nil, nil, key.pkey, nil) == 1 else {
                throw CryptoError.libcrypto("EVP_DigestVerifyInit_ex")
            }
        }

        deinit { EVP_MD_CTX_free(mdctx) }

        /// Adds `data` to the verified message.
        public func update(_ data: some ContiguousBytes) throws {
            try data.withUnsafeBytes { d in
                guard d.count == 0 || EVP_DigestVerifyUpdate(mdctx, d.baseAddress, d.count) == 1 else {
                    throw CryptoError.libcrypto("EVP_DigestVerifyUpdate")
                }
            }
        }

        /// Whether `signature` (strict DER) verifies over everything added.
        public func verify(_ signature: some ContiguousBytes) -> Bool {
            let ok = signature.withUnsafeBytes { s in
                s.count > 0 && EVP_DigestVerifyFinal(mdctx, s.u8, s.count) == 1
            }
            ERR_clear_error()
            return ok
        }
    }
}
