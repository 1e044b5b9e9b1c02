import Foundation
import MRKFuzzing
import Testing

/// Every fuzzing harness over its checked-in corpus (the seeds and what fuzzing found worth
/// keeping) and over random inputs: none traps, and every property the harness checks holds.
/// The corpus is `Fuzz/Corpus/<target>/`; `scripts/fuzz` fuzzes for longer.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    @Test("each harness runs its checked-in corpus", arguments: FuzzTarget.allCases)
    func corpus(target: FuzzTarget) throws {
        let directory = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files.count >= target.seeds.count, "the corpus holds at least the seeds")
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: directory.appendingPathComponent(file).path))
            target.run(Array(data))
        }
    }

    @Test("each harness survives random and mutated inputs", arguments: FuzzTarget.allCases)
    func random(target: FuzzTarget) {
        var generator = SystemRandomNumberGenerator()
        let seeds = target.seeds
        for round in 0..<400 {
            var input: [UInt8]
            if round % 2 == 0, let seed = seeds.randomElement(using: &generator) {
                input = seed
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !input.isEmpty {
                    let position = Int.random(in: 0..<input.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: input[position] = UInt8.random(in: 0...255, using: &generator)
                    case 1: input.remove(at: position)
                    default: input.insert(UInt8.random(in: 0...255, using: &generator), at: position)
                    }
                }
            } else {
                input = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            target.run(input)
        }
    }
}
