/// Limits for one API key or one model.
public struct RateLimit: Sendable, Hashable {
    /// Requests per minute (a token bucket refilled continuously).
    public var requestsPerMinute: Int?
    /// Tokens (prompt + completion) per minute.
    public var tokensPerMinute: Int?
    /// A hard quota per fixed period (e.g. a day or 30 days).
    public var quota: Quota?

    public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, quota: Quota? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.quota = quota
    }
}

/// A usage quota over fixed periods. Quota state is in memory and starts afresh when the process
/// restarts.
public struct Quota: Sendable, Hashable {
    /// Where periods start.
    public enum Alignment: Sendable, Hashable {
        /// At the clock's origin (process start for ``SystemRoutingClock``), then every period.
        case clockOrigin
        /// At multiples of the period since 1970-01-01 00:00 UTC: a 1-day quota resets at midnight
        /// UTC, a 1-hour quota on the hour (needs the limiter's `unixTimeAtOrigin`).
        case utc
    }

    public var period: Duration
    public var maxTokens: Int?
    public var maxRequests: Int?
    public var alignment: Alignment
    public init(period: Duration, maxTokens: Int? = nil, maxRequests: Int? = nil, alignment: Alignment = .clockOrigin) {
        self.period = period
        self.maxTokens = maxTokens
        self.maxRequests = maxRequests
        self.alignment = alignment
    }
}

/// How tokens/min limits admit a request whose prompt size is only estimated.
public enum TokenAdmission: Sendable, Hashable {
    /// Admit while the bucket is not empty and charge the estimate; the upstream's reported usage
    /// then corrects the charge (the bucket may go into debt, repaid by refill). A key allowed N
    /// tokens/min is never refused before it has used N — estimate errors cannot lock it out early.
    case optimistic
    /// Admit only when the bucket holds the whole estimate. Never exceeds the limit on
    /// admission, but an over-estimate can refuse a request that would have fitted.
    case strict
}

/// Which limit refused a request.
public enum RateLimitScope: Sendable, Hashable, CustomStringConvertible {
    case apiKey(String)
    case model(String)
    public var description: String {
        switch self {
        case .apiKey(let id): return "API key '\(id)'"
        case .model(let name): return "model '\(name)'"
        }
    }
}

/// Per-key and per-model requests/min, tokens/min and quotas, as a value-type state machine.
///
/// `admit` checks every applicable limit and charges them all or none; `reconcile` corrects the
/// token charge with the usage the upstream reported.
public struct RateLimiter: Sendable {
    public enum Decision: Sendable, Hashable {
        case admitted(Ticket)
        /// 429: retry after the given time.
        case rateLimited(scope: RateLimitScope, retryAfter: Duration, what: String)
        /// 429 without Retry-After: the request alone exceeds a per-minute limit.
        case tooLarge(scope: RateLimitScope, tokens: Int, limit: Int)
        /// 403: the quota of the current period is used up; it resets after `resetIn`.
        case quotaExhausted(scope: RateLimitScope, resetIn: Duration, what: String)
    }

    /// What was charged at admission, to be reconciled later.
    public struct Ticket: Sendable, Hashable {
        public let scopes: [RateLimitScope]
        public let chargedTokens: Int
    }

    struct Entry: Sendable {
        var limit: RateLimit
        var requests: TokenBucket?
        var tokens: TokenBucket?
        var windowIndex: Int64 = 0
        var windowTokens: Int64 = 0
        var windowRequests: Int64 = 0
    }

    public let admission: TokenAdmission
    /// The Unix time of the clock's origin, in microseconds (for ``Quota/Alignment/utc``).
    private let unixMicrosAtOrigin: Int64
    private var entries: [RateLimitScope: Entry] = [:]
    private let keyLimits: [String: RateLimit]
    private let defaultKeyLimit: RateLimit?
    private let modelLimits: [String: RateLimit]

