import Foundation

/// Runs the async key fetches the sync API needs (KMS calls on key-cache misses) on a thread of
/// its own instead of Swift's concurrency pool: the sync caller waits for the fetch, and the fetch
/// never needs a concurrency-pool thread that waiting callers might all be holding.
///
/// `@unchecked Sendable`: jobs are handed to a serial `BlockingThreadPool` of one thread.
final class KeyFetchExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = KeyFetchExecutor()

    private let thread = BlockingThreadPool(threads: 1, name: "mrkproxy-keys")

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        thread.submit { unowned.runSynchronously(on: executor) }
    }

    /// Runs `body` on this executor and blocks the calling thread until it finishes. Never call
    /// it from a job of this executor.
    func wait<T: Sendable>(_ body: @escaping @Sendable () async throws(ProxyError) -> T) throws(ProxyError) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: self) {
            do throws(ProxyError) { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try box.get()
    }
}

/// Carries a result out of a task. `@unchecked Sendable`: guarded by `lock`.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, ProxyError>?
    func set(_ value: Result<T, ProxyError>) { lock.withLock { result = value } }
    func get() throws(ProxyError) -> T {
        guard let result = lock.withLock({ result }) else { throw ProxyError(.kms, "a key fetch ended without a result") }
        return try result.get()
    }
}
