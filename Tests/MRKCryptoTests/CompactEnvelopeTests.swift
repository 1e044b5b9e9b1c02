import Testing
@testable import MRKCrypto

@Suite struct CompactEnvelopeTests {
    let key = SecretBytes(randomCount: 32)
    let keyID = CompactKeyID(keyspace: 7, version: 3)
    let context = ColumnContext(table: "public.users", column: "email")

    func cipher() throws -> ColumnCipher { try ColumnCipher(dataKey: key, keyID: keyID) }

    @Test func roundTripsEveryTypeAndSize() throws {
        let c = try cipher()
        for type in PlaintextType.allCases {
            for size in [0, 1, 15, 16, 17, 64, 1000] {
                let plaintext = SecureRandom.bytes(count: size)
                let sealed = try c.seal(plaintext, type: type, context: context)
                #expect(sealed.count == size + CompactEnvelope.overheadByteCount)
                let opened = try c.open(sealed, context: context)
                #expect(opened.type == type)
                #expect(opened.bytes == plaintext)
            }
        }
    }

    @Test func overheadIsAtMost48Bytes() {
        #expect(CompactEnvelope.overheadByteCount == 42)
        #expect(CompactEnvelope.overheadByteCount <= 48)
    }

    @Test func headerNamesKeyAndTypeBeforeOpening() throws {
        let sealed = try cipher().seal(Array("x".utf8), type: .jsonb, context: context)
        let header = try CompactEnvelope.header(of: sealed)
        #expect(header.version == 1)
        #expect(header.type == .jsonb)
        #expect(header.keyID == keyID)
        #expect(Array(sealed[0..<10]) == [1, 15, 0, 0, 0, 7, 0, 0, 0, 3])
    }

    @Test func sealingTwiceGivesDifferentBytes() throws {
        let c = try cipher()
        let a = try c.seal(Array("same".utf8), type: .text, context: context)
        let b = try c.seal(Array("same".utf8), type: .text, context: context)
        #expect(a != b)
    }

    /// The documented construction, recomputed with libcrypto's own SP 800-108 KBKDF and a plain
    /// AES-256-GCM open: proves the fast path implements what docs/FORMATS.md says.
    @Test func matchesDocumentedConstruction() throws {
        let plaintext = Array("4111 1111 1111 1111".utf8)
        let ctx = ColumnContext(table: "billing.cards", column: "pan", rowIdentity: [0, 0, 0, 42])
        let sealed = try cipher().seal(plaintext, type: .text, context: ctx)
        let header = Array(sealed[0..<26])
        let perValueKey = try KBKDF.hmacSHA256Counter(key: key, label: Array("MRKProxy compact v1".utf8), context: header, length: 32)
        var aad = header
        aad.appendBigEndian(UInt32(13)); aad += Array("billing.cards".utf8)
        aad.appendBigEndian(UInt32(3)); aad += Array("pan".utf8)
        aad += [1, 0, 0, 0, 4, 0, 0, 0, 42]
        let opened = try AESGCM.open(Array(sealed[26...]), key: perValueKey, nonce: [UInt8](repeating: 0, count: 12), aad: aad)
        #expect(opened == plaintext)
    }

    @Test func kbkdfMatchesFastHMACPath() throws {
        // K(1) = HMAC(key, [1] ‖ label ‖ 0 ‖ context ‖ [256]) computed both ways.
        let label = Array("label".utf8), ctx = SecureRandom.bytes(count: 26)
        var message: [UInt8] = [0, 0, 0, 1] + label + [0] + ctx
        message.appendBigEndian(UInt32(256))
        #expect(try KBKDF.hmacSHA256Counter(key: key, label: label, context: ctx, length: 32).bytes == HMAC.sha256(key: key, data: message))
    }

