import Logging
import Testing

@testable import GatewayServer

@Suite struct LoadGeneratorTests {
    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    @Test func closedLoopCountsEveryRequestAndErrorCategory() async throws {
        // Script: ok, 429, ok, 503 → of 40 requests, 10 are 429s and 10 are 503s.
        let mock = try MockUpstream(
            configuration: .init(completionTokens: 3, faults: .init(script: [.none, .rateLimited, .none, .unavailable])),
            logger: Self.quiet
        )
        let port = try await mock.start()
        let generator = try LoadGenerator(configuration: .init(
            url: "http://127.0.0.1:\(port)", pacing: .concurrency(4), requestCount: 40
        ))
        let report = try await generator.run()
        await mock.stop()
        #expect(report.requests == 40)
        #expect(report.succeeded == 20)
        #expect(report.errors == ["http_429": 10, "http_503": 10])
        #expect(report.totalOutputTokens == 60)
        #expect(report.endToEnd?.count == 20)
        #expect(mock.statistics.requests == 40)
    }

    @Test func streamingMeasuresTTFTAndInterTokenGaps() async throws {
        // 6 tokens, 30 ms before the first, 10 ms between the others:
        // TTFT ≥ 30 ms and E2E ≥ 80 ms (sleeps never end early). Client-side gaps have no lower
        // bound (a late read coalesces chunks, giving gaps of ~0), but per request the gaps sum to
        // (last content chunk − first) ≤ (E2E − TTFT), so mean TPOT ≥ mean ITL when every request
        // has the same token count; and there are exactly tokens − 1 gaps per request.
        let mock = try MockUpstream(
            configuration: .init(firstTokenLatency: .milliseconds(30), interTokenLatency: .milliseconds(10), completionTokens: 6),
            logger: Self.quiet
        )
        let port = try await mock.start()
        let generator = try LoadGenerator(configuration: .init(
            url: "http://127.0.0.1:\(port)/v1", stream: true, pacing: .concurrency(2), requestCount: 4
        ))
        let report = try await generator.run()
        await mock.stop()
        #expect(report.succeeded == 4)
        #expect(report.totalOutputTokens == 24)
        let ttft = try #require(report.timeToFirstToken)
        let itl = try #require(report.interTokenLatency)
        let tpot = try #require(report.timePerOutputToken)
        #expect(ttft.count == 4 && ttft.min >= 0.030)
        #expect(itl.count == 20)
        #expect(tpot.count == 4)
        #expect(tpot.mean >= itl.mean - 1e-9)
        #expect(report.endToEnd!.min >= 0.080)
        // Every request has TPOT = (E2E − TTFT)/5 ≥ (min E2E − max TTFT)/5.
        #expect(tpot.min >= (report.endToEnd!.min - ttft.max) / 5 - 1e-9)
    }

    @Test func openLoopRateSpacesRequestStarts() async throws {
        // 20 requests at 200/s: the last starts 19 × 5 ms = 95 ms after the first.
        let mock = try MockUpstream(configuration: .init(completionTokens: 1), logger: Self.quiet)
        let port = try await mock.start()
        let generator = try LoadGenerator(configuration: .init(
            url: "http://127.0.0.1:\(port)", pacing: .rate(perSecond: 200, maximumInFlight: 8), requestCount: 20
        ))
        let report = try await generator.run()
        await mock.stop()
        #expect(report.succeeded == 20)
        #expect(report.wallSeconds >= 0.095)
    }

    @Test func durationBoundsTheRunAndRefusedConnectionsAreCounted() async throws {
        // Nothing listens on the port of a stopped mock: every request is a connection error.
        let mock = try MockUpstream(configuration: .init(), logger: Self.quiet)
        let port = try await mock.start()
        await mock.stop()
        let generator = try LoadGenerator(configuration: .init(
            url: "http://127.0.0.1:\(port)", pacing: .concurrency(1), duration: .milliseconds(200)
        ))
        let start = ContinuousClock.now
        let report = try await generator.run()
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(report.requests > 0 && report.succeeded == 0)
        #expect(report.errors.keys.allSatisfy { $0 == "connection" || $0 == "client_error" || $0 == "connection_closed" })
    }

    @Test func interleavedRunsAlternateTargets() async throws {
        // Target b is 5 ms slower per request; interleaving sends exactly rounds + warm-up to each.
        let a = try MockUpstream(configuration: .init(completionTokens: 1), logger: Self.quiet)
        let b = try MockUpstream(configuration: .init(firstTokenLatency: .milliseconds(5), completionTokens: 1), logger: Self.quiet)
        let pa = try await a.start()
        let pb = try await b.start()
        let targets = try [pa, pb].map { try LoadGenerator(configuration: .init(url: "http://127.0.0.1:\($0)", requestCount: 1)) }
        let reports = try await LoadGenerator.interleaved(targets, rounds: 20, warmupRounds: 3)
        let (sa, sb) = (a.statistics, b.statistics)
        await a.stop()
        await b.stop()
        #expect(reports.map(\.succeeded) == [20, 20])
        #expect(sa.requests == 23 && sb.requests == 23)
        // b's sleep bounds every one of its latencies from below (a comparison of the two medians
        // would not be robust while other tests load the machine).
        #expect(reports[1].endToEnd!.min >= 0.005)
    }

    @Test func unboundedOrAbsurdRunsAreRejected() {
        #expect(throws: GatewayError.self) { try LoadGenerator(configuration: .init(url: "http://127.0.0.1:1")) }
        #expect(throws: GatewayError.self) { try LoadGenerator(configuration: .init(url: "ftp://x", requestCount: 1)) }
        #expect(throws: GatewayError.self) { try LoadGenerator(configuration: .init(url: "http://x", pacing: .concurrency(0), requestCount: 1)) }
        #expect(throws: GatewayError.self) {
            try LoadGenerator(configuration: .init(url: "http://x", pacing: .rate(perSecond: -1, maximumInFlight: 1), requestCount: 1))
        }
        #expect(throws: GatewayError.self) { try LoadGenerator(configuration: .init(url: "http://x", requestCount: 0)) }
        let c = LoadTestConfiguration(url: "http://h:1/v1/", requestCount: 1)
        #expect(c.chatCompletionsURL == "http://h:1/v1/chat/completions")
        #expect(LoadTestConfiguration(url: "http://h:1", requestCount: 1).chatCompletionsURL == "http://h:1/v1/chat/completions")
    }
}