    /// - Parameters:
    ///   - keyLimits: limits by API-key id.
    ///   - defaultKeyLimit: limits for keys not listed in `keyLimits` (nil: unlimited).
    ///   - modelLimits: limits by public model name, shared by all keys.
    ///   - admission: how tokens/min limits treat estimated prompt sizes.
    ///   - unixTimeAtOrigin: the wall-clock time (seconds since 1970) of the clock's origin, which
    ///     places ``Quota/Alignment/utc`` periods (``Gateway`` passes its clock's).
    /// - Throws: ``RoutingError`` (`invalidConfiguration`) for zero, negative or absurd limits.
    public init(
        keyLimits: [String: RateLimit] = [:], defaultKeyLimit: RateLimit? = nil,
        modelLimits: [String: RateLimit] = [:], admission: TokenAdmission = .optimistic,
        unixTimeAtOrigin: Double = 0
    ) throws(RoutingError) {
        guard unixTimeAtOrigin.isFinite, (0...1e11).contains(unixTimeAtOrigin) else {
            throw RoutingError(.invalidConfiguration, "unixTimeAtOrigin must be a time after 1970 (got \(unixTimeAtOrigin))")
        }
        self.unixMicrosAtOrigin = Int64((unixTimeAtOrigin * 1_000_000).rounded(.down))
        for (name, limit) in keyLimits { try Self.validate(limit, RateLimitScope.apiKey(name)) }
        if let defaultKeyLimit { try Self.validate(defaultKeyLimit, RateLimitScope.apiKey("*")) }
        for (name, limit) in modelLimits { try Self.validate(limit, RateLimitScope.model(name)) }
        self.keyLimits = keyLimits
        self.defaultKeyLimit = defaultKeyLimit
        self.modelLimits = modelLimits
        self.admission = admission
    }

    static func validate(_ limit: RateLimit, _ scope: RateLimitScope) throws(RoutingError) {
        // Building a bucket validates the numbers.
        if let rpm = limit.requestsPerMinute { _ = try TokenBucket(limit: rpm, per: .seconds(60), now: .origin) }
        if let tpm = limit.tokensPerMinute { _ = try TokenBucket(limit: tpm, per: .seconds(60), now: .origin) }
        if let quota = limit.quota {
            guard quota.period >= .seconds(1), quota.period <= .seconds(100 * 366 * 86_400) else {
                throw RoutingError(.invalidConfiguration, "quota period of \(scope) must be between 1 s and 100 years")
            }
            if let max = quota.maxTokens, max <= 0 {
                throw RoutingError(.invalidConfiguration, "quota maxTokens of \(scope) must be positive")
            }
            if let max = quota.maxRequests, max <= 0 {
                throw RoutingError(.invalidConfiguration, "quota maxRequests of \(scope) must be positive")
            }
        }
    }

    private func limit(for scope: RateLimitScope) -> RateLimit? {
        switch scope {
        case .apiKey(let id): return keyLimits[id] ?? defaultKeyLimit
        case .model(let name): return modelLimits[name]
        }
    }

    private mutating func entry(_ scope: RateLimitScope, _ limit: RateLimit, now: RoutingInstant) -> Entry {
        if let existing = entries[scope] { return existing }
        // Limits were validated in init, so these cannot throw.
        let requests = limit.requestsPerMinute.flatMap { try? TokenBucket(limit: $0, per: .seconds(60), now: now) }
        let tokens = limit.tokensPerMinute.flatMap { try? TokenBucket(limit: $0, per: .seconds(60), now: now) }
        return Entry(limit: limit, requests: requests, tokens: tokens)
    }

    private func rollWindow(_ entry: inout Entry, now: RoutingInstant) -> Duration {
        guard let quota = entry.limit.quota else { return .zero }
        let periodMicros = max(1, TokenBucket.micros(quota.period))
        let offset = quota.alignment == .utc ? unixMicrosAtOrigin : 0
        let index = (offset + max(0, TokenBucket.micros(now.sinceOrigin))) / periodMicros
        if index != entry.windowIndex {
            entry.windowIndex = index
            entry.windowTokens = 0
            entry.windowRequests = 0
        }
        let end = RoutingInstant(.microseconds((index + 1) * periodMicros - offset))
        return end - now
    }

