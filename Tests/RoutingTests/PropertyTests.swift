import Synchronization
import Testing
@testable import Routing

/// Seeded fault injection over thousands of requests through in-memory upstreams on a manual clock.
@Suite struct GatewayPropertyTests {
    static let breaker = CircuitBreakerConfiguration(
        failureThreshold: 3, failureRateThreshold: 0.5, minimumRequests: 6, interval: .seconds(10),
        tripDuration: .seconds(5), honourRetryAfter: true, maxRetryAfterTrip: .seconds(4), halfOpenProbes: 1, successesToClose: 1)
    static let retry = RetryPolicy(maxAttempts: 4, timeBudget: .seconds(8), attemptTimeout: .seconds(2),
                                   initialBackoff: .milliseconds(100), maxBackoff: .seconds(1), jitter: 0.5,
                                   maxRetryAfterWait: .seconds(3))

    /// A deterministic random action per (seed, backend, call).
    static func faulty(_ backend: String, seed: UInt64, clientErrors: Bool) -> @Sendable (Int, ChatCompletionRequest) -> InMemoryUpstream.Action {
        let salt = StableHash.of(backend)
        return { call, _ in
            var random = SplitMixGenerator(seed: seed ^ salt ^ (UInt64(call) &* 0x9E37_79B9_7F4A_7C15))
            let latency = Duration.milliseconds(Int64(5 + random.next() % 400))
            switch random.next() % 100 {
            case 0..<55: return .reply(text: "ok from \(backend)", latency: latency)
            case 55..<65:
                let wait: Duration? = random.next() % 2 == 0 ? .milliseconds(Int64(random.next() % 3000)) : nil
                return .fail(.status(429, retryAfter: wait), latency: latency)
            case 65..<75: return .fail(.status(500), latency: latency)
            case 75..<85: return .fail(.status(503, retryAfter: random.next() % 3 == 0 ? .seconds(1) : nil), latency: latency)
            case 85..<90: return .hang
            case 90..<95: return .fail(UpstreamError(kind: .connectionFailed), latency: .milliseconds(1))
            default: return clientErrors ? .fail(.status(400), latency: latency) : .reply(text: "ok from \(backend)", latency: latency)
            }
        }
    }

    final class EventLog: Sendable {
        private let events = Mutex<[GatewayEvent]>([])
        func append(_ event: GatewayEvent) { events.withLock { $0.append(event) } }
        func withLock<R>(_ body: ([GatewayEvent]) -> R) -> R { events.withLock { body($0) } }
    }

    struct Run {
        let clock = ManualClock()
        let events = EventLog()
        let gateway: Gateway

        init(seed: UInt64, healthyBackup: Bool) throws {
            var upstreams: [String: any Upstream] = [:]
            for id in ["ptu-east", "ptu-west", "payg", "small"] {
                upstreams[id] = InMemoryUpstream(id: id, clock: clock, script: faulty(id, seed: seed, clientErrors: !healthyBackup))
            }
            var models = [
                ModelRoute(name: "large", backends: [Backend(id: "ptu-east", priority: 0), Backend(id: "ptu-west", priority: 0),
                                                     Backend(id: "payg", priority: 1)], fallbacks: ["small"]),
                ModelRoute(name: "small", backends: [Backend(id: "small")]),
            ]
            if healthyBackup {
                upstreams["backup"] = InMemoryUpstream(id: "backup", clock: clock, replying: "ok from backup", latency: .milliseconds(20))
                models[0].backends.append(Backend(id: "backup", priority: 2))
            }
            var policy = retry
            if healthyBackup { policy.maxAttempts = 6 }
            let events = self.events
            gateway = try Gateway(
                configuration: GatewayConfiguration(models: models, retry: policy, breaker: breaker),
                upstreams: upstreams, clock: clock, seed: seed,
                observer: { event in events.append(event) })
        }
    }

