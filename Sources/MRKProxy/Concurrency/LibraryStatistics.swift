import Synchronization

/// Process-wide counters of the library's work, for the wire proxy's metrics: values sealed
/// and opened (with the time of one in `sampleEvery`), KMS calls and key-cache hits. Relaxed
/// atomics: a few nanoseconds per value.
package final class LibraryStatistics: Sendable {
    package static let shared = LibraryStatistics()

    /// One value in this many is timed.
    package static let sampleEvery = 16

    package let valuesSealed = Atomic<Int>(0)
    package let valuesOpened = Atomic<Int>(0)
    package let sealNanoseconds = Atomic<Int>(0)
    package let sealSamples = Atomic<Int>(0)
    package let openNanoseconds = Atomic<Int>(0)
    package let openSamples = Atomic<Int>(0)
    package let kmsCalls = Atomic<Int>(0)
    package let keyCacheHits = Atomic<Int>(0)

    /// Counts a sealed value; returns the clock to time it with when this one is sampled.
    @inline(__always)
    func sealStarted() -> ContinuousClock.Instant? {
        let count = valuesSealed.wrappingAdd(1, ordering: .relaxed).newValue
        return count % Self.sampleEvery == 0 ? ContinuousClock.now : nil
    }

    @inline(__always)
    func sealFinished(_ start: ContinuousClock.Instant?) {
        guard let start else { return }
        sealNanoseconds.wrappingAdd(Self.nanoseconds(since: start), ordering: .relaxed)
        sealSamples.wrappingAdd(1, ordering: .relaxed)
    }

    @inline(__always)
    func openStarted() -> ContinuousClock.Instant? {
        let count = valuesOpened.wrappingAdd(1, ordering: .relaxed).newValue
        return count % Self.sampleEvery == 0 ? ContinuousClock.now : nil
    }

    @inline(__always)
    func openFinished(_ start: ContinuousClock.Instant?) {
        guard let start else { return }
        openNanoseconds.wrappingAdd(Self.nanoseconds(since: start), ordering: .relaxed)
        openSamples.wrappingAdd(1, ordering: .relaxed)
    }

    static func nanoseconds(since start: ContinuousClock.Instant) -> Int {
        let elapsed = ContinuousClock.now - start
        return Int(elapsed.components.seconds) * 1_000_000_000 + Int(elapsed.components.attoseconds / 1_000_000_000)
    }
}
