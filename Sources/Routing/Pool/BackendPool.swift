/// Prices per million tokens (USD or any currency, consistently).
public struct TokenPricing: Sendable, Hashable, Codable {
    public var inputPerMillion: Double
    public var outputPerMillion: Double
    public init(inputPerMillion: Double, outputPerMillion: Double) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
    }
    public func cost(promptTokens: Int, completionTokens: Int) -> Double {
        (Double(promptTokens) * inputPerMillion + Double(completionTokens) * outputPerMillion) / 1_000_000
    }
    /// A single number for ranking (input and output weighted 3:1, a typical chat mix).
    public var blended: Double { (3 * inputPerMillion + outputPerMillion) / 4 }
}

/// One endpoint of a model: an Azure OpenAI deployment, a vLLM replica, a PAYG account, …
public struct Backend: Sendable, Hashable {
    /// Unique id; used as a metric label and in logs (keep it short and stable).
    public var id: String
    /// The model (deployment) name sent upstream; nil sends the public model name.
    public var upstreamModel: String?
    /// Priority group: lower numbers are tried first; higher groups take overflow.
    public var priority: Int
    /// Relative share of traffic for the weighted strategy (≥ 1).
    public var weight: Int
    /// The group overflows past this backend when it has this many requests in flight.
    public var maxConcurrentRequests: Int?
    /// Marginal price of tokens here (nil: prepaid, e.g. PTU or self-hosted — counted as 0).
    public var pricing: TokenPricing?
    public var region: String?
    /// This backend's attempt timeout, when it differs from ``RetryPolicy/attemptTimeout``
    /// (a self-hosted model on smaller GPUs may need longer than a PTU). Never past the time budget.
    public var attemptTimeout: Duration?

    public init(
        id: String, upstreamModel: String? = nil, priority: Int = 0, weight: Int = 1,
        maxConcurrentRequests: Int? = nil, pricing: TokenPricing? = nil, region: String? = nil,
        attemptTimeout: Duration? = nil
    ) {
        self.id = id
        self.upstreamModel = upstreamModel
        self.priority = priority
        self.weight = weight
        self.maxConcurrentRequests = maxConcurrentRequests
        self.pricing = pricing
        self.region = region
        self.attemptTimeout = attemptTimeout
    }
}

/// How a pool picks among the available backends of its best priority group.
public enum BalancingStrategy: Sendable, Hashable {
    /// In turn.
    case roundRobin
    /// In proportion to `weight` (smooth weighted round-robin: no bursts to one backend).
    case weighted
    /// The one with the fewest requests in flight.
    case leastOutstanding
    /// The one with the lowest exponentially weighted moving average latency; `alpha` is the weight
    /// of the newest sample. Unmeasured backends go first so every backend gets measured.
    case latencyAware(alpha: Double)
    /// The cheapest by blended token price; ties by fewest in flight.
    case costAware
}

/// The backends of one model with their breakers and load: a value-type state machine.
///
/// ``lease(now:excluding:)`` picks and reserves a backend; ``complete(_:outcome:latency:now:)``
/// releases it and feeds the breaker and latency estimate.
public struct BackendPool: Sendable {
    public struct Lease: Sendable, Hashable {
        public let index: Int
        public let backendID: String
        let probe: Bool
    }

    struct Slot: Sendable {
        var backend: Backend
        var breaker: CircuitBreaker
        var outstanding = 0
        var ewmaSeconds: Double?
        var smoothWeight = 0
    }

    public let strategy: BalancingStrategy
    private(set) var slots: [Slot]
    /// Backend indices by priority group, groups in ascending priority.
    private let groups: [[Int]]
    private var cursors: [Int]

    /// - Throws: `invalidConfiguration` for an empty pool, duplicate ids, or bad weights/limits.
    public init(
        backends: [Backend], strategy: BalancingStrategy = .roundRobin,
        breaker: CircuitBreakerConfiguration = .init()
    ) throws(RoutingError) {
        guard !backends.isEmpty else { throw RoutingError(.invalidConfiguration, "a backend pool needs at least one backend") }
        try breaker.validate()
        var seen: Set<String> = []
        for backend in backends {
            guard !backend.id.isEmpty, seen.insert(backend.id).inserted else {
                throw RoutingError(.invalidConfiguration, "backend id '\(backend.id)' is empty or used twice in a pool")
            }
            // Bounded so the smooth weighted round-robin sums cannot overflow.
            guard (1...1_000_000).contains(backend.weight) else {
                throw RoutingError(.invalidConfiguration, "backend '\(backend.id)' weight must be between 1 and 1000000")
            }
            if let timeout = backend.attemptTimeout, timeout <= .zero {
                throw RoutingError(.invalidConfiguration, "backend '\(backend.id)' attemptTimeout must be positive")
            }
            if let limit = backend.maxConcurrentRequests, limit < 1 {
                throw RoutingError(.invalidConfiguration, "backend '\(backend.id)' maxConcurrentRequests must be ≥ 1")
            }
        }
        if case .latencyAware(let alpha) = strategy, !(alpha > 0 && alpha <= 1) {
            throw RoutingError(.invalidConfiguration, "latency-aware alpha must be in (0, 1] (got \(alpha))")
        }
        self.strategy = strategy
        self.slots = backends.map { Slot(backend: $0, breaker: CircuitBreaker(configuration: breaker)) }
        let priorities = Set(backends.map(\.priority)).sorted()
        self.groups = priorities.map { p in backends.indices.filter { backends[$0].priority == p } }
        self.cursors = Array(repeating: 0, count: groups.count)
    }

