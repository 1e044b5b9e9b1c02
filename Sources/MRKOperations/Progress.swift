import Foundation

/// Progress of a long operation: a bar redrawn in place on a terminal, a plain line every few
/// seconds otherwise (logs, CI).
public final class ProgressReporter: @unchecked Sendable {
    // Used by the operation's thread only.
    private let label: String
    private let total: Int
    private let write: @Sendable (String) -> Void
    private let terminal: Bool
    private let started = ContinuousClock.now
    private var lastPrint = ContinuousClock.now - .seconds(60)
    private var lastLength = 0

    /// - Parameters:
    ///   - write: where text goes (standard error by default).
    ///   - terminal: redraw a bar in place; default when standard error is a terminal.
    public init(label: String, total: Int, terminal: Bool = isatty(STDERR_FILENO) == 1,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.label = label
        self.total = max(total, 0)
        self.terminal = terminal
        self.write = write
    }

    /// Reports `done` rows (and why it is waiting, if it is).
    public func update(done: Int, note: String? = nil, force: Bool = false) {
        let now = ContinuousClock.now
        let interval: Duration = terminal ? .milliseconds(100) : .seconds(5)
        guard force || now - lastPrint >= interval else { return }
        lastPrint = now
        let elapsed = max(Double((now - started).components.seconds) + Double((now - started).components.attoseconds) / 1e18, 0.001)
        // Counts come from the database (a resumed run's record): total code, whatever they are.
        let done = max(done, 0)
        let rate = Double(done) / elapsed
        let fraction = total > 0 ? min(max(Double(done) / Double(total), 0), 1) : 1
        let remaining = rate > 0 && total > done ? Double(total) / rate - Double(done) / rate : 0
        let figures = "\(done.formatted())/\(total.formatted()) rows (\(Int(fraction * 100))%), \(Self.clamped(rate).formatted()) rows/s, ETA \(Self.duration(remaining))"
            + (note.map { ", \($0)" } ?? "")
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(figures)"
            write(line + String(repeating: " ", count: max(0, lastLength - line.count)))
            lastLength = line.count
        } else {
            write("\(label): \(figures)\n")
        }
    }

    /// Ends the bar with a final line.
    public func finish(_ message: String) {
        write((terminal ? "\r" + String(repeating: " ", count: lastLength) + "\r" : "") + "\(label): \(message)\n")
    }

    /// `value` as an Int, clamped to 0…2⁵³ (NaN and infinities included).
    static func clamped(_ value: Double) -> Int {
        guard value.isFinite, value > 0 else { return 0 }
        return Int(min(value, 9_007_199_254_740_992).rounded())
    }

    static func duration(_ seconds: Double) -> String {
        let s = clamped(seconds)
        return s >= 3600 ? "\(s / 3600) h \(s % 3600 / 60) min" : s >= 60 ? "\(s / 60) min \(s % 60) s" : "\(s) s"
    }
}

/// A flag set from a signal handler (SIGTERM, SIGINT) and read between batches.
public final class StopFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var stopped = false

    public init() {}

    public var isSet: Bool { lock.withLock { stopped } }
    public func set() { lock.withLock { stopped = true } }
}
