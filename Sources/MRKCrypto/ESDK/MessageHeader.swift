/// Body content type (data-format/message-header.md#content-type).
enum ContentType: UInt8, Sendable {
    case nonFramed = 1
    case framed = 2
}

/// A parsed message header (data-format/message-header.md), versions 1.0 and 2.0.
package struct MessageHeader: Sendable {
    var version: UInt8
    var suite: AlgorithmSuite
    var messageID: [UInt8]
    /// The encryption context as stored (serialized key-value pairs, without the length prefix).
    var storedEncryptionContext: [String: String]
    var encryptedDataKeys: [EncryptedDataKey]
    var contentType: ContentType
    var frameLength: UInt32
    /// v2: the commit key. v1: empty.
    var suiteData: [UInt8]
    /// v1: the header IV. v2: empty (the IV is zero).
    var headerIV: [UInt8]
    var headerAuthTag: [UInt8]
    /// Length of the header body (the authenticated part).
    var bodyByteCount: Int
    /// Length of the whole header (body + authentication).
    var byteCount: Int

    static let typeCustomerAED: UInt8 = 0x80
    static let ivLength = 12
    static let tagLength = 16
    /// Largest non-framed content (2^36 - 32 bytes).
    static let maxNonFramedContentLength: UInt64 = (1 << 36) - 32

    /// Parses the header at the start of `message`.
    /// - Parameter maxEncryptedDataKeys: fail as soon as the EDK count exceeds this.
    static func parse(_ message: [UInt8], maxEncryptedDataKeys: Int?) throws -> MessageHeader {
        var r = ByteReader(message)
        let version = try r.u8("version")
        switch version {
        case 1:
            guard try r.u8("type") == typeCustomerAED else { throw CryptoError(.malformed, "unknown message type") }
        case 2:
            break
        case 0x41:
            throw CryptoError(.malformed, "input looks like a base64-encoded message; decode it first")
        default:
            throw CryptoError(.unsupported, "message format version \(version) is not supported")
        }
        let suiteID = try r.u16("algorithm suite id")
        guard let suite = AlgorithmSuite.suite(id: suiteID) else {
            throw CryptoError(.unsupported, "algorithm suite \(hex16(suiteID)) is not supported")
        }
        guard suite.messageFormatVersion == version else {
            throw CryptoError(.malformed, "algorithm suite \(hex16(suiteID)) cannot appear in a version \(version) message")
        }
        let messageID = try r.take(suite.messageIDByteCount, "message id")
        let ecLength = try r.u16("encryption context length")
        let context = try EncryptionContextCodec.parse(r.take(Int(ecLength), "encryption context"))

        let edkCount = try r.u16("encrypted data key count")
        guard edkCount > 0 else { throw CryptoError(.malformed, "message without encrypted data keys") }
        if let maxEncryptedDataKeys, Int(edkCount) > maxEncryptedDataKeys {
            throw CryptoError(.invalidInput, "message has \(edkCount) encrypted data keys, more than the configured \(maxEncryptedDataKeys)")
        }
        var edks = [EncryptedDataKey]()
        edks.reserveCapacity(Int(edkCount))
        for _ in 0..<edkCount {
            let providerID = try EncryptionContextCodec.utf8String(r.take(Int(r.u16("provider id length")), "provider id"))
            let info = try r.take(Int(r.u16("provider info length")), "provider info")
            let ciphertext = try r.take(Int(r.u16("encrypted data key length")), "encrypted data key")
            edks.append(EncryptedDataKey(providerID: providerID, providerInfo: info, ciphertext: ciphertext))
        }
        guard let contentType = ContentType(rawValue: try r.u8("content type")) else {
            throw CryptoError(.malformed, "unknown content type")
        }
        var frameLength: UInt32 = 0
        var suiteData = [UInt8]()
        if version == 1 {
            guard try r.u32("reserved") == 0 else { throw CryptoError(.malformed, "reserved header field is not zero") }
            guard try r.u8("IV length") == UInt8(ivLength) else { throw CryptoError(.malformed, "IV length does not match the suite") }
            frameLength = try r.u32("frame length")
        } else {
            frameLength = try r.u32("frame length")
            suiteData = try r.take(suite.suiteDataByteCount, "algorithm suite data")
        }
        switch contentType {
        case .nonFramed:
            guard frameLength == 0 else { throw CryptoError(.malformed, "non-framed message with a frame length") }
        case .framed:
            guard frameLength > 0 else { throw CryptoError(.malformed, "framed message with a zero frame length") }
        }
        let bodyByteCount = r.offset
        let headerIV = version == 1 ? try r.take(ivLength, "header IV") : []
        let tag = try r.take(tagLength, "header authentication tag")
        return MessageHeader(version: version, suite: suite, messageID: messageID, storedEncryptionContext: context,
                             encryptedDataKeys: edks, contentType: contentType, frameLength: frameLength,
                             suiteData: suiteData, headerIV: headerIV, headerAuthTag: tag,
                             bodyByteCount: bodyByteCount, byteCount: r.offset)
    }

    /// Serializes a version 2.0 header body (without authentication).
    static func serializeV2Body(suite: AlgorithmSuite, messageID: [UInt8], storedEncryptionContext: [String: String],
                                encryptedDataKeys: [EncryptedDataKey], frameLength: UInt32, commitKey: [UInt8]) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(128 + encryptedDataKeys.reduce(0) { $0 + $1.providerInfo.count + $1.ciphertext.count + 8 })
        out.append(2)
        out.appendBigEndian(suite.id)
        out += messageID
        try out.appendLengthPrefixed16(EncryptionContextCodec.serialize(storedEncryptionContext), field: "encryption context")
        guard !encryptedDataKeys.isEmpty, encryptedDataKeys.count <= Int(UInt16.max) else {
            throw CryptoError(.invalidInput, "a message needs 1 to 65535 encrypted data keys")
        }
        out.appendBigEndian(UInt16(encryptedDataKeys.count))
        for edk in encryptedDataKeys {
            try out.appendLengthPrefixed16(Array(edk.providerID.utf8), field: "provider id")
            try out.appendLengthPrefixed16(edk.providerInfo, field: "provider info")
            try out.appendLengthPrefixed16(edk.ciphertext, field: "encrypted data key")
        }
        out.append(ContentType.framed.rawValue)
        out.appendBigEndian(frameLength)
        out += commitKey
        return out
    }
}

/// Message body AAD (data-format/message-body-aad.md).
enum BodyAAD {
    static let singleBlock = Array("AWSKMSEncryptionClient Single Block".utf8)
    static let frame = Array("AWSKMSEncryptionClient Frame".utf8)
    static let finalFrame = Array("AWSKMSEncryptionClient Final Frame".utf8)

    static func make(messageID: [UInt8], content: [UInt8], sequenceNumber: UInt32, length: UInt64) -> [UInt8] {
        var aad = [UInt8]()
        aad.reserveCapacity(messageID.count + content.count + 12)
        aad += messageID
        aad += content
        aad.appendBigEndian(sequenceNumber)
        aad.appendBigEndian(length)
        return aad
    }

    /// The IV of frame `sequenceNumber`: the number, big endian, left-padded with zeros to 12 bytes.
    static func iv(_ sequenceNumber: UInt32) -> [UInt8] {
        var iv = [UInt8](repeating: 0, count: 8)
        iv.appendBigEndian(sequenceNumber)
        return iv
    }
}
