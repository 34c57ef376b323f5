import Testing
@testable import Routing

private let t0 = RoutingInstant.origin
private func at(_ d: Duration) -> RoutingInstant { RoutingInstant(d) }

@Suite struct TokenBucketTests {
    @Test func fullBucketGivesExactlyTheLimitThenTheExactWait() throws {
        var bucket = try TokenBucket(limit: 100, per: .seconds(60), now: t0)
        #expect(bucket.available(now: t0) == 100)
        #expect(bucket.timeUntil(tokens: 100, now: t0) == .zero)  // all 100 available: not one fewer
        bucket.take(100, now: t0)
        #expect(bucket.available(now: t0) == 0)
        // One token refills every 60 s / 100 = 600 ms exactly.
        #expect(bucket.timeUntil(tokens: 1, now: t0) == .milliseconds(600))
        #expect(bucket.available(now: at(.microseconds(599_999))) == 0)
        #expect(bucket.available(now: at(.milliseconds(600))) == 1)
        // A full window refills everything and never more than the limit.
        #expect(bucket.available(now: at(.seconds(600))) == 100)
    }

    @Test func debtIsRepaidBeforeAdmission() throws {
        var bucket = try TokenBucket(limit: 60, per: .seconds(60), now: t0)
        bucket.take(90, now: t0)  // 30 tokens of debt (usage reported above the estimate)
        #expect(bucket.available(now: t0) == -30)
        // Positive again after 30 tokens + 1 µs-token: 30 s at 1 token/s, plus the first microsecond.
        #expect(bucket.timeUntilPositive(now: t0) == .seconds(30) + .microseconds(1))
    }

    @Test func rejectsAbsurdConfiguration() {
        #expect(throws: RoutingError.self) { try TokenBucket(limit: 0, per: .seconds(60), now: t0) }
        #expect(throws: RoutingError.self) { try TokenBucket(limit: -5, per: .seconds(60), now: t0) }
        #expect(throws: RoutingError.self) { try TokenBucket(limit: 10, per: .zero, now: t0) }
        #expect(throws: RoutingError.self) { try RateLimiter(keyLimits: ["k": RateLimit(tokensPerMinute: 0)]) }
        #expect(throws: RoutingError.self) {
            try RateLimiter(defaultKeyLimit: RateLimit(quota: Quota(period: .seconds(3600), maxTokens: -1)))
        }
    }
}

