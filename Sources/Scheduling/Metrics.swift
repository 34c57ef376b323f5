import Foundation

/// Percentiles as numpy's default (`method="linear"`) computes them, which is what
/// vLLM's `benchmark_serving` and GenAI-Perf report.
///
/// For sorted values `x[0] ≤ … ≤ x[n−1]` the `p`-th percentile is at rank
/// `h = (n − 1)·p/100`: `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`.
public enum Percentile {
    /// The `p`-th percentile (0 … 100) of `sorted`, which must be sorted ascending. `nil` when empty.
    public static func of(sorted x: [Double], _ p: Double) -> Double? {
        guard !x.isEmpty else { return nil }
        let h = Double(x.count - 1) * p / 100
        let lo = Int(h.rounded(.down))
        let hi = Swift.min(lo + 1, x.count - 1)
        return x[lo] + (h - Double(lo)) * (x[hi] - x[lo])
    }

    /// The same percentile over a weighted multiset (`value` repeated `count` times), sorted by value.
    public static func of(sortedWeighted x: [(value: Double, count: Int)], total: Int, _ p: Double) -> Double? {
        guard total > 0 else { return nil }
        let h = Double(total - 1) * p / 100
        let lo = Int(h.rounded(.down))
        func element(_ rank: Int) -> Double {
            var seen = 0
            for e in x {
                seen += e.count
                if rank < seen { return e.value }
            }
            return x[x.count - 1].value
        }
        let a = element(lo), b = element(Swift.min(lo + 1, total - 1))
        return a + (h - Double(lo)) * (b - a)
    }
}

/// Mean, percentiles and maximum of one latency metric, in seconds.
public struct LatencySummary: Sendable, Hashable, Codable {
    public var count: Int
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p95: Double
    public var p99: Double
    public var max: Double

    public static let empty = LatencySummary(count: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0)

    /// Summarises `values` (any order).
    public init(_ values: [Double]) {
        guard !values.isEmpty else { self = .empty; return }
        let s = values.sorted()
        count = s.count
        mean = s.reduce(0, +) / Double(s.count)
        p50 = Percentile.of(sorted: s, 50)!
        p90 = Percentile.of(sorted: s, 90)!
        p95 = Percentile.of(sorted: s, 95)!
        p99 = Percentile.of(sorted: s, 99)!
        max = s[s.count - 1]
    }

    /// Summarises a weighted multiset of values.
    public init(weighted values: [(value: Double, count: Int)]) {
        let s = values.filter { $0.count > 0 }.sorted { $0.value < $1.value }
        let total = s.reduce(0) { $0 + $1.count }
        guard total > 0 else { self = .empty; return }
        count = total
        mean = s.reduce(0) { $0 + $1.value * Double($1.count) } / Double(total)
        p50 = Percentile.of(sortedWeighted: s, total: total, 50)!
        p90 = Percentile.of(sortedWeighted: s, total: total, 90)!
        p95 = Percentile.of(sortedWeighted: s, total: total, 95)!
        p99 = Percentile.of(sortedWeighted: s, total: total, 99)!
        max = s[s.count - 1].value
    }

    public init(count: Int, mean: Double, p50: Double, p90: Double, p95: Double, p99: Double, max: Double) {
        self.count = count
        self.mean = mean
        self.p50 = p50
        self.p90 = p90
        self.p95 = p95
        self.p99 = p99
        self.max = max
    }
}

/// What happened to one finished request. Times are seconds of simulated time.
public struct RequestRecord: Sendable, Hashable, Codable {
    public var id: Int
    public var arrivalTime: Double
    /// When the request was first scheduled (its first prefill chunk started).
    public var firstScheduledTime: Double
    /// When its first output token was produced (end of the step that finished its prompt).
    public var firstTokenTime: Double
    /// When its last output token was produced.
    public var finishTime: Double
    public var promptTokens: Int
    public var outputTokens: Int
    /// Prompt tokens served from the prefix cache at admission.
    public var cachedPromptTokens: Int
    public var preemptions: Int
    public var priority: Int
    public var sloClass: Int
    /// The replica that served it (0 without autoscaling).
    public var replica: Int
    /// Whether it met every limit of its SLO class and its deadline.
    public var metSLO: Bool

    /// Time to first token: `firstTokenTime − arrivalTime`.
    public var ttft: Double { firstTokenTime - arrivalTime }
    /// End-to-end latency: `finishTime − arrivalTime`.
    public var e2e: Double { finishTime - arrivalTime }
    /// Time per output token, `(E2E − TTFT) / (output − 1)`; `nil` for single-token outputs (as vLLM excludes them).
    public var tpot: Double? { outputTokens > 1 ? (e2e - ttft) / Double(outputTokens - 1) : nil }
    /// Queue time: `firstScheduledTime − arrivalTime`.
    public var queueTime: Double { firstScheduledTime - arrivalTime }
}

/// A request the system refused, and why.
public struct RejectedRequest: Sendable, Hashable, Codable {
    public var id: Int
    public var arrivalTime: Double
    public var reason: String
}

/// One point of the time series a simulation samples at a fixed interval.
public struct TimeSample: Sendable, Hashable, Codable {
    public var time: Double
    /// Requests waiting (not running), summed over replicas, plus the central queue.
    public var queueDepth: Int
    /// Requests running.
    public var running: Int
    /// Fraction of device KV blocks held by sequences (mean over ready replicas).
    public var kvUsage: Double
    /// Replicas (ready or starting).
    public var replicas: Int
    /// Requests finished so far.
    public var finished: Int
}

/// Everything a simulation measured.
///
/// Definitions (vLLM `benchmark_serving` / GenAI-Perf):
/// - **TTFT**: arrival → first output token.
/// - **TPOT**: `(E2E − TTFT) / (output − 1)` per request with more than one output token.
/// - **ITL**: every gap between consecutive output tokens of a request, pooled over all requests.
/// - **E2E**: arrival → last token. **Queue time**: arrival → first scheduled.
/// - **Duration**: first arrival → last completion. Throughputs divide by it.
/// - **Goodput**: completed requests meeting every limit of their SLO class, per second of duration.
/// - Percentiles use linear interpolation between closest ranks (numpy's default).
public struct SimulationSummary: Sendable, Hashable, Codable {
    public var policy: String
    public var executionModel: String
    public var completed: Int
    public var rejected: Int
    public var duration: Double
    public var requestThroughput: Double
    public var outputTokenThroughput: Double
    public var totalTokenThroughput: Double
    public var goodput: Double
    /// Fraction of completed requests meeting their SLO.
    public var sloAttainment: Double
    public var ttft: LatencySummary
    public var tpot: LatencySummary
    public var itl: LatencySummary
    public var e2e: LatencySummary
    public var queueTime: LatencySummary
    public var preemptions: Int
    /// Engine steps (scheduler iterations) over all replicas.
    public var steps: Int
    /// Sequences per step: mean and percentiles over steps.
    public var batchSize: LatencySummary
    /// Mean and peak fraction of KV blocks in use over the time-series samples (one at the first event after each sampling interval).
    public var meanKVUsage: Double
    public var peakKVUsage: Double
    /// Fraction of prompt tokens served from the prefix cache.
    public var prefixCacheHitRate: Double
    /// Replica-hours (GPU-hours per replica GPU) including cold starts.
    public var replicaHours: Double
    /// Fraction of (replica) time spent running steps.
    public var utilization: Double
}
