import Metrics

/// Who used what, where.
public struct UsageKey: Sendable, Hashable, CustomStringConvertible {
    /// The API key's id (never its secret); "anonymous" without authentication.
    public var apiKeyID: String
    /// Public model name.
    public var model: String
    /// Backend id; "cache" for answers served from a cache.
    public var backend: String
    public init(apiKeyID: String, model: String, backend: String) {
        self.apiKeyID = apiKeyID
        self.model = model
        self.backend = backend
    }
    public var description: String { "\(apiKeyID)/\(model)/\(backend)" }
}

/// Totals for one ``UsageKey``.
public struct UsageTotals: Sendable, Hashable {
    public var requests = 0
    public var failures = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var cost = 0.0
    public init() {}
}

/// In-memory usage totals per key/model/backend (the same numbers the metrics carry).
public struct UsageLedger: Sendable, Hashable {
    public private(set) var totals: [UsageKey: UsageTotals] = [:]
    public init() {}

    mutating func record(_ key: UsageKey, promptTokens: Int, completionTokens: Int, cost: Double, failed: Bool) {
        var entry = totals[key] ?? UsageTotals()
        entry.requests += 1
        if failed { entry.failures += 1 }
        entry.promptTokens += promptTokens
        entry.completionTokens += completionTokens
        entry.cost += cost
        totals[key] = entry
    }

    /// Sums over every entry matching the filters (nil matches all).
    public func sum(apiKeyID: String? = nil, model: String? = nil, backend: String? = nil) -> UsageTotals {
        var out = UsageTotals()
        for (key, value) in totals
        where (apiKeyID == nil || key.apiKeyID == apiKeyID) && (model == nil || key.model == model)
            && (backend == nil || key.backend == backend)
        {
            out.requests += value.requests
            out.failures += value.failures
            out.promptTokens += value.promptTokens
            out.completionTokens += value.completionTokens
            out.cost += value.cost
        }
        return out
    }
}

/// The gateway's metrics, through the swift-metrics API (the process chooses the backend).
///
/// Labels are low-cardinality: configured API-key ids, model names, backend ids, and small enums.
/// Metric handles are created once per label set and reused.
struct GatewayMetrics: Sendable {
    let prefix: String
    /// Where metrics go; nil uses the process-wide `MetricsSystem` factory.
    let factory: (any MetricsFactory)?
    private var counters: [String: Counter] = [:]
    private var floatCounters: [String: FloatingPointCounter] = [:]
    private var timers: [String: Timer] = [:]
    private var gauges: [String: Gauge] = [:]

    init(prefix: String, factory: (any MetricsFactory)?) {
        self.prefix = prefix
        self.factory = factory
    }

    private static func id(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "|" + $1.0 + "=" + $1.1 }
    }

    mutating func increment(_ name: String, by amount: Int = 1, _ dimensions: [(String, String)]) {
        guard amount > 0 else { return }
        let label = prefix + "_" + name
        let key = Self.id(label, dimensions)
        let counter = counters[key] ?? (factory.map { Counter(label: label, dimensions: dimensions, factory: $0) }
            ?? Counter(label: label, dimensions: dimensions))
        counters[key] = counter
        counter.increment(by: amount)
    }

    mutating func add(_ name: String, _ amount: Double, _ dimensions: [(String, String)]) {
        guard amount > 0, amount.isFinite else { return }
        let label = prefix + "_" + name
        let key = Self.id(label, dimensions)
        let counter = floatCounters[key] ?? (factory.map { FloatingPointCounter(label: label, dimensions: dimensions, factory: $0) }
            ?? FloatingPointCounter(label: label, dimensions: dimensions))
        floatCounters[key] = counter
        counter.increment(by: amount)
    }

    mutating func record(_ name: String, _ duration: Duration, _ dimensions: [(String, String)]) {
        let label = prefix + "_" + name
        let key = Self.id(label, dimensions)
        let timer = timers[key] ?? (factory.map { Timer(label: label, dimensions: dimensions, factory: $0) }
            ?? Timer(label: label, dimensions: dimensions))
        timers[key] = timer
        timer.recordNanoseconds(max(0, Int64(duration.secondsDouble * 1e9)))
    }

    mutating func gauge(_ name: String, _ value: Double, _ dimensions: [(String, String)]) {
        let label = prefix + "_" + name
        let key = Self.id(label, dimensions)
        let gauge = gauges[key] ?? (factory.map { Gauge(label: label, dimensions: dimensions, factory: $0) }
            ?? Gauge(label: label, dimensions: dimensions))
        gauges[key] = gauge
        gauge.record(value)
    }
}
