import Foundation
import Logging
import MRKCluster
import MRKCrypto
@testable import MRKDevTools
import MRKKMS
@testable import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Testing

/// The no-leak scan itself: it must find what it looks for.
@Suite struct LeakScannerTests {
    @Test("the no-leak scanner finds a plaintext inside binary files, and nothing when it is absent")
    func scannerFindsNeedles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leak-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("base/1"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var heap = [UInt8](repeating: 0, count: 64 * 1024)
        heap.replaceSubrange(40_000..<40_011, with: Array("SSN-1234567".utf8))
        try Data(heap).write(to: dir.appendingPathComponent("base/1/16384"))
        try Data([0, 1, 2]).write(to: dir.appendingPathComponent("base/1/16385"))
        let found = try LeakScanner.scan(directories: [dir.path], needles: ["SSN-1234567", "SSN-7654321"])
        #expect(found.count == 1 && found[0].hasSuffix("16384:SSN-1234567"))
        #expect(try LeakScanner.scan(directories: [dir.path], needles: ["SSN-7654321"]).isEmpty)
    }
}