@Suite struct RateLimiterTests {
    @Test func requestsPerMinuteBoundary() throws {
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(requestsPerMinute: 60)])
        for i in 0..<60 {
            guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: t0) else {
                Issue.record("request \(i + 1) of 60 refused early")
                return
            }
        }
        guard case .rateLimited(let scope, let retryAfter, _) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: t0)
        else { Issue.record("61st request admitted"); return }
        #expect(scope == .apiKey("k"))
        #expect(retryAfter == .seconds(1))  // 60/min → one request per second
        guard case .rateLimited = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: at(.seconds(1) - .microseconds(1)))
        else { Issue.record("admitted before Retry-After"); return }
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: at(.seconds(1))) else {
            Issue.record("refused at Retry-After"); return
        }
    }

    /// A key allowed N tokens/min is never refused while it has used fewer than N, whatever the
    /// estimate error; the Retry-After it gets is exactly when it is admitted again.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func tokensPerMinuteNeverLocksOutEarly(seed: UInt64) throws {
        let limit = 1000
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(tokensPerMinute: limit)])
        var random = SplitMixGenerator(seed: seed)
        var used = 0
        var refused = false
        for _ in 0..<200 {
            let estimate = Int(random.next() % 150) + 1
            let actual = max(0, estimate + Int(random.next() % 101) - 50)  // ±50 tokens of estimate error
            switch limiter.admit(apiKey: "k", model: "m", estimatedTokens: estimate, now: t0) {
            case .admitted(let ticket):
                #expect(!refused, "admitted after a refusal at the same instant")
                limiter.reconcile(ticket, actualTokens: actual, now: t0)
                used += actual
            case .rateLimited(_, let retryAfter, _):
                #expect(used >= limit, "refused after using only \(used) of \(limit) tokens")
                refused = true
                // The exact wait: the overdraft (used - limit) plus one micro-token, at limit/60 s per token.
                let overdraftMicroTokens = Int64(used - limit) * 60_000_000 + 1
                let expected = Duration.microseconds((overdraftMicroTokens + Int64(limit) - 1) / Int64(limit))
                #expect(retryAfter == expected)
                guard case .rateLimited = limiter.admit(apiKey: "k", model: "m", estimatedTokens: estimate,
                                                        now: at(retryAfter - .microseconds(1))) else {
                    Issue.record("admitted before Retry-After"); return
                }
                guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: estimate, now: at(retryAfter)) else {
                    Issue.record("refused at Retry-After"); return
                }
                return
            default:
                Issue.record("unexpected decision")
            }
        }
        Issue.record("never reached the limit")
    }

    @Test func strictAdmissionNeverChargesPastTheLimit() throws {
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(tokensPerMinute: 100)], admission: .strict)
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 70, now: t0) else { Issue.record(); return }
        // 30 left; 31 does not fit; wait for one more token = 60 s / 100 = 0.6 s.
        guard case .rateLimited(_, let wait, _) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 31, now: t0) else {
            Issue.record(); return
        }
        #expect(wait == .milliseconds(600))
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 30, now: t0) else { Issue.record(); return }
    }

    @Test func requestLargerThanTheLimitIsTooLarge() throws {
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(tokensPerMinute: 1000)])
        guard case .tooLarge(_, let tokens, let limit) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1001, now: t0)
        else { Issue.record(); return }
        #expect(tokens == 1001 && limit == 1000)
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1000, now: t0) else { Issue.record(); return }
    }

    @Test func modelLimitIsSharedAcrossKeysAndChargesAllOrNothing() throws {
        var limiter = try RateLimiter(keyLimits: ["a": RateLimit(requestsPerMinute: 10), "b": RateLimit(requestsPerMinute: 10)],
                                      modelLimits: ["m": RateLimit(tokensPerMinute: 100)])
        guard case .admitted = limiter.admit(apiKey: "a", model: "m", estimatedTokens: 100, now: t0) else { Issue.record(); return }
        guard case .rateLimited(let scope, _, _) = limiter.admit(apiKey: "b", model: "m", estimatedTokens: 10, now: t0) else {
            Issue.record(); return
        }
        #expect(scope == .model("m"))
        // The refusal by the model limit did not consume b's request budget: b still has all 10.
        for _ in 0..<10 {
            guard case .admitted = limiter.admit(apiKey: "b", model: "other", estimatedTokens: 1, now: t0) else {
                Issue.record("b lost requests to a refused admission"); return
            }
        }
    }

    @Test func quotaExhaustedThenResetsWithThePeriod() throws {
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(quota: Quota(period: .seconds(3600), maxRequests: 3))])
        for _ in 0..<3 {
            guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 5, now: at(.seconds(100))) else {
                Issue.record(); return
            }
        }
        guard case .quotaExhausted(_, let resetIn, _) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 5, now: at(.seconds(100)))
        else { Issue.record(); return }
        #expect(resetIn == .seconds(3500))  // period [0, 3600) s, now 100 s
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 5, now: at(.seconds(3600))) else {
            Issue.record("quota did not reset"); return
        }
    }

    @Test func tokenQuotaCountsReconciledUsage() throws {
        var limiter = try RateLimiter(keyLimits: ["k": RateLimit(quota: Quota(period: .seconds(86_400), maxTokens: 100))])
        guard case .admitted(let ticket) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 10, now: t0) else {
            Issue.record(); return
        }
        limiter.reconcile(ticket, actualTokens: 100, now: t0)  // the answer was long
        guard case .quotaExhausted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: t0) else {
            Issue.record("quota ignores reported usage"); return
        }
    }
}

@Suite struct CalendarQuotaTests {
    /// 1,800,000,000 s since 1970 = 20,833 days + 28,800 s, i.e. 08:00:00 UTC (28,800 s = 8 h):
    /// a UTC-aligned day quota resets 16 h (57,600 s) after the origin, not 24 h.
    @Test func utcDayQuotaResetsAtMidnightUTC() throws {
        var limiter = try RateLimiter(
            keyLimits: ["k": RateLimit(quota: Quota(period: .seconds(86_400), maxRequests: 2, alignment: .utc))],
            unixTimeAtOrigin: 1_800_000_000)
        for _ in 0..<2 {
            guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: .origin) else {
                Issue.record(); return
            }
        }
        guard case .quotaExhausted(_, let resetIn, _) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: .origin)
        else { Issue.record("third request admitted"); return }
        #expect(resetIn == .seconds(57_600))
        let midnight = RoutingInstant(.seconds(57_600))
        guard case .quotaExhausted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: midnight - .microseconds(1))
        else { Issue.record("reset before midnight UTC"); return }
        guard case .admitted = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: midnight) else {
            Issue.record("not reset at midnight UTC"); return
        }
    }

    /// The default alignment still counts from the clock's origin (24 h, whatever the wall clock).
    @Test func clockOriginAlignmentIgnoresTheWallClock() throws {
        var limiter = try RateLimiter(
            keyLimits: ["k": RateLimit(quota: Quota(period: .seconds(86_400), maxRequests: 1))],
            unixTimeAtOrigin: 1_800_000_000)
        _ = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: .origin)
        guard case .quotaExhausted(_, let resetIn, _) = limiter.admit(apiKey: "k", model: "m", estimatedTokens: 1, now: .origin)
        else { Issue.record(); return }
        #expect(resetIn == .seconds(86_400))
        #expect(throws: RoutingError.self) { try RateLimiter(unixTimeAtOrigin: .nan) }
        #expect(throws: RoutingError.self) {
            try RateLimiter(defaultKeyLimit: RateLimit(quota: Quota(period: .seconds(Int64.max / 2), maxRequests: 1)))
        }
    }
}
