import Foundation

/// The result of decrypting an Encryption SDK message.
public struct DecryptedMessage: Sendable {
    /// The authenticated plaintext.
    public let plaintext: [UInt8]
    /// The authenticated encryption context (stored pairs plus the caller's reproduced pairs).
    public let encryptionContext: [String: String]
    /// The suite the message was written with.
    public let algorithmSuite: AlgorithmSuite
    /// The message id.
    public let messageID: [UInt8]
}

/// A message whose header has been parsed but not yet authenticated: the first step of a
/// two-step decrypt that lets a caller look up (and cache) decryption materials by EDK.
public struct ESDKMessage: Sendable {
    let bytes: [UInt8]
    package let header: MessageHeader

    /// The suite named in the header.
    public var algorithmSuite: AlgorithmSuite { header.suite }
    /// The encrypted data keys (unauthenticated until decryption succeeds).
    public var encryptedDataKeys: [EncryptedDataKey] { header.encryptedDataKeys }
    /// The stored encryption context (unauthenticated until decryption succeeds).
    public var storedEncryptionContext: [String: String] { header.storedEncryptionContext }
}

/// Reads and writes the AWS Encryption SDK message format (data-format/, client-apis/).
///
/// Encrypt writes message format 2.0, framed, with suite 0x0478 or 0x0578. Decrypt reads all 11
/// ESDK suites, framed and non-framed, checks key commitment, authenticates the header before
/// anything else and releases plaintext only after every frame and the signature verified.
/// The whole message is held in memory (no streaming API).
///
/// `ESDKClient` is a value type without shared state: safe to use from any number of tasks.
public struct ESDKClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Which suites may be used. Default: `.requireEncryptRequireDecrypt`.
        public var commitmentPolicy: CommitmentPolicy
        /// Suite for new messages. Default: 0x0578 (committing, ECDSA P-384 signed), like the SDKs.
        public var algorithmSuite: AlgorithmSuite
        /// Plaintext bytes per frame. Default: 4096.
        public var frameLength: UInt32
        /// Reject messages with more encrypted data keys than this. Default: nil (no limit).
        public var maxEncryptedDataKeys: Int?

        public init(commitmentPolicy: CommitmentPolicy = .requireEncryptRequireDecrypt,
                    algorithmSuite: AlgorithmSuite = .aes256GCMHKDFSHA512CommitKeyECDSAP384,
                    frameLength: UInt32 = 4096, maxEncryptedDataKeys: Int? = nil) {
            self.commitmentPolicy = commitmentPolicy
            self.algorithmSuite = algorithmSuite
            self.frameLength = frameLength
            self.maxEncryptedDataKeys = maxEncryptedDataKeys
        }
    }

    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: Encrypt

    /// Encrypts `plaintext` into a message whose data key `keyring` generates and wraps.
    /// - Parameters:
    ///   - encryptionContext: non-secret pairs authenticated with the message. Keys starting with
    ///     `aws-crypto-` are reserved.
    ///   - requiredEncryptionContextKeys: keys of `encryptionContext` that are authenticated but not
    ///     stored; the decrypting side must supply them again.
    /// - Throws: `CryptoError` (`.policyViolation`, `.invalidInput`, keyring errors…).
    public func encrypt(_ plaintext: [UInt8], keyring: some Keyring, encryptionContext: [String: String] = [:],
                        requiredEncryptionContextKeys: Set<String> = []) async throws -> [UInt8] {
        let materials = try await encryptionMaterials(keyring: keyring, encryptionContext: encryptionContext,
                                                      requiredEncryptionContextKeys: requiredEncryptionContextKeys)
        return try encrypt(plaintext, materials: materials)
    }

    /// Obtains encryption materials (data key, EDKs, signing key) from `keyring`, as the default
    /// CMM does. The result may be cached and passed to `encrypt(_:materials:)` for many messages.
    public func encryptionMaterials(keyring: some Keyring, encryptionContext: [String: String] = [:],
                                    requiredEncryptionContextKeys: Set<String> = []) async throws -> EncryptionMaterials {
        let suite = configuration.algorithmSuite
        try checkEncryptable(suite)
        guard !encryptionContext.keys.contains(where: { $0.hasPrefix(EncryptionContextCodec.reservedPrefix) }) else {
            throw CryptoError(.invalidInput, "encryption context keys starting with aws-crypto- are reserved")
        }
        guard requiredEncryptionContextKeys.isSubset(of: encryptionContext.keys) else {
            throw CryptoError(.invalidInput, "required encryption context keys must be in the encryption context")
        }
        var context = encryptionContext
        var signingKey: ECDSA.SigningKey?
        if let curve = suite.signatureCurve {
            let key = try ECDSA.SigningKey(generating: curve)
            context[EncryptionContextCodec.publicKeyKey] = Data(key.compressedPublicKey).base64EncodedString()
            signingKey = key
        }
        let request = EncryptionMaterials(algorithmSuite: suite, encryptionContext: context,
                                          requiredEncryptionContextKeys: requiredEncryptionContextKeys, signingKey: signingKey)
        let materials = try await keyring.onEncrypt(request)
        try validate(materials)
        return materials
    }

    /// Encrypts with ready materials (for example cached ones): no keyring call.
    /// - Throws: `CryptoError` when the materials are incomplete or not allowed by the policy.
    public func encrypt(_ plaintext: [UInt8], materials: EncryptionMaterials) throws -> [UInt8] {
        try validate(materials)
        let suite = materials.algorithmSuite
        let frameLength = configuration.frameLength
        guard frameLength > 0 else { throw CryptoError(.invalidInput, "frame length must be positive") }
        let regularFrames = plaintext.isEmpty ? 0 : (plaintext.count - 1) / Int(frameLength)
        guard regularFrames < Int(UInt32.max) - 1 else { throw CryptoError(.invalidInput, "plaintext needs too many frames") }
        guard let dataKey = materials.plaintextDataKey else { throw CryptoError(.invalidInput, "materials without a data key") }

        let messageID = SecureRandom.bytes(count: suite.messageIDByteCount)
        let keys = try Self.deriveKeys(suite: suite, dataKey: dataKey, messageID: messageID)
        guard let commitKey = keys.commitKey else { throw CryptoError(.unsupported, "only committing suites are written") }
        var stored = materials.encryptionContext
        var authenticatedOnly = [String: String]()
        for key in materials.requiredEncryptionContextKeys {
            authenticatedOnly[key] = stored.removeValue(forKey: key)
        }
        let headerBody = try MessageHeader.serializeV2Body(
            suite: suite, messageID: messageID, storedEncryptionContext: stored,
            encryptedDataKeys: materials.encryptedDataKeys, frameLength: frameLength, commitKey: commitKey.bytes)
        let gcm = AESGCM.Context()
        let finalLength = plaintext.count - regularFrames * Int(frameLength)
        var out = [UInt8]()
        out.reserveCapacity(headerBody.count + 16 + (regularFrames + 1) * 36 + plaintext.count + 8 + (suite.isSigned ? 106 : 0))
        out += headerBody
        let zeroIV = [UInt8](repeating: 0, count: MessageHeader.ivLength)
        let authOnly = try EncryptionContextCodec.serialize(authenticatedOnly)
        try keys.encryptionKey.withUnsafeBytes { key in
            // Header authentication: GCM over nothing, AAD = header body ‖ authenticated-only context.
            var tag = [UInt8](repeating: 0, count: AESGCM.tagByteCount)
            try zeroIV.withUnsafeBytes { iv in
                try headerBody.withUnsafeBytes { body in
                    try authOnly.withUnsafeBytes { extra in
                        try tag.withUnsafeMutableBytes { t in
                            try gcm.sealParts(keySize: suite.keySize, key: key, nonce: iv, plaintext: .empty, aad: body, aad2: extra, output: t)
                        }
                    }
                }
            }
            out += tag
            try plaintext.withUnsafeBytes { p in
                for index in 0...regularFrames {
                    let sequenceNumber = UInt32(index + 1)
                    let isFinal = index == regularFrames
                    let start = index * Int(frameLength)
                    let length = isFinal ? finalLength : Int(frameLength)
                    if isFinal { out.appendBigEndian(UInt32.max) }
                    out.appendBigEndian(sequenceNumber)
                    let iv = BodyAAD.iv(sequenceNumber)
                    out += iv
                    if isFinal { out.appendBigEndian(UInt32(length)) }
                    let aad = BodyAAD.make(messageID: messageID, content: isFinal ? BodyAAD.finalFrame : BodyAAD.frame,
                                           sequenceNumber: sequenceNumber, length: UInt64(length))
                    let offset = out.count
                    out.append(contentsOf: repeatElement(0, count: length + AESGCM.tagByteCount))
                    try iv.withUnsafeBytes { n in
                        try aad.withUnsafeBytes { a in
                            try out.withUnsafeMutableBytes { o in
                                try gcm.sealParts(keySize: suite.keySize, key: key, nonce: n,
                                                  plaintext: UnsafeRawBufferPointer(rebasing: p[start..<(start + length)]), aad: a,
                                                  output: UnsafeMutableRawBufferPointer(rebasing: o[offset..<(offset + length + AESGCM.tagByteCount)]))
                            }
                        }
                    }
                }
            }
        }
        if suite.isSigned {
            guard let signingKey = materials.signingKey else { throw CryptoError(.invalidInput, "signed suite without a signing key") }
            let signature = try signingKey.sign(out)
            try out.appendLengthPrefixed16(signature, field: "signature")
        }
        return out
    }

    private func checkEncryptable(_ suite: AlgorithmSuite) throws {
        guard configuration.commitmentPolicy.allowsEncrypt(suite) else {
            throw CryptoError(.policyViolation, "commitment policy forbids encrypting with \(suite.name)")
        }
        guard suite.messageFormatVersion == 2 else {
            throw CryptoError(.unsupported, "encryption writes message format 2 (suites 0x0478, 0x0578) only")
        }
    }

    private func validate(_ materials: EncryptionMaterials) throws {
        let suite = materials.algorithmSuite
        try checkEncryptable(suite)
        guard let key = materials.plaintextDataKey, key.count == suite.dataKeyByteCount else {
            throw CryptoError(.invalidLength, "encryption materials need a \(suite.dataKeyByteCount)-byte data key")
        }
        guard !materials.encryptedDataKeys.isEmpty else { throw CryptoError(.invalidInput, "encryption materials without encrypted data keys") }
        if let max = configuration.maxEncryptedDataKeys, materials.encryptedDataKeys.count > max {
            throw CryptoError(.invalidInput, "more encrypted data keys than the configured \(max)")
        }
        guard suite.isSigned == (materials.signingKey != nil),
              suite.isSigned == (materials.encryptionContext[EncryptionContextCodec.publicKeyKey] != nil) else {
            throw CryptoError(.invalidInput, "signing key and aws-crypto-public-key must be present exactly for signed suites")
        }
        guard materials.requiredEncryptionContextKeys.isSubset(of: materials.encryptionContext.keys) else {
            throw CryptoError(.invalidInput, "required encryption context keys must be in the encryption context")
        }
    }

    // MARK: Decrypt

    /// Decrypts a message with `keyring`.
    /// - Parameter encryptionContext: the reproduced encryption context: pairs that must match the
    ///   stored ones, and the pairs that were authenticated but not stored.
    /// - Throws: `CryptoError` (`.malformed`, `.unsupported`, `.policyViolation`,
    ///   `.noDecryptableKey`, `.commitmentMismatch`, `.authenticationFailed`, `.invalidSignature`,
    ///   `.encryptionContextMismatch`). No plaintext is released on failure.
    public func decrypt(_ message: [UInt8], keyring: some Keyring, encryptionContext: [String: String] = [:]) async throws -> DecryptedMessage {
        let parsed = try parse(message)
        let materials = try await decryptionMaterials(for: parsed, keyring: keyring, encryptionContext: encryptionContext)
        return try decrypt(parsed, materials: materials)
    }

    /// Parses the header and applies the commitment policy and EDK limit; authenticates nothing.
    public func parse(_ message: [UInt8]) throws -> ESDKMessage {
        let header = try MessageHeader.parse(message, maxEncryptedDataKeys: configuration.maxEncryptedDataKeys)
        guard configuration.commitmentPolicy.allowsDecrypt(header.suite) else {
            throw CryptoError(.policyViolation, "commitment policy forbids decrypting \(header.suite.name) messages")
        }
        return ESDKMessage(bytes: message, header: header)
    }

    /// Builds decryption materials as the default CMM does (merging the reproduced context and
    /// loading the verification key) and asks `keyring` for the data key.
    public func decryptionMaterials(for message: ESDKMessage, keyring: some Keyring,
                                    encryptionContext reproduced: [String: String] = [:]) async throws -> DecryptionMaterials {
        let request = try Self.decryptionRequest(for: message.header, reproduced: reproduced)
        return try await keyring.onDecrypt(request, encryptedDataKeys: message.header.encryptedDataKeys)
    }

    package static func decryptionRequest(for header: MessageHeader, reproduced: [String: String]) throws -> DecryptionMaterials {
        let suite = header.suite
        var context = header.storedEncryptionContext
        var required = Set<String>()
        for (key, value) in reproduced {
            if let stored = context[key] {
                guard stored == value else {
                    throw CryptoError(.encryptionContextMismatch, "encryption context value for key '\(key)' differs from the message")
                }
            } else {
                context[key] = value
                required.insert(key)
            }
        }
        var verificationKey: ECDSA.VerifyingKey?
        if let curve = suite.signatureCurve {
            guard let encoded = context[EncryptionContextCodec.publicKeyKey], let point = Data(base64Encoded: encoded) else {
                throw CryptoError(.malformed, "signed message without a valid aws-crypto-public-key")
            }
            verificationKey = try ECDSA.VerifyingKey(encodedPoint: Array(point), curve: curve)
        } else if context[EncryptionContextCodec.publicKeyKey] != nil {
            throw CryptoError(.malformed, "unsigned message carries aws-crypto-public-key")
        }
        return DecryptionMaterials(algorithmSuite: suite, encryptionContext: context,
                                   requiredEncryptionContextKeys: required, verificationKey: verificationKey)
    }

    /// Decrypts a parsed message with materials that hold its data key.
    public func decrypt(_ message: ESDKMessage, materials: DecryptionMaterials) throws -> DecryptedMessage {
        let header = message.header
        let bytes = message.bytes
        let suite = header.suite
        guard materials.algorithmSuite == suite else { throw CryptoError(.invalidInput, "materials are for another algorithm suite") }
        guard configuration.commitmentPolicy.allowsDecrypt(suite) else {
            throw CryptoError(.policyViolation, "commitment policy forbids decrypting \(suite.name) messages")
        }
        guard let dataKey = materials.plaintextDataKey, dataKey.count == suite.dataKeyByteCount else {
            throw CryptoError(.noDecryptableKey, "decryption materials hold no data key of the right length")
        }
        guard suite.isSigned == (materials.verificationKey != nil) else {
            throw CryptoError(.invalidInput, "verification key must be present exactly for signed suites")
        }
        let keys = try Self.deriveKeys(suite: suite, dataKey: dataKey, messageID: header.messageID)
        if let commitKey = keys.commitKey {
            guard constantTimeEquals(commitKey, header.suiteData) else {
                throw CryptoError(.commitmentMismatch, "the data key does not match the message's key commitment")
            }
        }
        let gcm = AESGCM.Context()
        // Header authentication, before anything from the body is touched.
        var authenticatedOnly = [String: String]()
        for key in materials.requiredEncryptionContextKeys { authenticatedOnly[key] = materials.encryptionContext[key] }
        let authOnly = try EncryptionContextCodec.serialize(authenticatedOnly)
        let headerIV = header.version == 1 ? header.headerIV : [UInt8](repeating: 0, count: MessageHeader.ivLength)
        try Self.relabelAuthenticationFailure("message header authentication failed") {
          try keys.encryptionKey.withUnsafeBytes { key in
            try headerIV.withUnsafeBytes { iv in
                try bytes.withUnsafeBytes { all in
                    try authOnly.withUnsafeBytes { extra in
                        try header.headerAuthTag.withUnsafeBytes { tag in
                            try gcm.openParts(keySize: suite.keySize, key: key, nonce: iv, ciphertextAndTag: tag,
                                              aad: UnsafeRawBufferPointer(rebasing: all[0..<header.bodyByteCount]), aad2: extra,
                                              output: UnsafeMutableRawBufferPointer(start: nil, count: 0))
                        }
                    }
                }
            }
          }
        }

        var plaintext = [UInt8]()
        do {
            let bodyEnd = try Self.decryptBody(bytes, header: header, key: keys.encryptionKey, gcm: gcm, into: &plaintext)
            var reader = ByteReader(bytes, offset: bodyEnd)
            if let verificationKey = materials.verificationKey {
                let signature = try reader.take(Int(reader.u16("signature length")), "signature")
                guard reader.isAtEnd else { throw CryptoError(.malformed, "trailing bytes after the message footer") }
                let verifier = try verificationKey.verifier()
                try bytes.withUnsafeBytes { try verifier.update(UnsafeRawBufferPointer(rebasing: $0[0..<bodyEnd])) }
                guard verifier.verify(signature) else { throw CryptoError(.invalidSignature, "message signature does not verify") }
            } else {
                guard reader.isAtEnd else { throw CryptoError(.malformed, "trailing bytes after the message body") }
            }
        } catch {
            plaintext.withUnsafeMutableBytes { secureZero($0) }
            throw error
        }
        return DecryptedMessage(plaintext: plaintext, encryptionContext: materials.encryptionContext,
                                algorithmSuite: suite, messageID: header.messageID)
    }

    /// Decrypts every frame (or the single block) into `plaintext`; returns the offset after the body.
    private static func decryptBody(_ bytes: [UInt8], header: MessageHeader, key: SecretBytes, gcm: AESGCM.Context,
                                    into plaintext: inout [UInt8]) throws -> Int {
        var reader = ByteReader(bytes, offset: header.byteCount)
        plaintext.reserveCapacity(bytes.count - header.byteCount)
        func open(iv: [UInt8], expectedIV: [UInt8], contentRange: Range<Int>, tag: Range<Int>, aad: [UInt8]) throws {
            guard iv == expectedIV else { throw CryptoError(.malformed, "frame IV does not match its sequence number") }
            let offset = plaintext.count
            plaintext.append(contentsOf: repeatElement(0, count: contentRange.count))
            let what = header.contentType == .framed ? "frame \(expectedIV.suffix(4).reduce(0) { $0 << 8 | Int($1) })" : "message body"
            try relabelAuthenticationFailure("\(what) authentication failed") {
              try key.withUnsafeBytes { k in
                try iv.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in
                        try bytes.withUnsafeBytes { all in
                            try plaintext.withUnsafeMutableBytes { out in
                                try gcm.openParts(keySize: header.suite.keySize, key: k, nonce: n,
                                                  ciphertextAndTag: UnsafeRawBufferPointer(rebasing: all[contentRange.lowerBound..<tag.upperBound]),
                                                  aad: a, output: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
                            }
                        }
                    }
                }
              }
            }
        }
        switch header.contentType {
        case .nonFramed:
            let iv = try reader.take(MessageHeader.ivLength, "body IV")
            let length = try reader.u64("encrypted content length")
            guard length <= MessageHeader.maxNonFramedContentLength, length <= UInt64(reader.remaining) else {
                throw CryptoError(.malformed, "truncated input: encrypted content does not fit")
            }
            let content = try reader.range(Int(length), "encrypted content")
            let tag = try reader.range(MessageHeader.tagLength, "body authentication tag")
            try open(iv: iv, expectedIV: BodyAAD.iv(1), contentRange: content, tag: tag,
                     aad: BodyAAD.make(messageID: header.messageID, content: BodyAAD.singleBlock, sequenceNumber: 1, length: length))
        case .framed:
            var expected: UInt32 = 1
            while true {
                let marker = try reader.u32("sequence number")
                if marker == UInt32.max {
                    guard try reader.u32("final sequence number") == expected else {
                        throw CryptoError(.malformed, "final frame out of sequence")
                    }
                    let iv = try reader.take(MessageHeader.ivLength, "frame IV")
                    let length = try reader.u32("final frame content length")
                    guard length <= header.frameLength else { throw CryptoError(.malformed, "final frame longer than the frame length") }
                    let content = try reader.range(Int(length), "final frame content")
                    let tag = try reader.range(MessageHeader.tagLength, "frame authentication tag")
                    try open(iv: iv, expectedIV: BodyAAD.iv(expected), contentRange: content, tag: tag,
                             aad: BodyAAD.make(messageID: header.messageID, content: BodyAAD.finalFrame,
                                               sequenceNumber: expected, length: UInt64(length)))
                    break
                }
                guard marker == expected else { throw CryptoError(.malformed, "frame out of sequence") }
                let iv = try reader.take(MessageHeader.ivLength, "frame IV")
                let content = try reader.range(Int(header.frameLength), "frame content")
                let tag = try reader.range(MessageHeader.tagLength, "frame authentication tag")
                try open(iv: iv, expectedIV: BodyAAD.iv(expected), contentRange: content, tag: tag,
                         aad: BodyAAD.make(messageID: header.messageID, content: BodyAAD.frame,
                                           sequenceNumber: expected, length: UInt64(header.frameLength)))
                guard expected < UInt32.max - 1 else { throw CryptoError(.malformed, "too many frames") }
                expected += 1
            }
        }
        return reader.offset
    }

    /// Runs `body`, replacing the generic AES-GCM authentication error with one naming the part.
    static func relabelAuthenticationFailure(_ reason: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as CryptoError where error.code == .authenticationFailed {
            throw CryptoError(.authenticationFailed, reason)
        }
    }

    // MARK: Key derivation

    struct DerivedKeys {
        let encryptionKey: SecretBytes
        let commitKey: SecretBytes?
    }

    /// The encryption key (and commit key) of a message (framework/transitive-requirements.md).
    static func deriveKeys(suite: AlgorithmSuite, dataKey: SecretBytes, messageID: [UInt8]) throws -> DerivedKeys {
        var suiteID = [UInt8]()
        suiteID.appendBigEndian(suite.id)
        switch suite.kdf {
        case .identity:
            return DerivedKeys(encryptionKey: dataKey, commitKey: nil)
        case .hkdf(let hash) where suite.isCommitting:
            let keys = try HKDF.extractAndExpand(hash, ikm: dataKey, salt: messageID, outputs: [
                (suiteID + Array("DERIVEKEY".utf8), suite.keySize.byteCount),
                (Array("COMMITKEY".utf8), suite.suiteDataByteCount),
            ])
            return DerivedKeys(encryptionKey: keys[0], commitKey: keys[1])
        case .hkdf(let hash):
            let keys = try HKDF.extractAndExpand(hash, ikm: dataKey, salt: [UInt8](), outputs: [(suiteID + messageID, suite.keySize.byteCount)])
            let encryptionKey = keys[0]
            return DerivedKeys(encryptionKey: encryptionKey, commitKey: nil)
        }
    }
}
