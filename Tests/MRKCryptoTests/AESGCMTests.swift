import Foundation
import Testing
@testable import MRKCrypto

@Suite struct AESGCMTests {
    @Test func roundTripAndTamper() throws {
        let key = SecretBytes(randomCount: 32)
        let nonce = SecureRandom.bytes(count: 12)
        let sealed = try AESGCM.seal(Array("hello".utf8), key: key, nonce: nonce, aad: Array("ctx".utf8))
        #expect(sealed.count == 5 + 16)
        #expect(try AESGCM.open(sealed, key: key, nonce: nonce, aad: Array("ctx".utf8)) == Array("hello".utf8))
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: key, nonce: nonce, aad: Array("cty".utf8)) }
    }

    @Test func hkdfRFC5869Case1() throws {
        // RFC 5869 A.1
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let salt: [UInt8] = Array(0x00...0x0c)
        let info: [UInt8] = Array(0xf0...0xf9)
        let okm = try HKDF.deriveKey(.sha256, ikm: ikm, salt: salt, info: info, length: 42)
        #expect(okm.bytes.map { String(format: "%02x", $0) }.joined() ==
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }
}