    public var backends: [Backend] { slots.map(\.backend) }

    /// Breaker state, in-flight count and latency estimate of each backend.
    public var health: [(backend: Backend, state: CircuitBreaker.State, outstanding: Int, ewmaLatency: Duration?)] {
        slots.map { ($0.backend, $0.breaker.state, $0.outstanding, $0.ewmaSeconds.map { .seconds(double: $0) }) }
    }

    private func eligible(_ index: Int, now: RoutingInstant, excluding: Set<Int>) -> Bool {
        let slot = slots[index]
        if excluding.contains(index) { return false }
        if let limit = slot.backend.maxConcurrentRequests, slot.outstanding >= limit { return false }
        return slot.breaker.wouldAllow(now: now)
    }

    /// Whether some backend could take a request now.
    public func hasAvailable(now: RoutingInstant, excluding: Set<Int> = []) -> Bool {
        slots.indices.contains { eligible($0, now: now, excluding: excluding) }
    }

    /// The time until a backend's breaker lets a request through (nil when none is open, or
    /// when the blocking reason is load, whose end cannot be predicted).
    public func nextAvailableIn(now: RoutingInstant) -> Duration? {
        var best: Duration?
        for slot in slots {
            if case .open(let until) = slot.breaker.state {
                let wait = max(.zero, until - now)
                best = best.map { min($0, wait) } ?? wait
            }
        }
        return best
    }

    /// Picks a backend of the first priority group that has an eligible one, and reserves it.
    public mutating func lease(now: RoutingInstant, excluding: Set<Int> = []) -> (Lease, CircuitBreaker.Transition?)? {
        for (g, group) in groups.enumerated() {
            let candidates = group.filter { eligible($0, now: now, excluding: excluding) }
            guard !candidates.isEmpty else { continue }
            let index = choose(from: candidates, group: g, in: group)
            let (permit, transition) = slots[index].breaker.acquire(now: now)
            let probe: Bool
            switch permit {
            case .allowed: probe = false
            case .probe: probe = true
            case .rejected: continue  // unreachable: eligibility checked the breaker
            }
            slots[index].outstanding += 1
            return (Lease(index: index, backendID: slots[index].backend.id, probe: probe), transition)
        }
        return nil
    }

    private mutating func choose(from candidates: [Int], group g: Int, in group: [Int]) -> Int {
        // Round-robin order starting at this group's cursor, used directly or to break ties.
        let ordered = candidates.sorted { rotated($0, group: g, in: group) < rotated($1, group: g, in: group) }
        let pick: Int
        switch strategy {
        case .roundRobin:
            pick = ordered[0]
        case .weighted:
            let total = candidates.reduce(0) { $0 + slots[$1].backend.weight }
            for index in candidates { slots[index].smoothWeight += slots[index].backend.weight }
            var best = ordered[0]
            for index in ordered where slots[index].smoothWeight > slots[best].smoothWeight { best = index }
            slots[best].smoothWeight -= total
            pick = best
        case .leastOutstanding:
            pick = ordered.min { slots[$0].outstanding < slots[$1].outstanding } ?? ordered[0]
        case .latencyAware:
            pick = ordered.min { (slots[$0].ewmaSeconds ?? 0) < (slots[$1].ewmaSeconds ?? 0) } ?? ordered[0]
        case .costAware:
            pick = ordered.min { a, b in
                let pa = slots[a].backend.pricing?.blended ?? 0
                let pb = slots[b].backend.pricing?.blended ?? 0
                return pa != pb ? pa < pb : slots[a].outstanding < slots[b].outstanding
            } ?? ordered[0]
        }
        if let position = group.firstIndex(of: pick) { cursors[g] = (position + 1) % group.count }
        return pick
    }

    private func rotated(_ index: Int, group g: Int, in group: [Int]) -> Int {
        let position = group.firstIndex(of: index) ?? 0
        return (position - cursors[g] + group.count) % group.count
    }

    /// Releases a lease and records its outcome.
    @discardableResult
    public mutating func complete(
        _ lease: Lease, outcome: CircuitBreaker.Outcome, latency: Duration?, now: RoutingInstant
    ) -> CircuitBreaker.Transition? {
        guard slots.indices.contains(lease.index) else { return nil }
        slots[lease.index].outstanding = max(0, slots[lease.index].outstanding - 1)
        if let latency, case .latencyAware(let alpha) = strategy {
            let sample = latency.secondsDouble
            slots[lease.index].ewmaSeconds = slots[lease.index].ewmaSeconds.map { alpha * sample + (1 - alpha) * $0 } ?? sample
        }
        return slots[lease.index].breaker.record(outcome, probe: lease.probe, now: now)
    }
}
