/// Summary statistics of a latency sample, in seconds.
///
/// Percentiles use linear interpolation between closest ranks (NumPy's default
/// `percentile` method, which vLLM's `benchmark_serving` and GenAI-Perf use):
/// for sorted values `x[0..<n]` and percentile `p`, the rank is
/// `r = p/100 · (n − 1)`, and the result is `x[⌊r⌋] + (r − ⌊r⌋)·(x[⌈r⌉] − x[⌊r⌋])`.
public struct LatencyStatistics: Sendable, Codable, Equatable {
    public var count: Int
    public var mean: Double
    public var min: Double
    public var max: Double
    public var p50: Double
    public var p90: Double
    public var p95: Double
    public var p99: Double

    /// Summarises `samples`; `nil` when there are none. Non-finite samples are ignored.
    public init?(samples: [Double]) {
        let sorted = samples.filter(\.isFinite).sorted()
        guard !sorted.isEmpty else { return nil }
        self.init(sorted: sorted)
    }

    /// Summarises already sorted, finite samples (at least one).
    init(sorted: [Double]) {
        count = sorted.count
        // Kahan-free mean is fine here: samples are few (≤ millions) and of similar magnitude.
        mean = sorted.reduce(0, +) / Double(sorted.count)
        min = sorted[0]
        max = sorted[sorted.count - 1]
        p50 = Self.percentile(sorted: sorted, 50)
        p90 = Self.percentile(sorted: sorted, 90)
        p95 = Self.percentile(sorted: sorted, 95)
        p99 = Self.percentile(sorted: sorted, 99)
    }

    /// The `p`-th percentile (0…100) of sorted values by linear interpolation.
    public static func percentile(sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let clamped = Swift.min(100, Swift.max(0, p))
        let rank = clamped / 100 * Double(sorted.count - 1)
        let lower = Int(rank.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        let fraction = rank - Double(lower)
        return sorted[lower] + fraction * (sorted[upper] - sorted[lower])
    }
}

/// What one load-test request measured.
public struct RequestMeasurement: Sendable, Equatable {
    /// `nil` on success, else an error category such as `http_429`, `timeout`, `connection`.
    public var error: String?
    /// Seconds from sending the request to its last byte.
    public var endToEnd: Double
    /// Seconds from sending the request to the first streamed content token (streaming only).
    public var timeToFirstToken: Double?
    /// Gaps in seconds between consecutive streamed content chunks (streaming only).
    public var interTokenLatencies: [Double]
    /// Completion tokens, from the response's `usage` when present, else the number of content chunks.
    public var outputTokens: Int

    public init(error: String? = nil, endToEnd: Double, timeToFirstToken: Double? = nil, interTokenLatencies: [Double] = [], outputTokens: Int = 0) {
        self.error = error
        self.endToEnd = endToEnd
        self.timeToFirstToken = timeToFirstToken
        self.interTokenLatencies = interTokenLatencies
        self.outputTokens = outputTokens
    }

    /// Time per output token, `(E2E − TTFT) / (output tokens − 1)`, defined only for
    /// successful streamed requests with more than one output token.
    public var timePerOutputToken: Double? {
        guard error == nil, let ttft = timeToFirstToken, outputTokens > 1 else { return nil }
        return (endToEnd - ttft) / Double(outputTokens - 1)
    }
}

/// The result of a load test: the same definitions as vLLM's serving benchmark.
///
/// - **E2E**: request sent → last byte received, successful requests only.
/// - **TTFT**: request sent → first streamed chunk carrying content.
/// - **ITL**: every gap between consecutive content chunks, pooled over all requests.
/// - **TPOT**: per request `(E2E − TTFT) / (output tokens − 1)`, for requests with more than one token.
/// - **Throughput**: successful requests (and their output tokens) per second of wall time.
public struct LoadTestReport: Sendable, Codable, Equatable {
    public var target: String
    public var streaming: Bool
    public var mode: String
    public var wallSeconds: Double
    public var requests: Int
    public var succeeded: Int
    public var failed: Int
    /// Failures by category (`http_429`, `http_503`, `timeout`, `connection`, …).
    public var errors: [String: Int]
    public var requestsPerSecond: Double
    public var outputTokensPerSecond: Double
    public var totalOutputTokens: Int
    public var endToEnd: LatencyStatistics?
    public var timeToFirstToken: LatencyStatistics?
    public var interTokenLatency: LatencyStatistics?
    public var timePerOutputToken: LatencyStatistics?

