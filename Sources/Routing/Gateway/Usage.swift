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
/// Metric handles are created once per label set and reused; a metric name always comes with the
/// same label names, so a handle is found by its name and label values alone (no string building
/// per request).
struct GatewayMetrics: Sendable {
    let prefix: String
    /// Where metrics go; nil uses the process-wide `MetricsSystem` factory.
    let factory: (any MetricsFactory)?

    struct HandleKey: Hashable, Sendable {
        var name: String
        var v0 = "", v1 = "", v2 = "", v3 = ""
        init(_ name: String, _ dimensions: [(String, String)]) {
            self.name = name
            if dimensions.count > 0 { v0 = dimensions[0].1 }
            if dimensions.count > 1 { v1 = dimensions[1].1 }
            if dimensions.count > 2 { v2 = dimensions[2].1 }
            if dimensions.count > 3 { v3 = dimensions[3].1 }
        }
    }

    private var counters: [HandleKey: Counter] = [:]
    private var floatCounters: [HandleKey: FloatingPointCounter] = [:]
    private var timers: [HandleKey: Timer] = [:]
    private var gauges: [HandleKey: Gauge] = [:]

    init(prefix: String, factory: (any MetricsFactory)?) {
        self.prefix = prefix
        self.factory = factory
    }

    mutating func increment(_ name: String, by amount: Int = 1, _ dimensions: [(String, String)]) {
        guard amount > 0 else { return }
        let key = HandleKey(name, dimensions)
        if let counter = counters[key] { return counter.increment(by: amount) }
        let label = prefix + "_" + name
        let counter = factory.map { Counter(label: label, dimensions: dimensions, factory: $0) }
            ?? Counter(label: label, dimensions: dimensions)
        counters[key] = counter
        counter.increment(by: amount)
    }

    mutating func add(_ name: String, _ amount: Double, _ dimensions: [(String, String)]) {
        guard amount > 0, amount.isFinite else { return }
        let key = HandleKey(name, dimensions)
        if let counter = floatCounters[key] { return counter.increment(by: amount) }
        let label = prefix + "_" + name
        let counter = factory.map { FloatingPointCounter(label: label, dimensions: dimensions, factory: $0) }
            ?? FloatingPointCounter(label: label, dimensions: dimensions)
        floatCounters[key] = counter
        counter.increment(by: amount)
    }

    mutating func record(_ name: String, _ duration: Duration, _ dimensions: [(String, String)]) {
        let nanoseconds = max(0, Int64(duration.secondsDouble * 1e9))
        let key = HandleKey(name, dimensions)
        if let timer = timers[key] { return timer.recordNanoseconds(nanoseconds) }
        let label = prefix + "_" + name
        let timer = factory.map { Timer(label: label, dimensions: dimensions, factory: $0) }
            ?? Timer(label: label, dimensions: dimensions)
        timers[key] = timer
        timer.recordNanoseconds(nanoseconds)
    }

    mutating func gauge(_ name: String, _ value: Double, _ dimensions: [(String, String)]) {
        let key = HandleKey(name, dimensions)
        if let gauge = gauges[key] { return gauge.record(value) }
        let label = prefix + "_" + name
        let gauge = factory.map { Gauge(label: label, dimensions: dimensions, factory: $0) }
            ?? Gauge(label: label, dimensions: dimensions)
        gauges[key] = gauge
        gauge.record(value)
    }
}
