/// Which failures are retried, how often, how long to wait, and the total time a request may take.
public struct RetryPolicy: Sendable, Hashable {
    /// Upstream attempts per request, across backends and fallback models (≥ 1).
    public var maxAttempts: Int
    /// Wall time from admission to the last byte; no attempt or wait starts that would pass it.
    public var timeBudget: Duration
    /// The most one attempt may take (bounded further by what is left of `timeBudget`).
    public var attemptTimeout: Duration?
    /// Backoff before the n-th wait: `min(maxBackoff, initialBackoff × multiplier^(n-1))`,
    /// reduced by a random fraction up to `jitter` (0 = none, 1 = "full jitter").
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var multiplier: Double
    public var jitter: Double
    /// Upstream HTTP statuses worth another attempt.
    public var retryableStatuses: Set<Int>
    public var retryOnTimeout: Bool
    public var retryOnConnectionFailure: Bool
    public var retryOnInvalidResponse: Bool
    /// A Retry-After longer than this is not waited for when no other backend can take the request;
    /// the client gets 429/503 with the Retry-After instead.
    public var maxRetryAfterWait: Duration
    /// The longest silence between two chunks of a stream after its first (nil: no limit here; an
    /// HTTP upstream's read timeout still applies). A stream silent for longer is cancelled upstream
    /// and ends with an `upstreamTimeout` error event.
    public var streamIdleTimeout: Duration?

    /// Defaults: 4 attempts within 60 s, 30 s per attempt, backoff 200 ms × 2ⁿ up to 8 s with 50 % jitter,
    /// retry 408/429/500/502/503/504, timeouts and connection failures; wait for Retry-After up to 10 s.
    public init(
        maxAttempts: Int = 4, timeBudget: Duration = .seconds(60), attemptTimeout: Duration? = .seconds(30),
        initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(8), multiplier: Double = 2,
        jitter: Double = 0.5, retryableStatuses: Set<Int> = [408, 429, 500, 502, 503, 504],
        retryOnTimeout: Bool = true, retryOnConnectionFailure: Bool = true, retryOnInvalidResponse: Bool = true,
        maxRetryAfterWait: Duration = .seconds(10), streamIdleTimeout: Duration? = nil
    ) {
        self.maxAttempts = maxAttempts
        self.timeBudget = timeBudget
        self.attemptTimeout = attemptTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.multiplier = multiplier
        self.jitter = jitter
        self.retryableStatuses = retryableStatuses
        self.retryOnTimeout = retryOnTimeout
        self.retryOnConnectionFailure = retryOnConnectionFailure
        self.retryOnInvalidResponse = retryOnInvalidResponse
        self.maxRetryAfterWait = maxRetryAfterWait
        self.streamIdleTimeout = streamIdleTimeout
    }

    /// No retries at all.
    public static let none = RetryPolicy(maxAttempts: 1)

    public func validate() throws(RoutingError) {
        guard maxAttempts >= 1, maxAttempts <= 100 else {
            throw RoutingError(.invalidConfiguration, "retry maxAttempts must be between 1 and 100 (got \(maxAttempts))")
        }
        guard timeBudget > .zero else { throw RoutingError(.invalidConfiguration, "retry timeBudget must be positive") }
        if let attemptTimeout, attemptTimeout <= .zero {
            throw RoutingError(.invalidConfiguration, "retry attemptTimeout must be positive")
        }
        if let streamIdleTimeout, streamIdleTimeout <= .zero {
            throw RoutingError(.invalidConfiguration, "retry streamIdleTimeout must be positive")
        }
        guard initialBackoff >= .zero, maxBackoff >= initialBackoff else {
            throw RoutingError(.invalidConfiguration, "retry backoff must satisfy 0 ≤ initialBackoff ≤ maxBackoff")
        }
        guard multiplier.isFinite, multiplier >= 1 else {
            throw RoutingError(.invalidConfiguration, "retry multiplier must be ≥ 1 (got \(multiplier))")
        }
        guard jitter.isFinite, (0...1).contains(jitter) else {
            throw RoutingError(.invalidConfiguration, "retry jitter must be in [0, 1] (got \(jitter))")
        }
    }

