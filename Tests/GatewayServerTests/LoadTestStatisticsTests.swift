import Testing

@testable import GatewayServer

@Suite struct LoadTestStatisticsTests {
    @Test func percentilesInterpolateLikeNumPy() {
        // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) = [2.5, 3.7, 3.97]:
        // rank = p/100 * (n-1): 1.5 → 2 + 0.5·1; 2.7 → 3 + 0.7·1; 2.97 → 3 + 0.97·1.
        let s = LatencyStatistics(samples: [4, 1, 3, 2])!
        #expect(s.p50 == 2.5)
        #expect(abs(s.p90 - 3.7) < 1e-12)
        #expect(abs(s.p99 - 3.97) < 1e-12)
        #expect(s.min == 1 && s.max == 4 && s.mean == 2.5 && s.count == 4)
        #expect(LatencyStatistics(samples: []) == nil)
        #expect(LatencyStatistics(samples: [.nan, 5])!.count == 1)
    }

    @Test func percentileOfUniformGridMatchesRank() {
        // 0, 1, …, 1000: the p-th percentile is exactly 10·p.
        let sorted = (0...1000).map(Double.init)
        for p in [0.0, 1, 50, 90, 95, 99, 100] {
            #expect(abs(LatencyStatistics.percentile(sorted: sorted, p) - 10 * p) < 1e-9)
        }
    }

    @Test func reportFollowsTheServingMetricDefinitions() {
        // Request A: TTFT 0.1 s, E2E 0.5 s, 5 tokens → TPOT (0.5 − 0.1)/(5 − 1) = 0.1 s; gaps 0.1 ×4.
        // Request B: TTFT 0.2 s, E2E 0.2 s, 1 token → no TPOT (needs ≥ 2 tokens).
        // Request C: failed with http_429 → excluded from latencies, counted in errors.
        let a = RequestMeasurement(endToEnd: 0.5, timeToFirstToken: 0.1, interTokenLatencies: [0.1, 0.1, 0.1, 0.1], outputTokens: 5)
        let b = RequestMeasurement(endToEnd: 0.2, timeToFirstToken: 0.2, outputTokens: 1)
        let c = RequestMeasurement(error: "http_429", endToEnd: 0.01)
        let report = LoadTestReport(target: "t", streaming: true, mode: "m", wallSeconds: 2, measurements: [a, b, c])
        #expect(report.requests == 3 && report.succeeded == 2 && report.failed == 1)
        #expect(report.errors == ["http_429": 1])
        #expect(report.requestsPerSecond == 1)
        #expect(report.outputTokensPerSecond == 3)
        #expect(report.timePerOutputToken?.count == 1)
        #expect(abs(report.timePerOutputToken!.p50 - 0.1) < 1e-12)
        #expect(report.interTokenLatency?.count == 4)
        #expect(report.endToEnd?.max == 0.5)
        #expect(abs(report.successRate - 2.0 / 3.0) < 1e-12)
        #expect(report.renderTable().contains("http_429=1"))
    }

    @Test func formatting() {
        #expect(format(1.23456, 3) == "1.235")
        #expect(format(-0.5, 1) == "-0.5")
        #expect(format(2, 0) == "2")
        #expect(format(0.05, 2) == "0.05")
        #expect(format(.nan, 2) == "nan")
    }
}