    @Test(arguments: [11, 22, 33] as [UInt64])
    func everyRequestAnsweredOnceWithinBudgetAndBreakersFollowTheirRules(seed: UInt64) async throws {
        let run = try Run(seed: seed, healthyBackup: false)
        var arrivals = SplitMixGenerator(seed: seed)
        var outcomes: [String: Result<String, RoutingError>] = [:]
        var successes = 0
        for i in 0..<1000 {
            run.clock.advance(by: .milliseconds(Int64(arrivals.next() % 60)))
            let start = run.clock.now
            let id = "r\(i)"
            do {
                let result = try await run.gateway.complete(ask("question \(i)", model: "large"), requestID: id)
                #expect(result.requestID == id)
                #expect(result.response.text == "ok from \(result.backendID ?? "?")")
                outcomes[id] = .success(result.backendID ?? "")
                successes += 1
            } catch {
                #expect(error.requestID == id)
                #expect(error.code != .internalError)
                outcomes[id] = .failure(error)
            }
            // Never past the time budget (virtual time: latencies, timeouts and backoffs all count).
            #expect(run.clock.now - start <= Self.retry.timeBudget)
        }
        let events = run.events.withLock { $0 }
        // Exactly one answer per request, matching what the caller got.
        var answered: [String: Int] = [:]
        var attempts: [String: Int] = [:]
        for event in events {
            switch event {
            case .answered(let id, let error, _):
                answered[id, default: 0] += 1
                if case .failure(let expected)? = outcomes[id] { #expect(error == expected) }
                if case .success? = outcomes[id] { #expect(error == nil) }
            case .attemptStarted(let id, _, _, _, _, _): attempts[id, default: 0] += 1
            default: break
            }
        }
        #expect(answered.count == 1000)
        #expect(answered.values.allSatisfy { $0 == 1 })
        #expect(attempts.values.allSatisfy { $0 <= Self.retry.maxAttempts })
        var codes: [String: Int] = [:]
        for case .failure(let error) in outcomes.values { codes[error.code.rawValue, default: 0] += 1 }
        // A sanity floor, not a tuned number: most requests must get through 45 % faults per attempt.
        #expect(successes > 500, "success rate \(successes)/1000; failures \(codes)")
        try Self.checkBreakers(events)
        #expect(run.gateway.health().allSatisfy { $0.outstanding == 0 })
    }

    /// With one healthy backend always available (lowest priority), no request is lost.
    @Test(arguments: [5, 6] as [UInt64])
    func healthyBackupMeansNoFailures(seed: UInt64) async throws {
        let run = try Run(seed: seed, healthyBackup: true)
        var failures: [RoutingError] = []
        for i in 0..<1000 {
            run.clock.advance(by: .milliseconds(10))
            do { _ = try await run.gateway.complete(ask("q\(i)", model: "large")) } catch { failures.append(error) }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        try Self.checkBreakers(run.events.withLock { $0 })
    }

    /// Concurrent requests: still exactly one answer each and no leaked leases.
    @Test func concurrentRequestsAreAnsweredExactlyOnce() async throws {
        let run = try Run(seed: 99, healthyBackup: false)
        let gateway = run.gateway
        let results = await withTaskGroup(of: (String, Bool).self) { group in
            for i in 0..<400 {
                group.addTask {
                    do {
                        _ = try await gateway.complete(ask("q\(i)", model: "large"), requestID: "c\(i)")
                        return ("c\(i)", true)
                    } catch let error as RoutingError {
                        return (error.requestID ?? "missing", false)
                    } catch {
                        return ("untyped", false)
                    }
                }
            }
            var out: [String] = []
            for await (id, _) in group { out.append(id) }
            return out
        }
        #expect(Set(results).count == 400)
        let answered = run.events.withLock { events in
            events.compactMap { if case .answered(let id, _, _) = $0 { return id } else { return nil } }
        }
        #expect(answered.count == 400 && Set(answered).count == 400)
        #expect(gateway.health().allSatisfy { $0.outstanding == 0 })
    }

    /// Replays the event log against the breaker rules (an independent model of the configuration).
    static func checkBreakers(_ events: [GatewayEvent]) throws {
        enum S { case closed, open(until: RoutingInstant), halfOpen }
        var state: [String: S] = [:]
        var window: [String: [(RoutingInstant, Bool)]] = [:]
        var lastFinish: [String: UpstreamError?] = [:]
        var expectedTrips: [String] = []
        var actualTrips: [String] = []
        var index = 0
        func countsAsFailure(_ e: UpstreamError?) -> Bool? {  // nil: ignored
            guard let e else { return false }
            switch e.kind {
            case .cancelled: return nil
            case .status(let c): return c == 429 || c == 408 || c >= 500
            default: return true
            }
        }
        for event in events {
            index += 1
            switch event {
            case .attemptStarted(_, _, let b, _, let t, _):
                switch state[b] ?? .closed {
                case .open(let until): Issue.record("attempt on \(b) at \(t) while open until \(until)")
                default: break
                }
            case .attemptFinished(_, let b, let error, let t):
                lastFinish[b] = .some(error)
                guard case .closed = state[b] ?? .closed, let failed = countsAsFailure(error) else { continue }
                if failed, let wait = error?.retryAfter, wait > .zero {
                    expectedTrips.append("\(b)@\(t)")
                    continue
                }
                var w = window[b] ?? []
                w.append((t, failed))
                w.removeAll { $0.0 <= t - breaker.interval }
                window[b] = w
                let failures = w.filter(\.1).count
                if failed, failures >= 3 || (w.count >= 6 && Double(failures) >= 0.5 * Double(w.count)) {
                    expectedTrips.append("\(b)@\(t)")
                }
            case .breakerTransition(let b, let tr):
                switch (tr.from, tr.to) {
                case ("closed", "open"):
                    actualTrips.append("\(b)@\(tr.at)")
                    let error = try #require(lastFinish[b] ?? nil, "trip of \(b) without a failure")
                    let expected = error.retryAfter.map { $0 > .zero ? min($0, breaker.maxRetryAfterTrip) : breaker.tripDuration }
                        ?? breaker.tripDuration
                    #expect(tr.openFor == expected)
                    state[b] = .open(until: tr.at + (tr.openFor ?? .zero))
                    window[b] = []
                case ("open", "half_open"):
                    guard case .open(let until) = state[b] ?? .closed else { Issue.record("half-open from not open"); continue }
                    #expect(tr.at >= until)
                    state[b] = .halfOpen
                case ("half_open", "closed"):
                    #expect(countsAsFailure(lastFinish[b] ?? nil) == false)
                    state[b] = .closed
                    window[b] = []
                case ("half_open", "open"):
                    let error = try #require(lastFinish[b] ?? nil)
                    #expect(countsAsFailure(error) == true)
                    let expected = error.retryAfter.map { $0 > .zero ? min($0, breaker.maxRetryAfterTrip) : breaker.tripDuration }
                        ?? breaker.tripDuration
                    #expect(tr.openFor == expected)
                    state[b] = .open(until: tr.at + (tr.openFor ?? .zero))
                default:
                    Issue.record("unexpected transition \(tr.from) → \(tr.to)")
                }
            default: break
            }
        }
        let mismatch = zip(expectedTrips, actualTrips).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(mismatch == nil, "first difference at trip \(mismatch?.offset ?? 0): expected \(mismatch?.element.0 ?? ""), got \(mismatch?.element.1 ?? "")")
        #expect(expectedTrips.count == actualTrips.count)
        #expect(actualTrips.count > 3, "the run should exercise the breakers")
    }
}

/// Streams under random faults: every stream ends exactly once (completed or with a typed error
/// carrying its request id), and no lease leaks.
@Suite struct StreamingPropertyTests {
    @Test func everyStreamEndsOnceAndReleasesItsBackend() async throws {
        let clock = ManualClock()
        var upstreams: [String: any Upstream] = [:]
        for id in ["s1", "s2", "s3"] {
            let salt = StableHash.of(id)
            upstreams[id] = InMemoryUpstream(id: id, clock: clock) { call, _ in
                var random = SplitMixGenerator(seed: 77 ^ salt ^ UInt64(call))
                switch random.next() % 10 {
                case 0, 1: return .fail(.status(503), latency: .milliseconds(5))
                case 2: return .dropAfter(chunks: Int(random.next() % 3), text: "one two three four", latency: .milliseconds(5))
                case 3: return .hang
                default: return .reply(text: "one two three four", latency: .milliseconds(Int64(random.next() % 50)))
                }
            }
        }
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "m", backends: [Backend(id: "s1"), Backend(id: "s2"), Backend(id: "s3")])],
                retry: RetryPolicy(maxAttempts: 3, timeBudget: .seconds(5), attemptTimeout: .seconds(1)),
                breaker: CircuitBreakerConfiguration(failureThreshold: nil, failureRateThreshold: nil)),
            upstreams: upstreams, clock: clock)
        var completed = 0, broken = 0, refused = 0
        for i in 0..<300 {
            let id = "s\(i)"
            var request = ask("q\(i)", model: "m")
            request.stream = true
            do {
                let stream = try await gateway.stream(request, requestID: id)
                var text = ""
                do {
                    for try await chunk in stream.chunks { text += chunk.choices.compactMap(\.delta.content).joined() }
                    #expect(text == "one two three four")
                    completed += 1
                } catch let error as RoutingError {
                    #expect(error.requestID == id && error.code == .upstreamFailed)
                    #expect("one two three four".hasPrefix(text))
                    broken += 1
                }
            } catch let error as RoutingError {
                #expect(error.requestID == id)
                refused += 1
            } catch {
                Issue.record("untyped error \(error)")
            }
        }
        #expect(completed + broken + refused == 300)
        #expect(completed > 200 && broken > 0)
        #expect(gateway.health().allSatisfy { $0.outstanding == 0 })
    }
}