    @Test func everySingleBitFlipIsRejected() throws {
        let c = try cipher()
        let sealed = try c.seal(SecureRandom.bytes(count: 16), type: .int8, context: context)
        for byte in sealed.indices {
            for bit in 0..<8 {
                var tampered = sealed
                tampered[byte] ^= UInt8(1 << bit)
                #expect(throws: CryptoError.self) { try c.open(tampered, context: context) }
            }
        }
    }

    @Test func everyTruncationAndExtensionIsRejected() throws {
        let c = try cipher()
        let sealed = try c.seal(SecureRandom.bytes(count: 16), type: .uuid, context: context)
        for length in 0..<sealed.count {
            #expect(throws: CryptoError.self) { try c.open(Array(sealed[0..<length]), context: context) }
        }
        for extra in 1...20 {
            #expect(throws: CryptoError.self) { try c.open(sealed + SecureRandom.bytes(count: extra), context: context) }
            #expect(throws: CryptoError.self) { try c.open(sealed + [UInt8](repeating: 0, count: extra), context: context) }
        }
    }

    @Test func randomBytesAreRejectedWithTypedErrors() throws {
        let c = try cipher()
        for i in 0..<2000 {
            var junk = SecureRandom.bytes(count: i % 120)
            if i % 2 == 0, !junk.isEmpty { junk[0] = 1 }  // valid version: reach the tag check
            if i % 4 == 0, junk.count > 9 { junk[1] = 3; junk[2...9] = [0, 0, 0, 7, 0, 0, 0, 3] }  // and this key id
            #expect(throws: CryptoError.self) { try c.open(junk, context: context) }
        }
    }

    @Test func wrongContextIsRejected() throws {
        let c = try cipher()
        let bound = ColumnContext(table: "public.users", column: "email", rowIdentity: Array("42".utf8))
        let sealed = try c.seal(Array("a@example.com".utf8), type: .text, context: bound)
        #expect(try c.open(sealed, context: bound).bytes == Array("a@example.com".utf8))
        for wrong in [
            ColumnContext(table: "public.admins", column: "email", rowIdentity: Array("42".utf8)),
            ColumnContext(table: "other.users", column: "email", rowIdentity: Array("42".utf8)),
            ColumnContext(table: "public.users", column: "phone", rowIdentity: Array("42".utf8)),
            ColumnContext(table: "public.users", column: "email", rowIdentity: Array("43".utf8)),
            ColumnContext(table: "public.users", column: "email", rowIdentity: []),
            ColumnContext(table: "public.users", column: "email"),
            ColumnContext(table: "public.usersemail", column: ""),
        ] {
            #expect(throws: CryptoError(.authenticationFailed, "AES-GCM authentication failed")) { try c.open(sealed, context: wrong) }
        }
    }

    @Test func wrongKeyIsRejected() throws {
        let sealed = try cipher().seal(Array("secret".utf8), type: .text, context: context)
        let otherKeySameID = try ColumnCipher(dataKey: SecretBytes(randomCount: 32), keyID: keyID)
        #expect(throws: CryptoError(.authenticationFailed, "AES-GCM authentication failed")) { try otherKeySameID.open(sealed, context: context) }
        let sameKeyOtherID = try ColumnCipher(dataKey: key, keyID: CompactKeyID(keyspace: 7, version: 4))
        let error = #expect(throws: CryptoError.self) { try sameKeyOtherID.open(sealed, context: context) }
        #expect(error?.code == .keyMismatch)
    }

    @Test func unknownVersionAndTypeAreTypedErrors() throws {
        var sealed = try cipher().seal(Array("v".utf8), type: .text, context: context)
        sealed[0] = 2
        #expect((#expect(throws: CryptoError.self) { try CompactEnvelope.header(of: sealed) })?.code == .unsupported)
        sealed[0] = 1; sealed[1] = 0xEE
        #expect((#expect(throws: CryptoError.self) { try CompactEnvelope.header(of: sealed) })?.code == .malformed)
        #expect((#expect(throws: CryptoError.self) { try CompactEnvelope.header(of: [UInt8]()) })?.code == .malformed)
    }

