import Foundation

/// A fixed set of threads for blocking work — libpq calls and the sync API behind the async
/// pool — so that async callers never tie up Swift's concurrency pool, and so that no thread is
/// started per call.
///
/// `@unchecked Sendable`: `jobs` and `stopped` are guarded by `condition`.
package final class BlockingThreadPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0

    /// Starts `threads` threads named `name`; they live as long as the process.
    package init(threads: Int, name: String) {
        precondition(threads > 0)
        for index in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// The pool the library's async API uses: as many threads as the default connection pool has
    /// connections, at least four.
    package static let shared = BlockingThreadPool(threads: max(4, min(ProcessInfo.processInfo.activeProcessorCount, 16)),
                                                   name: "mrkproxy-blocking")

    /// Queues `job` to run on one of the threads.
    package func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
        }
    }

    /// Runs `body` on one of the threads and returns its result. A task cancelled before its job
    /// starts gets `.cancelled` and the job does not run.
    package func run<R: Sendable>(_ body: @escaping @Sendable () throws(ProxyError) -> R) async throws(ProxyError) -> R {
        if Task.isCancelled { throw ProxyError(.cancelled, "cancelled before the work started") }
        let gate = CancellationGate<R>()
        let result: Result<R, ProxyError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<R, ProxyError>, Never>) in
                gate.arm(continuation)
                submit {
                    guard gate.start() else { return }
                    let outcome: Result<R, ProxyError>
                    do throws(ProxyError) { outcome = .success(try body()) } catch { outcome = .failure(error) }
                    gate.finish(outcome)
                }
            }
        } onCancel: {
            gate.cancel()
        }
        return try result.get()
    }
}

/// Decides once whether a queued job runs or its caller was cancelled first, and resumes the
/// caller exactly once.
///
/// `@unchecked Sendable`: all state is guarded by `lock`.
private final class CancellationGate<R: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Result<R, ProxyError>, Never>?
    private enum State { case queued, running, done }
    private var state = State.queued

    func arm(_ continuation: CheckedContinuation<Result<R, ProxyError>, Never>) {
        let cancelledAlready = lock.withLock { () -> Bool in
            if state == .done { return true }
            self.continuation = continuation
            return false
        }
        if cancelledAlready { continuation.resume(returning: .failure(ProxyError(.cancelled, "cancelled before the work started"))) }
    }

    /// Whether the job may run (it was not cancelled while queued).
    func start() -> Bool {
        lock.withLock {
            guard state == .queued else { return false }
            state = .running
            return true
        }
    }

    func finish(_ result: Result<R, ProxyError>) {
        let waiting = lock.withLock { () -> CheckedContinuation<Result<R, ProxyError>, Never>? in
            state = .done
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: result)
    }

    /// Cancels a job that has not started; a running job finishes normally.
    func cancel() {
        let waiting = lock.withLock { () -> CheckedContinuation<Result<R, ProxyError>, Never>? in
            guard state == .queued else { return nil }
            state = .done
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: .failure(ProxyError(.cancelled, "cancelled before the work started")))
    }
}

/// Runs blocking work on the library's thread pool and awaits its result, so that async callers
/// never tie up the concurrency pool.
package func withBlockingThread<R: Sendable>(_ body: @escaping @Sendable () throws(ProxyError) -> R) async throws(ProxyError) -> R {
    try await BlockingThreadPool.shared.run(body)
}
