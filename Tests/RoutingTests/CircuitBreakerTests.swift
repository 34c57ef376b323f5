import Testing
@testable import Routing

private func at(_ s: Double) -> RoutingInstant { RoutingInstant(.seconds(double: s)) }

@Suite struct CircuitBreakerTests {
    static let countOnly = CircuitBreakerConfiguration(
        failureThreshold: 3, failureRateThreshold: nil, interval: .seconds(10), tripDuration: .seconds(30))

    @Test func tripsOnFailureCountWithinInterval() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        #expect(breaker.record(.failure(retryAfter: nil), probe: false, now: at(0)) == nil)
        #expect(breaker.record(.failure(retryAfter: nil), probe: false, now: at(1)) == nil)
        let transition = breaker.record(.failure(retryAfter: nil), probe: false, now: at(2))
        #expect(transition?.to == "open")
        #expect(transition?.openFor == .seconds(30))
        #expect(breaker.state == .open(until: at(32)))
        #expect(!breaker.wouldAllow(now: at(31.999)))
        #expect(breaker.wouldAllow(now: at(32)))
    }

    @Test func failuresOutsideTheIntervalDoNotCount() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        for t in [0.0, 10.5, 21.0, 31.5] {
            #expect(breaker.record(.failure(retryAfter: nil), probe: false, now: at(t)) == nil)
        }
        #expect(breaker.state == .closed)
    }

    @Test func tripsOnFailureRateOnlyWithMinimumRequests() {
        let config = CircuitBreakerConfiguration(failureThreshold: nil, failureRateThreshold: 0.5, minimumRequests: 4,
                                                 interval: .seconds(10), tripDuration: .seconds(5))
        var breaker = CircuitBreaker(configuration: config)
        _ = breaker.record(.success, probe: false, now: at(0))
        _ = breaker.record(.failure(retryAfter: nil), probe: false, now: at(1))
        _ = breaker.record(.success, probe: false, now: at(2))
        #expect(breaker.state == .closed)  // 1 of 3: below the minimum of 4 requests
        let transition = breaker.record(.failure(retryAfter: nil), probe: false, now: at(3))  // 2 of 4 = 50 %
        #expect(transition?.to == "open")
        #expect(breaker.state == .open(until: at(8)))
    }

    @Test func retryAfterOpensAtOnceForThatLong() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        let transition = breaker.record(.failure(retryAfter: .seconds(7)), probe: false, now: at(1))
        #expect(transition?.openFor == .seconds(7))
        #expect(breaker.state == .open(until: at(8)))
        // Bounded by maxRetryAfterTrip.
        var bounded = CircuitBreaker(configuration: CircuitBreakerConfiguration(maxRetryAfterTrip: .seconds(60)))
        _ = bounded.record(.failure(retryAfter: .seconds(3600)), probe: false, now: at(0))
        #expect(bounded.state == .open(until: at(60)))
    }

    @Test func halfOpenLimitsProbesAndClosesOnSuccess() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        _ = breaker.record(.failure(retryAfter: .seconds(5)), probe: false, now: at(0))
        let (early, _) = breaker.acquire(now: at(4))
        #expect(early == .rejected(retryIn: .seconds(1)))
        let (permit, transition) = breaker.acquire(now: at(5))
        #expect(permit == .probe)
        #expect(transition?.to == "half_open")
        let (second, _) = breaker.acquire(now: at(5))
        #expect(second == .rejected(retryIn: .zero))  // one probe at a time
        let closed = breaker.record(.success, probe: true, now: at(6))
        #expect(closed?.to == "closed")
        #expect(breaker.state == .closed)
    }

    @Test func failedProbeReopensForTheTripDuration() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        _ = breaker.record(.failure(retryAfter: .seconds(5)), probe: false, now: at(0))
        _ = breaker.acquire(now: at(5))
        let reopened = breaker.record(.failure(retryAfter: nil), probe: true, now: at(5.5))
        #expect(reopened?.from == "half_open")
        #expect(breaker.state == .open(until: at(35.5)))
    }

    @Test func needsConfiguredSuccessesToClose() {
        var config = Self.countOnly
        config.halfOpenProbes = 2
        config.successesToClose = 2
        var breaker = CircuitBreaker(configuration: config)
        _ = breaker.record(.failure(retryAfter: .seconds(1)), probe: false, now: at(0))
        #expect(breaker.acquire(now: at(1)).0 == .probe)
        #expect(breaker.acquire(now: at(1)).0 == .probe)
        #expect(breaker.acquire(now: at(1)).0 == .rejected(retryIn: .zero))
        #expect(breaker.record(.success, probe: true, now: at(1.1)) == nil)
        #expect(breaker.record(.success, probe: true, now: at(1.2))?.to == "closed")
    }

    @Test func lateOutcomesWhileOpenDoNotExtendTheTrip() {
        var breaker = CircuitBreaker(configuration: Self.countOnly)
        _ = breaker.record(.failure(retryAfter: .seconds(5)), probe: false, now: at(0))
        #expect(breaker.record(.failure(retryAfter: nil), probe: false, now: at(1)) == nil)
        #expect(breaker.state == .open(until: at(5)))
    }

    @Test func invalidConfigurationIsRejected() {
        #expect(throws: RoutingError.self) { try CircuitBreakerConfiguration(failureThreshold: 0).validate() }
        #expect(throws: RoutingError.self) { try CircuitBreakerConfiguration(failureRateThreshold: 1.5).validate() }
        #expect(throws: RoutingError.self) { try CircuitBreakerConfiguration(halfOpenProbes: 0).validate() }
    }
}

