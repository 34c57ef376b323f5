/// When a backend's circuit breaker opens, how long it stays open, and how it closes again.
public struct CircuitBreakerConfiguration: Sendable, Hashable {
    /// Open after this many failures within `interval` (nil: no count rule).
    public var failureThreshold: Int?
    /// Open when failures / outcomes within `interval` reach this fraction (nil: no percentage rule)…
    public var failureRateThreshold: Double?
    /// …provided at least this many outcomes were seen in the interval.
    public var minimumRequests: Int
    /// The sliding window the rules look at.
    public var interval: Duration
    /// How long the breaker stays open before letting probes through.
    public var tripDuration: Duration
    /// When a failure carries a Retry-After (429/503), open at once for that long instead
    /// (bounded by `maxRetryAfterTrip`) — the backend said when to come back.
    public var honourRetryAfter: Bool
    public var maxRetryAfterTrip: Duration
    /// Requests allowed through at once while half-open.
    public var halfOpenProbes: Int
    /// Successful probes needed to close.
    public var successesToClose: Int

    /// Defaults: 5 failures in 10 s, or ≥ 50 % of ≥ 10 requests; open 30 s; 1 probe; Retry-After honoured up to 5 min.
    public init(
        failureThreshold: Int? = 5, failureRateThreshold: Double? = 0.5, minimumRequests: Int = 10,
        interval: Duration = .seconds(10), tripDuration: Duration = .seconds(30), honourRetryAfter: Bool = true,
        maxRetryAfterTrip: Duration = .seconds(300), halfOpenProbes: Int = 1, successesToClose: Int = 1
    ) {
        self.failureThreshold = failureThreshold
        self.failureRateThreshold = failureRateThreshold
        self.minimumRequests = minimumRequests
        self.interval = interval
        self.tripDuration = tripDuration
        self.honourRetryAfter = honourRetryAfter
        self.maxRetryAfterTrip = maxRetryAfterTrip
        self.halfOpenProbes = halfOpenProbes
        self.successesToClose = successesToClose
    }

    /// Throws `invalidConfiguration` for values that would make the breaker meaningless.
    public func validate() throws(RoutingError) {
        if let threshold = failureThreshold, threshold < 1 {
            throw RoutingError(.invalidConfiguration, "circuit breaker failureThreshold must be ≥ 1 (got \(threshold))")
        }
        if let rate = failureRateThreshold, !(rate > 0 && rate <= 1) {
            throw RoutingError(.invalidConfiguration, "circuit breaker failureRateThreshold must be in (0, 1] (got \(rate))")
        }
        guard minimumRequests >= 1 else {
            throw RoutingError(.invalidConfiguration, "circuit breaker minimumRequests must be ≥ 1")
        }
        guard interval > .zero, tripDuration > .zero, maxRetryAfterTrip >= .zero else {
            throw RoutingError(.invalidConfiguration, "circuit breaker interval and tripDuration must be positive")
        }
        guard halfOpenProbes >= 1, successesToClose >= 1 else {
            throw RoutingError(.invalidConfiguration, "circuit breaker halfOpenProbes and successesToClose must be ≥ 1")
        }
    }
}

/// A per-backend circuit breaker: a value-type state machine. The owner calls ``acquire(now:)``
/// before an attempt and ``record(_:probe:now:)`` after it; time is always passed in.
public struct CircuitBreaker: Sendable, Hashable {
    public enum State: Sendable, Hashable, CustomStringConvertible {
        case closed
        case open(until: RoutingInstant)
        case halfOpen(inFlight: Int, successes: Int)

        public var name: String {
            switch self {
            case .closed: return "closed"
            case .open: return "open"
            case .halfOpen: return "half_open"
            }
        }
        public var description: String { name }
    }

    /// The outcome of one attempt, as the breaker sees it.
    public enum Outcome: Sendable, Hashable {
        case success
        case failure(retryAfter: Duration?)
        /// Neither (e.g. the client cancelled): frees a probe slot without counting.
        case ignored
    }

    public enum Permit: Sendable, Hashable {
        case allowed
        /// Allowed as a half-open probe; pass `probe: true` to `record`.
        case probe
        case rejected(retryIn: Duration)
    }

    /// A state change, for logs, metrics and tests.
    public struct Transition: Sendable, Hashable {
        public var from: String
        public var to: String
        public var at: RoutingInstant
        /// For transitions to open: how long it stays open.
        public var openFor: Duration?
        public var reason: String
    }

    public let configuration: CircuitBreakerConfiguration
    public private(set) var state: State = .closed
    /// Outcomes inside the window: (time, failed).
    private var window: [(at: RoutingInstant, failed: Bool)] = []
    private var windowStart = 0
    private static let maxWindowEntries = 4096