    /// Aggregates measurements taken over `wallSeconds` of wall time.
    public init(target: String, streaming: Bool, mode: String, wallSeconds: Double, measurements: [RequestMeasurement]) {
        self.target = target
        self.streaming = streaming
        self.mode = mode
        self.wallSeconds = wallSeconds
        requests = measurements.count
        var errors: [String: Int] = [:]
        var e2e: [Double] = []
        var ttft: [Double] = []
        var itl: [Double] = []
        var tpot: [Double] = []
        var tokens = 0
        e2e.reserveCapacity(measurements.count)
        for m in measurements {
            if let error = m.error {
                errors[error, default: 0] += 1
                continue
            }
            e2e.append(m.endToEnd)
            tokens += m.outputTokens
            if let t = m.timeToFirstToken { ttft.append(t) }
            itl.append(contentsOf: m.interTokenLatencies)
            if let t = m.timePerOutputToken { tpot.append(t) }
        }
        self.errors = errors
        succeeded = e2e.count
        failed = measurements.count - e2e.count
        totalOutputTokens = tokens
        let wall = wallSeconds > 0 ? wallSeconds : .nan
        requestsPerSecond = Double(succeeded) / wall
        outputTokensPerSecond = Double(tokens) / wall
        endToEnd = LatencyStatistics(samples: e2e)
        timeToFirstToken = LatencyStatistics(samples: ttft)
        interTokenLatency = LatencyStatistics(samples: itl)
        timePerOutputToken = LatencyStatistics(samples: tpot)
    }

    /// Fraction of requests that succeeded (1 when none were sent).
    public var successRate: Double { requests == 0 ? 1 : Double(succeeded) / Double(requests) }

    /// A human-readable table (milliseconds).
    public func renderTable() -> String {
        var out = "target      \(target)\n"
        out += "mode        \(mode)\(streaming ? ", streaming" : "")\n"
        out += "requests    \(requests)   ok \(succeeded)   failed \(failed)   success \(format(successRate * 100, 3))%\n"
        out += "wall        \(format(wallSeconds, 3)) s\n"
        out += "throughput  \(format(requestsPerSecond, 1)) req/s   \(format(outputTokensPerSecond, 1) ) output tok/s\n"
        if !errors.isEmpty {
            out += "errors      " + errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        out += "\n" + "metric (ms)".padding(12) + ["count", "mean", "p50", "p90", "p95", "p99", "max"].map { $0.leftPadding(10) }.joined() + "\n"
        let rows: [(String, LatencyStatistics?)] = [
            ("E2E", endToEnd), ("TTFT", timeToFirstToken), ("ITL", interTokenLatency), ("TPOT", timePerOutputToken),
        ]
        for (name, stats) in rows {
            guard let s = stats else { continue }
            out += name.padding(12) + String(s.count).leftPadding(10)
            out += [s.mean, s.p50, s.p90, s.p95, s.p99, s.max].map { format($0 * 1000, 3).leftPadding(10) }.joined()
            out += "\n"
        }
        return out
    }
}

/// Formats with a fixed number of decimals, without Foundation.
func format(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = (rounded / scale).rounded(.down)
    let frac = Int(rounded - whole * scale)
    var text = (value < 0 && rounded != 0 ? "-" : "") + String(Int(whole))
    if decimals > 0 {
        let digits = String(frac)
        text += "." + String(repeating: "0", count: max(0, decimals - digits.count)) + digits
    }
    return text
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
    func leftPadding(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}
