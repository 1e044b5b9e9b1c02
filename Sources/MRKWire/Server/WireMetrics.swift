import Foundation
import Metrics
import MRKProxy
import MRKWireProtocol
import Prometheus
import Synchronization

/// The proxy's metrics, through swift-metrics into a Prometheus registry of its own (no global
/// bootstrap, so several servers can run in one process), plus the library's counters of values
/// sealed and opened, KMS calls and key-cache hits.
final class WireMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let sessions: Metrics.Meter
    private let sessionsTotal: Metrics.Counter
    private let upstreamErrors: Metrics.Counter
    private let statementCounters = Mutex<[String: Metrics.Counter]>([:])
    private let refusalCounters = Mutex<[String: Metrics.Counter]>([:])
    private let active = Atomic<Int>(0)

    init() {
        factory = PrometheusMetricsFactory(registry: registry)
        sessions = Metrics.Meter(label: "mrkproxy_sessions", dimensions: [], factory: factory)
        sessionsTotal = Metrics.Counter(label: "mrkproxy_sessions_total", dimensions: [], factory: factory)
        upstreamErrors = Metrics.Counter(label: "mrkproxy_upstream_errors_total", dimensions: [], factory: factory)
    }

    var activeSessions: Int { active.load(ordering: .relaxed) }

    func sessionStarted() {
        sessionsTotal.increment()
        sessions.set(active.wrappingAdd(1, ordering: .relaxed).newValue)
    }

    func sessionEnded() {
        sessions.set(active.wrappingSubtract(1, ordering: .relaxed).newValue)
    }

    func statement(kind: String) {
        counter(statementCounters, label: "mrkproxy_statements_total", dimension: ("kind", kind)).increment()
    }

    func refusal(code: String) {
        counter(refusalCounters, label: "mrkproxy_refusals_total", dimension: ("code", code)).increment()
    }

    func upstreamError() { upstreamErrors.increment() }

    private func counter(_ counters: borrowing Mutex<[String: Metrics.Counter]>, label: String, dimension: (String, String)) -> Metrics.Counter {
        counters.withLock { table in
            if let counter = table[dimension.1] { return counter }
            let counter = Metrics.Counter(label: label, dimensions: [dimension], factory: factory)
            table[dimension.1] = counter
            return counter
        }
    }

    /// The Prometheus text exposition: the registry's metrics and the library's counters.
    func exposition() -> String {
        let stats = LibraryStatistics.shared
        func load(_ value: borrowing Atomic<Int>) -> Int { value.load(ordering: .relaxed) }
        var text = registry.emitToString()
        func add(_ name: String, _ type: String, _ help: String, _ value: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        add("mrkproxy_values_sealed_total", "counter", "Values encrypted by the library (compact and ESDK).", "\(load(stats.valuesSealed))")
        add("mrkproxy_values_opened_total", "counter", "Values decrypted by the library.", "\(load(stats.valuesOpened))")
        text += "# HELP mrkproxy_seal_seconds Time to encrypt one value (1 in \(LibraryStatistics.sampleEvery) values timed).\n"
        text += "# TYPE mrkproxy_seal_seconds summary\n"
        text += "mrkproxy_seal_seconds_sum \(Double(load(stats.sealNanoseconds)) / 1e9)\nmrkproxy_seal_seconds_count \(load(stats.sealSamples))\n"
        text += "# HELP mrkproxy_open_seconds Time to decrypt one value (1 in \(LibraryStatistics.sampleEvery) values timed).\n"
        text += "# TYPE mrkproxy_open_seconds summary\n"
        text += "mrkproxy_open_seconds_sum \(Double(load(stats.openNanoseconds)) / 1e9)\nmrkproxy_open_seconds_count \(load(stats.openSamples))\n"
        add("mrkproxy_kms_calls_total", "counter", "KMS calls made for keys (branch-key unwraps, ESDK data keys).", "\(load(stats.kmsCalls))")
        add("mrkproxy_key_cache_hits_total", "counter", "Branch-key lookups served from the cache.", "\(load(stats.keyCacheHits))")
        return text
    }
}