    public init(configuration: CircuitBreakerConfiguration = .init()) {
        self.configuration = configuration
    }

    public static func == (lhs: CircuitBreaker, rhs: CircuitBreaker) -> Bool {
        lhs.state == rhs.state && lhs.configuration == rhs.configuration
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(state) }

    /// Whether an attempt would be let through now (no state change).
    public func wouldAllow(now: RoutingInstant) -> Bool {
        switch state {
        case .closed: return true
        case .open(let until): return now >= until
        case .halfOpen(let inFlight, _): return inFlight < configuration.halfOpenProbes
        }
    }

    /// Asks to send an attempt. Moves open → half-open when the trip time is over.
    public mutating func acquire(now: RoutingInstant) -> (Permit, Transition?) {
        switch state {
        case .closed:
            return (.allowed, nil)
        case .open(let until):
            guard now >= until else { return (.rejected(retryIn: until - now), nil) }
            state = .halfOpen(inFlight: 1, successes: 0)
            return (.probe, Transition(from: "open", to: "half_open", at: now, openFor: nil, reason: "trip time over"))
        case .halfOpen(let inFlight, let successes):
            guard inFlight < configuration.halfOpenProbes else { return (.rejected(retryIn: .zero), nil) }
            state = .halfOpen(inFlight: inFlight + 1, successes: successes)
            return (.probe, nil)
        }
    }

    /// Records the outcome of an attempt let through by ``acquire(now:)``.
    public mutating func record(_ outcome: Outcome, probe: Bool, now: RoutingInstant) -> Transition? {
        if probe, case .halfOpen(let inFlight, let successes) = state {
            switch outcome {
            case .ignored:
                state = .halfOpen(inFlight: max(0, inFlight - 1), successes: successes)
                return nil
            case .failure(let retryAfter):
                return trip(now: now, retryAfter: retryAfter, from: "half_open", reason: "probe failed")
            case .success:
                if successes + 1 >= configuration.successesToClose {
                    state = .closed
                    window.removeAll(keepingCapacity: true)
                    windowStart = 0
                    return Transition(from: "half_open", to: "closed", at: now, openFor: nil, reason: "probe succeeded")
                }
                state = .halfOpen(inFlight: max(0, inFlight - 1), successes: successes + 1)
                return nil
            }
        }
        // Outcomes of attempts started before the breaker opened do not count again.
        guard case .closed = state else { return nil }
        let failed: Bool
        switch outcome {
        case .ignored: return nil
        case .success: failed = false
        case .failure(let retryAfter):
            failed = true
            if configuration.honourRetryAfter, let retryAfter, retryAfter > .zero {
                return trip(now: now, retryAfter: retryAfter, from: "closed", reason: "upstream asked to retry after \(retryAfter)")
            }
        }
        append(now: now, failed: failed)
        guard failed else { return nil }
        let live = window[windowStart...]
        let failures = live.reduce(0) { $0 + ($1.failed ? 1 : 0) }
        if let threshold = configuration.failureThreshold, failures >= threshold {
            return trip(now: now, retryAfter: nil, from: "closed", reason: "\(failures) failures within \(configuration.interval)")
        }
        if let rate = configuration.failureRateThreshold, live.count >= configuration.minimumRequests,
           Double(failures) >= rate * Double(live.count)
        {
            return trip(now: now, retryAfter: nil, from: "closed",
                        reason: "\(failures) of \(live.count) requests failed within \(configuration.interval)")
        }
        return nil
    }

    private mutating func append(now: RoutingInstant, failed: Bool) {
        window.append((now, failed))
        let cutoff = now - configuration.interval
        while windowStart < window.count, window[windowStart].at <= cutoff { windowStart += 1 }
        if window.count - windowStart > Self.maxWindowEntries { windowStart = window.count - Self.maxWindowEntries }
        if windowStart > 1024, windowStart * 2 > window.count {
            window.removeFirst(windowStart)
            windowStart = 0
        }
    }

    private mutating func trip(now: RoutingInstant, retryAfter: Duration?, from: String, reason: String) -> Transition {
        var duration = configuration.tripDuration
        if configuration.honourRetryAfter, let retryAfter, retryAfter > .zero {
            duration = min(retryAfter, configuration.maxRetryAfterTrip)
        }
        state = .open(until: now + duration)
        window.removeAll(keepingCapacity: true)
        windowStart = 0
        return Transition(from: from, to: "open", at: now, openFor: duration, reason: reason)
    }
}
