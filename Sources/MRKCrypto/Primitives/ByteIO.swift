extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var be = value.bigEndian
        Swift.withUnsafeBytes(of: &be) { append(contentsOf: $0) }
    }

    /// Appends a `u16` length prefix and the bytes; throws when they do not fit in 16 bits.
    mutating func appendLengthPrefixed16(_ bytes: some Collection<UInt8>, field: String) throws {
        guard bytes.count <= Int(UInt16.max) else { throw CryptoError(.invalidInput, "\(field) longer than 65535 bytes") }
        appendBigEndian(UInt16(bytes.count))
        append(contentsOf: bytes)
    }
}

/// Reads big-endian fields from a byte array; every read is bounds-checked and throws `.malformed`
/// naming the field when the input is too short.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func u8(_ field: String) throws -> UInt8 {
        guard remaining >= 1 else { throw truncated(field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16(_ field: String) throws -> UInt16 { try integer(field) }
    mutating func u32(_ field: String) throws -> UInt32 { try integer(field) }
    mutating func u64(_ field: String) throws -> UInt64 { try integer(field) }

    private mutating func integer<T: FixedWidthInteger>(_ field: String) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw truncated(field) }
        var value: T = 0
        for i in 0..<size { value = (value << 8) | T(bytes[offset + i]) }
        offset += size
        return value
    }

    /// The next `count` bytes (as a range into `bytes`).
    mutating func range(_ count: Int, _ field: String) throws -> Range<Int> {
        guard count >= 0, remaining >= count else { throw truncated(field) }
        defer { offset += count }
        return offset..<(offset + count)
    }

    mutating func take(_ count: Int, _ field: String) throws -> [UInt8] {
        Array(bytes[try range(count, field)])
    }

    private func truncated(_ field: String) -> CryptoError {
        CryptoError(.malformed, "truncated input: \(field) does not fit")
    }
}
