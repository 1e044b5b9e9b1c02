import Foundation
@testable import MRKOperations
import Synchronization
import Testing

/// Progress counts come from the database (a resumed run's record): any value is reported, none traps.
@Suite struct ProgressReporting {
    @Test func anyCountIsReportedWithoutTrapping() {
        for terminal in [false, true] {
            for total in [0, 1, 200_000, Int.max] {
                let lines = Mutex<[String]>([])
                let reporter = ProgressReporter(label: "encrypt t.c", total: total, terminal: terminal) { line in lines.withLock { $0.append(line) } }
                for done in [Int.min, -1, 0, 1, 150_000, 200_000, Int.max - 1, Int.max] {
                    reporter.update(done: done, note: "waiting", force: true)
                }
                reporter.finish("done")
                let written = lines.withLock { $0 }
                #expect(written.count == 9)
                #expect(written.dropLast().allSatisfy { $0.contains("rows/s") && !$0.contains("-") })
            }
        }
        #expect(ProgressReporter.clamped(.nan) == 0 && ProgressReporter.clamped(.infinity) == 0 && ProgressReporter.clamped(-5) == 0)
        #expect(ProgressReporter.duration(3_725) == "1 h 2 min" && ProgressReporter.duration(.infinity) == "0 s")
    }
}