@Suite struct RetryPolicyTests {
    @Test func exponentialBackoffWithoutJitterIsExact() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(200), maxBackoff: .seconds(1), multiplier: 2, jitter: 0)
        var random = SplitMixGenerator(seed: 1)
        let waits = (1...5).map { policy.backoff(wait: $0, random: &random) }
        #expect(waits == [.milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    }

    @Test func jitterStaysInItsBand() {
        let policy = RetryPolicy(initialBackoff: .seconds(1), maxBackoff: .seconds(1), jitter: 0.5)
        var random = SplitMixGenerator(seed: 9)
        var seen: Set<Int64> = []
        for _ in 0..<500 {
            let wait = policy.backoff(wait: 1, random: &random)
            #expect(wait >= .milliseconds(500) && wait <= .seconds(1))
            seen.insert(Int64(wait.secondsDouble * 100))
        }
        #expect(seen.count > 20)  // it does vary
    }

    @Test func decisions() {
        var random = SplitMixGenerator(seed: 3)
        let policy = RetryPolicy(maxAttempts: 3, timeBudget: .seconds(10), attemptTimeout: .seconds(4),
                                 initialBackoff: .milliseconds(100), jitter: 0, maxRetryAfterWait: .seconds(5))
        var retry = RetryState(policy: policy, start: at(0))
        #expect(retry.beginAttempt(now: at(0)) == .some(.seconds(4)))
        // A 400 is about the request: never retried.
        #expect(retry.decide(after: .status(400), now: at(1), alternativeAvailable: true, availableIn: nil, random: &random)
            == .giveUp(.notRetryable))
        // Another backend is healthy: switch at once.
        #expect(retry.decide(after: .status(503), now: at(1), alternativeAvailable: true, availableIn: nil, random: &random)
            == .retryNow)
        // None: wait the larger of backoff and Retry-After.
        #expect(retry.decide(after: .status(429, retryAfter: .seconds(2)), now: at(1), alternativeAvailable: false,
                             availableIn: nil, random: &random) == .wait(.seconds(2)))
        #expect(retry.decide(after: .status(429, retryAfter: .seconds(9)), now: at(1), alternativeAvailable: false,
                             availableIn: nil, random: &random) == .giveUp(.retryAfterTooLong(.seconds(9))))
        // Attempt timeouts never pass the deadline.
        #expect(retry.beginAttempt(now: at(8)) == .some(.seconds(2)))
        #expect(retry.beginAttempt(now: at(9)) == .some(.seconds(1)))
        #expect(retry.beginAttempt(now: at(9.5)) == nil)  // 3 attempts used
        #expect(retry.decide(after: .status(500), now: at(9.6), alternativeAvailable: true, availableIn: nil, random: &random)
            == .giveUp(.attemptsExhausted))
        var late = RetryState(policy: policy, start: at(0))
        _ = late.beginAttempt(now: at(0))
        #expect(late.decide(after: UpstreamError(kind: .timeout), now: at(9.95), alternativeAvailable: false,
                            availableIn: nil, random: &random) == .giveUp(.budgetExhausted))
    }
}
