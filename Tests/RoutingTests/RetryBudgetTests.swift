import Synchronization
import Testing
@testable import Routing

@Suite struct RetryBudgetTests {
    private func at(_ d: Duration) -> RoutingInstant { RoutingInstant(d) }

    @Test func burstThenRatioOfRequests() throws {
        var budget = try RetryBudget(ratio: 0.25, minRetriesPerSecond: 0, burst: 3)
        for _ in 0..<3 { do { let r = budget.withdraw(now: .origin); #expect(r) } }  // the whole burst, not one fewer
        do { let r = budget.withdraw(now: .origin); #expect(!r) }
        // 0.25 retry per request: 3 requests are not enough for a retry, the 4th is.
        for _ in 0..<3 { budget.deposit(now: .origin) }
        do { let r = budget.withdraw(now: .origin); #expect(!r) }
        budget.deposit(now: .origin)
        do { let r = budget.withdraw(now: .origin); #expect(r) }
        do { let r = budget.withdraw(now: .origin); #expect(!r) }
        // No time-based refill with a zero floor.
        do { let r = budget.available(now: at(.seconds(3600))); #expect(r == 0) }
        // Deposits never save up past the burst.
        for _ in 0..<1000 { budget.deposit(now: .origin) }
        do { let r = budget.available(now: .origin); #expect(r == 3) }
    }

    /// A floor of 2 retries/s refills one retry every 500 ms exactly, and never more in total.
    @Test func floorRefillsExactly() throws {
        var budget = try RetryBudget(ratio: 0, minRetriesPerSecond: 2, burst: 1)
        do { let r = budget.withdraw(now: .origin); #expect(r) }
        do { let r = budget.withdraw(now: at(.microseconds(499_999))); #expect(!r) }
        do { let r = budget.withdraw(now: at(.milliseconds(500))); #expect(r) }
        // Many small steps give the same as one big one (remainders are carried, never rounded up).
        var granted = 0
        var t = Duration.milliseconds(500)
        for _ in 0..<10_000 {
            t += .microseconds(333)
            if budget.withdraw(now: at(t)) { granted += 1 }
        }
        // 3.33 s elapsed at 2/s = 6.66 → 6 retries.
        #expect(granted == 6)
    }

    @Test func rejectsAbsurdSettings() {
        #expect(throws: RoutingError.self) { try RetryBudget(ratio: -0.1) }
        #expect(throws: RoutingError.self) { try RetryBudget(ratio: .nan) }
        #expect(throws: RoutingError.self) { try RetryBudget(minRetriesPerSecond: .infinity) }
        #expect(throws: RoutingError.self) { try RetryBudget(burst: 0) }
    }

    /// Every upstream fails with a retryable 503: with a budget, upstream attempts stay within
    /// requests × (1 + ratio) + burst; without one (the control) each request makes all 4 attempts.
    @Test(arguments: [true, false])
    func budgetStopsARetryStorm(withBudget: Bool) async throws {
        let clock = ManualClock()
        final class Failing: Upstream {
            let calls = Mutex(0)
            func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse {
                calls.withLock { $0 += 1 }
                throw UpstreamError.status(503)
            }
            func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext) -> AsyncThrowingStream<ChatCompletionChunk, any Error> {
                AsyncThrowingStream { $0.finish(throwing: UpstreamError.status(503)) }
            }
        }
        let failing = Failing()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b")])],
                retry: RetryPolicy(maxAttempts: 4, timeBudget: .seconds(60), initialBackoff: .milliseconds(10), jitter: 0),
                breaker: CircuitBreakerConfiguration(failureThreshold: nil, failureRateThreshold: nil),
                retryBudget: withBudget ? RetryBudgetConfiguration(ratio: 0.1, minRetriesPerSecond: 0, burst: 5) : nil),
            upstreams: ["a": failing, "b": failing], clock: clock)
        let requests = 200
        for i in 0..<requests {
            let error = await routingError { _ = try await gateway.complete(ask("q\(i)")) }
            #expect(error?.code == .noHealthyBackend || error?.code == .upstreamFailed)
        }
        let attempts = failing.calls.withLock { $0 }
        if withBudget {
            // 200 first attempts + 5 (burst) + 200 × 0.1 retries.
            #expect(attempts <= requests + 5 + requests / 10, "\(attempts) attempts")
            #expect(attempts >= requests + 5 + requests / 10 - 1, "budget under-used: \(attempts) attempts")
        } else {
            #expect(attempts == requests * 4)
        }
    }
}
