import Testing
@testable import Routing

private let t0 = RoutingInstant.origin

/// Leases and immediately completes `n` requests, returning the chosen backend ids.
private func picks(_ pool: inout BackendPool, _ n: Int, now: RoutingInstant = t0) -> [String] {
    (0..<n).compactMap { _ in
        guard let (lease, _) = pool.lease(now: now) else { return nil }
        pool.complete(lease, outcome: .success, latency: nil, now: now)
        return lease.backendID
    }
}

private func take(_ pool: inout BackendPool, excluding: Set<Int> = []) throws -> BackendPool.Lease {
    let leased = pool.lease(now: t0, excluding: excluding)
    return try #require(leased).0
}

@Suite struct BackendPoolTests {
    @Test func roundRobinTakesTurns() throws {
        var pool = try BackendPool(backends: ["a", "b", "c"].map { Backend(id: $0) }, strategy: .roundRobin)
        #expect(picks(&pool, 7) == ["a", "b", "c", "a", "b", "c", "a"])
    }

    @Test func weightedIsSmoothAndProportional() throws {
        var pool = try BackendPool(
            backends: [Backend(id: "a", weight: 5), Backend(id: "b", weight: 1), Backend(id: "c", weight: 1)],
            strategy: .weighted)
        // Smooth weighted round-robin (as in nginx) spreads a 5:1:1 split as a a b a c a a.
        #expect(picks(&pool, 7) == ["a", "a", "b", "a", "c", "a", "a"])
        let many = picks(&pool, 700)
        #expect(many.filter { $0 == "a" }.count == 500)
        #expect(many.filter { $0 == "b" }.count == 100)
    }

    @Test func leastOutstandingAvoidsBusyBackends() throws {
        var pool = try BackendPool(backends: ["a", "b", "c"].map { Backend(id: $0) }, strategy: .leastOutstanding)
        let first = try take(&pool)
        let second = try take(&pool)
        let third = try take(&pool)
        #expect(Set([first.backendID, second.backendID, third.backendID]) == ["a", "b", "c"])
        pool.complete(second, outcome: .success, latency: nil, now: t0)
        #expect(try take(&pool).backendID == second.backendID)
    }

    @Test func latencyAwareMeasuresThenPrefersTheFastest() throws {
        var pool = try BackendPool(backends: ["slow", "fast", "new"].map { Backend(id: $0) }, strategy: .latencyAware(alpha: 0.5))
        func run(_ id: String, _ ms: Int64) throws {
            let lease = try take(&pool)
            #expect(lease.backendID == id)
            pool.complete(lease, outcome: .success, latency: .milliseconds(ms), now: t0)
        }
        try run("slow", 100)  // unmeasured backends count as 0 s: each gets measured in turn
        try run("fast", 10)
        try run("new", 50)
        try run("fast", 30)  // EWMA fast = 0.5·30 + 0.5·10 = 20 ms, still the lowest
        try run("fast", 90)  // EWMA fast = 0.5·90 + 0.5·20 = 55 ms > new's 50 ms
        try run("new", 50)
    }

    @Test func costAwarePrefersCheapThenLeastLoaded() throws {
        var pool = try BackendPool(backends: [
            Backend(id: "payg", pricing: TokenPricing(inputPerMillion: 2.5, outputPerMillion: 10)),
            Backend(id: "cheap", maxConcurrentRequests: 1, pricing: TokenPricing(inputPerMillion: 0.15, outputPerMillion: 0.6)),
            Backend(id: "cheap2", maxConcurrentRequests: 1, pricing: TokenPricing(inputPerMillion: 0.15, outputPerMillion: 0.6)),
        ], strategy: .costAware)
        let a = try take(&pool)
        let b = try take(&pool)
        let c = try take(&pool)
        #expect(Set([a.backendID, b.backendID]) == ["cheap", "cheap2"])
        #expect(c.backendID == "payg")  // the cheap ones are saturated
    }

    @Test func priorityGroupsOverflowWhenSaturatedOrExcluded() throws {
        var pool = try BackendPool(backends: [
            Backend(id: "ptu-east", priority: 0, maxConcurrentRequests: 1),
            Backend(id: "ptu-west", priority: 0, maxConcurrentRequests: 1),
            Backend(id: "payg", priority: 1),
        ])
        let first = try take(&pool)
        let second = try take(&pool)
        #expect(Set([first.backendID, second.backendID]) == ["ptu-east", "ptu-west"])
        #expect(try take(&pool).backendID == "payg")
        pool.complete(first, outcome: .success, latency: nil, now: t0)
        #expect(try take(&pool).backendID == first.backendID)  // back to the primary group
        // A 429 on a PTU (excluded for this request) overflows to the next group.
        #expect(try take(&pool, excluding: [0, 1]).backendID == "payg")
    }

    @Test func openBreakerTakesABackendOut() throws {
        var pool = try BackendPool(backends: ["a", "b"].map { Backend(id: $0) })
        let lease = try take(&pool)
        #expect(lease.backendID == "a")
        let transition = pool.complete(lease, outcome: .failure(retryAfter: .seconds(5)), latency: nil, now: t0)
        #expect(transition?.to == "open")
        #expect(picks(&pool, 3) == ["b", "b", "b"])
        #expect(pool.nextAvailableIn(now: t0) == .seconds(5))
        #expect(picks(&pool, 1, now: RoutingInstant(.seconds(5))) == ["a"])  // half-open probe, closes on success
    }

    @Test func rejectsBadPools() {
        #expect(throws: RoutingError.self) { try BackendPool(backends: []) }
        #expect(throws: RoutingError.self) { try BackendPool(backends: [Backend(id: "a"), Backend(id: "a")]) }
        #expect(throws: RoutingError.self) { try BackendPool(backends: [Backend(id: "a", weight: 0)]) }
        #expect(throws: RoutingError.self) { try BackendPool(backends: [Backend(id: "a")], strategy: .latencyAware(alpha: 0)) }
    }
}