    /// Whether another attempt may help after this failure.
    public func isRetryable(_ error: UpstreamError) -> Bool {
        switch error.kind {
        case .status(let code): return retryableStatuses.contains(code)
        case .timeout: return retryOnTimeout
        case .connectionFailed, .connectionDropped: return retryOnConnectionFailure
        case .invalidResponse: return retryOnInvalidResponse
        case .cancelled: return false
        }
    }

    /// The backoff before the `wait`-th wait (1-based), with jitter drawn from `random`.
    public func backoff(wait: Int, random: inout some RandomNumberGenerator) -> Duration {
        let base = initialBackoff.secondsDouble * pow(multiplier, Double(max(0, wait - 1)))
        let capped = min(maxBackoff.secondsDouble, base)
        let unit = Double(random.next() >> 11) * 0x1.0p-53
        return .seconds(double: capped * (1 - jitter * unit))
    }
}

/// Real-number power without Foundation.
@inline(__always) func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var remaining = Int(exponent)
    var factor = base
    while remaining > 0 {
        if remaining & 1 == 1 { result *= factor }
        factor *= factor
        remaining >>= 1
        if result > 1e12 { return result }
    }
    return result
}

/// The retry state of one request: counts attempts and waits, and decides what to do after a failure.
public struct RetryState: Sendable, Hashable {
    public enum Decision: Sendable, Hashable {
        /// Try another backend right away.
        case retryNow
        /// Wait, then try again.
        case wait(Duration)
        /// Stop; answer the client with the last error.
        case giveUp(GiveUpReason)
    }

    public enum GiveUpReason: Sendable, Hashable {
        case notRetryable
        case attemptsExhausted
        case budgetExhausted
        /// The upstream asked for a longer wait than the policy allows (carries that wait).
        case retryAfterTooLong(Duration)
    }

    public let policy: RetryPolicy
    public let start: RoutingInstant
    public private(set) var attempts = 0
    public private(set) var waits = 0

    public init(policy: RetryPolicy, start: RoutingInstant) {
        self.policy = policy
        self.start = start
    }

    public var deadline: RoutingInstant { start + policy.timeBudget }

    /// Counts an attempt about to start; returns its timeout (never past the deadline), or nil when
    /// no attempt may start (attempts or time used up).
    /// - Parameters:
    ///   - now: the current time.
    ///   - timeout: the backend's own attempt timeout, overriding the policy's.
    public mutating func beginAttempt(now: RoutingInstant, timeout: Duration? = nil) -> Duration?? {
        guard attempts < policy.maxAttempts, now < deadline else { return nil }
        attempts += 1
        let remaining = deadline - now
        return .some(min(timeout ?? policy.attemptTimeout ?? remaining, remaining))
    }

    /// Decides what follows a failed attempt.
    /// - Parameters:
    ///   - error: the failure of the attempt that just ended.
    ///   - now: the current time.
    ///   - alternativeAvailable: another backend (or fallback model) can take the request now.
    ///   - availableIn: when no backend is available, how long until one may be (breakers).
    ///   - random: the source of backoff jitter.
    public mutating func decide(
        after error: UpstreamError, now: RoutingInstant, alternativeAvailable: Bool, availableIn: Duration?,
        random: inout some RandomNumberGenerator
    ) -> Decision {
        guard policy.isRetryable(error) else { return .giveUp(.notRetryable) }
        guard attempts < policy.maxAttempts else { return .giveUp(.attemptsExhausted) }
        guard now < deadline else { return .giveUp(.budgetExhausted) }
        if alternativeAvailable { return .retryNow }
        var wait = policy.backoff(wait: waits + 1, random: &random)
        if let retryAfter = error.retryAfter {
            if retryAfter > policy.maxRetryAfterWait { return .giveUp(.retryAfterTooLong(retryAfter)) }
            wait = max(wait, retryAfter)
        }
        if let availableIn { wait = max(wait, availableIn) }
        // Waiting must leave time for an attempt.
        guard now + wait < deadline else { return .giveUp(.budgetExhausted) }
        waits += 1
        return .wait(wait)
    }
}
