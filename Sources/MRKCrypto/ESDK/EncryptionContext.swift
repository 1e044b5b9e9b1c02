/// Serialization of an encryption context (framework/structures.md#serialization):
/// `u16 count ‖ (u16 keyLen ‖ key ‖ u16 valueLen ‖ value)*`, entries sorted by the UTF-8 bytes of
/// the key; an empty context serializes to no bytes at all.
enum EncryptionContextCodec {
    /// Key under which signed suites store the base64 compressed verification key.
    static let publicKeyKey = "aws-crypto-public-key"
    /// Prefix reserved for the SDK's own keys.
    static let reservedPrefix = "aws-crypto-"

    static func serialize(_ context: [String: String]) throws -> [UInt8] {
        guard !context.isEmpty else { return [] }
        guard context.count <= Int(UInt16.max) else { throw CryptoError(.invalidInput, "encryption context has too many entries") }
        let entries = context.map { (key: Array($0.key.utf8), value: Array($0.value.utf8)) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var out = [UInt8]()
        out.appendBigEndian(UInt16(entries.count))
        for entry in entries {
            try out.appendLengthPrefixed16(entry.key, field: "encryption context key")
            try out.appendLengthPrefixed16(entry.value, field: "encryption context value")
        }
        return out
    }

    /// Parses serialized key-value pairs (the `count ‖ entries` part; an empty input is the empty
    /// context). Rejects duplicates, invalid UTF-8 and trailing bytes.
    static func parse(_ bytes: [UInt8]) throws -> [String: String] {
        guard !bytes.isEmpty else { return [:] }
        var reader = ByteReader(bytes)
        let count = try reader.u16("encryption context count")
        guard count > 0 else { throw CryptoError(.malformed, "encryption context with a zero entry count") }
        var context = [String: String]()
        for _ in 0..<count {
            let key = try utf8String(reader.take(Int(reader.u16("encryption context key length")), "encryption context key"))
            let value = try utf8String(reader.take(Int(reader.u16("encryption context value length")), "encryption context value"))
            guard context.updateValue(value, forKey: key) == nil else {
                throw CryptoError(.malformed, "duplicate encryption context key")
            }
        }
        guard reader.isAtEnd else { throw CryptoError(.malformed, "trailing bytes after the encryption context") }
        return context
    }

    /// Decodes strictly valid UTF-8 (no replacement characters).
    static func utf8String(_ bytes: [UInt8]) throws -> String {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: return String(scalars)
            case .error: throw CryptoError(.malformed, "invalid UTF-8 in message header")
            }
        }
    }
}