    @Test func rejectsNonAES256DataKeys() {
        #expect(throws: CryptoError.self) { try ColumnCipher(dataKey: SecretBytes(randomCount: 16), keyID: keyID) }
    }

    @Test func bufferAPIsRoundTripAndZeroOnFailure() throws {
        let c = try cipher()
        let plaintext = SecureRandom.bytes(count: 16)
        var sealed = [UInt8](repeating: 0, count: 58)
        let written = try plaintext.withUnsafeBytes { p in
            try sealed.withUnsafeMutableBytes { try c.seal(p, type: .bytea, context: context, into: $0) }
        }
        #expect(written == 58)
        var out = [UInt8](repeating: 0xAA, count: 16)
        let result = try sealed.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try c.open(s, context: context, into: $0) } }
        #expect(result.type == .bytea && result.count == 16 && out == plaintext)
        sealed[57] ^= 1
        out = [UInt8](repeating: 0xAA, count: 16)
        #expect(throws: CryptoError.self) {
            try sealed.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try c.open(s, context: context, into: $0) } }
        }
        #expect(out == [UInt8](repeating: 0, count: 16))
    }
    /// Binding to a row by passing its identity separately is the same construction as a context
    /// that carries it, in both directions, for short and long identities.
    @Test func rowIdentityPassedSeparatelyMatchesTheContextForm() throws {
        let c = try cipher()
        let plaintext = Array("123-45-6789".utf8)
        for identity in [[UInt8](), Array("42".utf8), SecureRandom.bytes(count: 300)] {
            let bound = context.withRowIdentity(identity)
            let sealed = try plaintext.withUnsafeBytes { p in
                try identity.withUnsafeBytes { try c.seal(p, type: .text, context: context, rowIdentity: $0) }
            }
            #expect(try c.open(sealed, context: bound).bytes == plaintext)
            let sealedWithContext = try c.seal(plaintext, type: .text, context: bound)
            var out = [UInt8](repeating: 0, count: plaintext.count)
            let opened = try sealedWithContext.withUnsafeBytes { s in
                try identity.withUnsafeBytes { i in try out.withUnsafeMutableBytes { try c.open(s, context: context, rowIdentity: i, into: $0) } }
            }
            #expect(opened.type == .text && out == plaintext)
            // Another row, or no row at all, does not open it.
            #expect(throws: CryptoError.self) { try c.open(sealed, context: context.withRowIdentity(identity + [0])) }
            #expect(throws: CryptoError.self) { try c.open(sealed, context: context) }
        }
        let unbound = try plaintext.withUnsafeBytes { try c.seal($0, type: .text, context: context, rowIdentity: nil) }
        #expect(try c.open(unbound, context: context).bytes == plaintext)
        #expect(throws: CryptoError.self) { try c.open(unbound, context: context.withRowIdentity([])) }
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block) through the HMAC-SHA256 path
    /// every per-value key and blind index uses.
    @Test func hmacSHA256MatchesRFC4231() throws {
        let cases: [(key: [UInt8], data: String, mac: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ]
        for (key, data, expected) in cases {
            let context = try key.withUnsafeBytes { try HMACContext(hash: .sha256, key: $0) }
            var mac = [UInt8](repeating: 0, count: 32)
            let message = Array(data.utf8)
            // Split across the three parts, as the compact format feeds it.
            try message.withUnsafeBytes { m in
                try mac.withUnsafeMutableBufferPointer { out in
                    try context.mac(UnsafeRawBufferPointer(rebasing: m[0..<3]), UnsafeRawBufferPointer(rebasing: m[3..<5]),
                                    UnsafeRawBufferPointer(rebasing: m[5...]), into: out.baseAddress!)
                }
            }
            #expect(mac.map { String(format: "%02x", $0) }.joined() == expected)
            #expect(HMAC.sha256(key: SecretBytes(key), data: message) == mac)
        }
    }
}
