import Foundation

/// Runs blocking work (the sync API, libpq) on a thread of its own and awaits its result: for the
/// demo, the benchmarks and the tests, which mix async code with the sync API.
public func onBlockingThread<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