    /// Checks all limits for a request and charges them if it is admitted.
    public mutating func admit(apiKey: String?, model: String, estimatedTokens: Int, now: RoutingInstant) -> Decision {
        var scopes: [RateLimitScope] = []
        if let apiKey { scopes.append(.apiKey(apiKey)) }
        scopes.append(.model(model))
        var staged: [(RateLimitScope, Entry)] = []
        let estimate = Int64(min(max(0, estimatedTokens), 1 << 40))
        for scope in scopes {
            guard let limit = limit(for: scope) else { continue }
            var entry = entry(scope, limit, now: now)
            let resetIn = rollWindow(&entry, now: now)
            if let quota = limit.quota {
                if let max = quota.maxRequests, entry.windowRequests >= Int64(max) {
                    return .quotaExhausted(scope: scope, resetIn: resetIn, what: "\(max) requests per \(quota.period)")
                }
                if let max = quota.maxTokens, entry.windowTokens >= Int64(max) {
                    return .quotaExhausted(scope: scope, resetIn: resetIn, what: "\(max) tokens per \(quota.period)")
                }
            }
            if var bucket = entry.requests {
                let wait = bucket.timeUntil(tokens: 1, now: now)
                if wait > .zero {
                    return .rateLimited(scope: scope, retryAfter: wait, what: "\(bucket.limit) requests per minute")
                }
                entry.requests = bucket
            }
            if var bucket = entry.tokens {
                guard bucket.canEverHold(estimate) else {
                    return .tooLarge(scope: scope, tokens: Int(estimate), limit: Int(bucket.limit))
                }
                let wait: Duration
                switch admission {
                case .strict:
                    wait = bucket.timeUntil(tokens: estimate, now: now)
                case .optimistic:
                    // Admit while anything is left; the wait is exactly until something is left again.
                    wait = bucket.timeUntilPositive(now: now)
                }
                if wait > .zero {
                    return .rateLimited(scope: scope, retryAfter: wait, what: "\(bucket.limit) tokens per minute")
                }
                entry.tokens = bucket
            }
            staged.append((scope, entry))
        }
        // Every limit admits: charge them all.
        for (scope, var entry) in staged {
            entry.requests?.take(1, now: now)
            entry.tokens?.take(estimate, now: now)
            entry.windowRequests += 1
            entry.windowTokens += estimate
            entries[scope] = entry
        }
        return .admitted(Ticket(scopes: staged.map(\.0), chargedTokens: Int(estimate)))
    }

    /// Corrects the token charge of an admitted request with the tokens it really used.
    public mutating func reconcile(_ ticket: Ticket, actualTokens: Int, now: RoutingInstant) {
        let delta = Int64(min(max(0, actualTokens), 1 << 40)) - Int64(ticket.chargedTokens)
        guard delta != 0 else { return }
        for scope in ticket.scopes {
            guard var entry = entries[scope] else { continue }
            if var bucket = entry.tokens {
                if delta > 0 { bucket.take(delta, now: now) } else { bucket.give(-delta, now: now) }
                entry.tokens = bucket
            }
            _ = rollWindow(&entry, now: now)
            entry.windowTokens = max(0, entry.windowTokens + delta)
            entries[scope] = entry
        }
    }

    /// Tokens left this minute for a scope (nil when it has no tokens/min limit).
    public mutating func remainingTokens(_ scope: RateLimitScope, now: RoutingInstant) -> Int64? {
        guard var entry = entries[scope] else { return limit(for: scope)?.tokensPerMinute.map(Int64.init) }
        guard var bucket = entry.tokens else { return nil }
        let value = bucket.available(now: now)
        entry.tokens = bucket
        entries[scope] = entry
        return value
    }
}
