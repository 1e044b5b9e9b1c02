import MRKPostgres
import Testing

@Suite struct ByteaTextTests {
    @Test("hex bytea text decodes every byte value, in upper and lower case, and rejects malformed input")
    func roundTrips() throws {
        let all = (0...255).map(UInt8.init)
        let text = ByteaText.encode(all)
        #expect(try Array(text.utf8).withUnsafeBytes { try ByteaText.decode($0) } == all)
        #expect(try Array(text.uppercased().replacingOccurrences(of: "\\X", with: "\\x").utf8).withUnsafeBytes { try ByteaText.decode($0) } == all)
        #expect(try Array("\\x".utf8).withUnsafeBytes { try ByteaText.decode($0) } == [])
        for bad in ["", "\\", "x00", "\\x0", "\\x0g", "\\xg0", "\\x 0", "00"] {
            #expect(throws: PostgresError.self, "\(bad)") { try Array(bad.utf8).withUnsafeBytes { try ByteaText.decode($0) } }
        }
        // Decoding in place needs room for the whole value.
        var small = [UInt8](repeating: 0, count: 1)
        #expect(throws: PostgresError.self) {
            try Array("\\x0102".utf8).withUnsafeBytes { raw in try small.withUnsafeMutableBytes { try ByteaText.decode(raw, into: $0) } }
        }
    }
}
