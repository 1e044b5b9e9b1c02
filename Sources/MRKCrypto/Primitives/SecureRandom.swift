internal import COpenSSL

/// OpenSSL's CSPRNG (`RAND_bytes`).
public enum SecureRandom {
    /// Fills `buffer` with random bytes. Traps if the CSPRNG fails: continuing without randomness
    /// would silently break every nonce and key.
    public static func fill(_ buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBytes { fill($0) }
    }

    /// Fills raw memory with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.count > 0 else { return }
        precondition(
            RAND_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1,
            "RAND_bytes failed")
    }

    /// `count` random bytes.
    public static func bytes(count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        fill(&buffer)
        return buffer
    }
}
