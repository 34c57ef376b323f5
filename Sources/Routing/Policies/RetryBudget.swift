/// Settings of a ``RetryBudget``.
public struct RetryBudgetConfiguration: Sendable, Hashable {
    /// Retries allowed per request, on average (0.2: at most 20 % extra upstream load).
    public var ratio: Double
    /// Retries per second allowed whatever the request count.
    public var minRetriesPerSecond: Double
    /// The most retries that can be saved up.
    public var burst: Int
    /// Defaults as Finagle's: 20 % of requests, 10 retries/s floor; 100 retries of burst.
    public init(ratio: Double = 0.2, minRetriesPerSecond: Double = 10, burst: Int = 100) {
        self.ratio = ratio
        self.minRetriesPerSecond = minRetriesPerSecond
        self.burst = burst
    }
}

/// A retry budget shared by all requests of a gateway, so retries cannot multiply load when
/// upstreams are failing (a retry storm): every request deposits `ratio` of a retry, every retry
/// withdraws one, and a floor of `minRetriesPerSecond` refills on its own so a quiet gateway can
/// still retry. The idea of Finagle's `RetryBudget` and Envoy's `retry_budget`, as an exact
/// value-type state machine with an injected clock.
///
/// Over any long run, retries ≤ `ratio` × requests + `minRetriesPerSecond` × seconds + `burst`.
/// State is in milli-retries (integers), so the bound is exact with no floating-point drift.
public struct RetryBudget: Sendable, Hashable {
    /// Retries allowed per request, on average (0.2: at most 20 % extra upstream load).
    public let ratio: Double
    /// Retries per second allowed whatever the request count.
    public let minRetriesPerSecond: Double
    /// The most retries that can be saved up (the bucket's capacity).
    public let burst: Int
    private let depositMilli: Int64
    private let floorMilliPerSecond: Int64
    private var balanceMilli: Int64
    private var lastRefill: RoutingInstant

    /// - Throws: ``RoutingError`` (`invalidConfiguration`) for a negative, non-finite or absurd
    ///   ratio or floor (ratio ≤ 100, floor ≤ 1,000/s), or a burst outside 1...1,000,000.
    public init(ratio: Double = 0.2, minRetriesPerSecond: Double = 10, burst: Int = 100,
                now: RoutingInstant = .origin) throws(RoutingError) {
        guard ratio.isFinite, (0...100).contains(ratio) else {
            throw RoutingError(.invalidConfiguration, "retry budget ratio must be in [0, 100] (got \(ratio))")
        }
        guard minRetriesPerSecond.isFinite, (0...1000).contains(minRetriesPerSecond) else {
            throw RoutingError(.invalidConfiguration, "retry budget minRetriesPerSecond must be in [0, 1000] (got \(minRetriesPerSecond))")
        }
        guard (1...1_000_000).contains(burst) else {
            throw RoutingError(.invalidConfiguration, "retry budget burst must be in 1...1000000 (got \(burst))")
        }
        self.ratio = ratio
        self.minRetriesPerSecond = minRetriesPerSecond
        self.burst = burst
        depositMilli = Int64((ratio * 1000).rounded())
        floorMilliPerSecond = Int64((minRetriesPerSecond * 1000).rounded())
        balanceMilli = Int64(burst) * 1000
        lastRefill = now
    }

    public init(configuration: RetryBudgetConfiguration, now: RoutingInstant = .origin) throws(RoutingError) {
        try self.init(ratio: configuration.ratio, minRetriesPerSecond: configuration.minRetriesPerSecond,
                      burst: configuration.burst, now: now)
    }

    private var capacityMilli: Int64 { Int64(burst) * 1000 }

    private mutating func refill(now: RoutingInstant) {
        let elapsedMicros = TokenBucket.micros(now - lastRefill)
        guard elapsedMicros > 0 else { return }
        // Only whole milli-retries are added; the rest of the interval is kept for next time
        // (rounded in the budget's disfavour, so the floor is never exceeded). 10⁶ s × 10⁶ milli/s fits.
        let capped = min(elapsedMicros, 1_000_000_000_000)
        let gained = capped * floorMilliPerSecond / 1_000_000
        if floorMilliPerSecond == 0 || balanceMilli >= capacityMilli || capped < elapsedMicros {
            lastRefill = now
        } else {
            let usedMicros = (gained * 1_000_000 + floorMilliPerSecond - 1) / floorMilliPerSecond
            lastRefill = lastRefill + .microseconds(usedMicros)
        }
        balanceMilli = min(capacityMilli, balanceMilli + gained)
    }

    /// Counts a new request (call once per request, before its first attempt).
    public mutating func deposit(now: RoutingInstant) {
        refill(now: now)
        balanceMilli = min(capacityMilli, balanceMilli + depositMilli)
    }

    /// Takes one retry if the budget has it; false means "do not retry".
    public mutating func withdraw(now: RoutingInstant) -> Bool {
        refill(now: now)
        guard balanceMilli >= 1000 else { return false }
        balanceMilli -= 1000
        return true
    }

    /// Whole retries available now.
    public mutating func available(now: RoutingInstant) -> Int {
        refill(now: now)
        return Int(balanceMilli / 1000)
    }
}
