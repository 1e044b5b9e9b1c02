import Foundation

/// Where key lifetimes (cache TTL, stale window, retry delays) read the time. The default is the
/// continuous clock; tests inject a manual one and move it forward instead of sleeping.
package struct TimeSource: Sendable {
    package let now: @Sendable () -> ContinuousClock.Instant

    package init(now: @escaping @Sendable () -> ContinuousClock.Instant) { self.now = now }

    /// The system's continuous clock.
    package static let continuous = TimeSource { ContinuousClock.now }
}

/// A clock that only moves when told to (tests).
///
/// `@unchecked Sendable`: `offset` is guarded by `lock`.
package final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private let start = ContinuousClock.now
    private var offset: Duration = .zero

    package init() {}

    package var now: ContinuousClock.Instant { lock.withLock { start + offset } }

    package func advance(by duration: Duration) { lock.withLock { offset += duration } }

    package var source: TimeSource { TimeSource { [self] in now } }
}
