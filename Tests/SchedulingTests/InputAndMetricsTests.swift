import Foundation
import KVPaging
import Testing
@testable import Scheduling

@Suite struct BadInputTests {
    @Test func malformedTraceLinesNameTheLine() throws {
        let csv = "arrival_time,prompt_tokens,output_tokens\n0.0,10,5\n\n0.5,abc,5\n"
        #expect(throws: SchedulingError(.malformedInput, "prompt tokens 'abc' is not a whole number", line: 4)) { try TraceReader.parseCSV(csv) }
        #expect { try TraceReader.parseCSV("arrival_time,prompt_tokens,output_tokens\n0.1,10\n") } throws: { ($0 as? SchedulingError)?.line == 2 }
        #expect { try TraceReader.parseCSV("time,a,b\n0,1,1\n") } throws: { ($0 as? SchedulingError)?.line == 1 }
        #expect { try TraceReader.parseCSV("arrival_time,prompt_tokens,output_tokens\n-1,10,5\n") } throws: { ($0 as? SchedulingError)?.line == 2 }
        #expect { try TraceReader.parseCSV("arrival_time,prompt_tokens,output_tokens\n1,10,0\n") } throws: { ($0 as? SchedulingError)?.line == 2 }
        let jsonl = "{\"arrival_time\": 0, \"prompt_tokens\": 3, \"output_tokens\": 2}\n# comment\n{\"arrival_time\": 1, \"prompt_tokens\": 3}\n"
        #expect { try TraceReader.parseJSONLines(jsonl) } throws: { ($0 as? SchedulingError)?.line == 3 }
        #expect { try TraceReader.parseJSONLines("{nope\n") } throws: { ($0 as? SchedulingError)?.line == 1 }
        #expect { try TraceReader.parseJSONLines("{\"arrival_time\": 0, \"prompt_tokens\": 2.5, \"output_tokens\": 2}") } throws: { ($0 as? SchedulingError)?.line == 1 }
    }

    @Test func tracesParseAndSortByArrival() throws {
        let csv = "# header comment\nTimestamp, Context_Tokens, Generated_Tokens, priority\n2.0,10,5,1\n1.0,20,6,0\n"
        let r = try TraceReader.parseCSV(csv)
        #expect(r.map(\.arrivalTime) == [1.0, 2.0] && r.map(\.promptTokens) == [20, 10] && r.map(\.priority) == [0, 1])
        let j = try TraceReader.parseJSONLines("{\"timestamp\": 0.5, \"input_tokens\": 7, \"output_tokens\": 3}\n")
        #expect(j == [InferenceRequest(id: 0, arrivalTime: 0.5, promptTokens: 7, outputTokens: 3)])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UInt32.random(in: 0...UInt32.max)).jsonl").path
        try "{\"arrival_time\": 0, \"prompt_tokens\": 1, \"output_tokens\": 1}".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try TraceReader.read(path: path).count == 1)
        #expect { try TraceReader.read(path: "/nonexistent/trace.csv") } throws: { ($0 as? SchedulingError)?.code == .fileUnreadable }
    }

    @Test func rejectsBadRatesAndLengths() throws {
        for rate in [0.0, -1, .nan, .infinity] {
            #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: rate), count: 10).generate() }
        }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .gamma(rate: 1, cv: 0), count: 10).generate() }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: 1), count: 0).generate() }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: 1), promptLength: .uniform(min: 5, max: 2), count: 3).generate() }
        #expect(throws: SchedulingError.self) { try InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 0, outputTokens: 1).validate() }
        #expect(throws: SchedulingError.self) { try LinearStepModel(beta0: 0) }
        #expect(throws: SchedulingError.self) { try LinearStepModel(beta0: 0.01, beta1: -1) }
        #expect(throws: SchedulingError.self) { try SchedulerLimits(maxNumSeqs: 0).validate() }
        #expect(throws: SchedulingError.self) { try StaticBatchingPolicy(batchSize: 0) }
        #expect(throws: SchedulingError.self) { try DynamicBatchingPolicy(maxBatchSize: 4, maxWait: -1) }
        let config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 0), executionModel: try LinearStepModel.constant(0.1))
        #expect(throws: SchedulingError.self) { try ServingSimulator.run([InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 1, outputTokens: 1)], configuration: config) }
    }

    @Test func requestLargerThanThePoolIsRejectedNotHung() throws {
        // 8 blocks × 16 = 128 tokens. Request 1 needs 200 + 100 − 1 tokens: rejected with a reason; the others finish.
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 10, outputTokens: 10),
                    InferenceRequest(id: 1, arrivalTime: 0.01, promptTokens: 200, outputTokens: 100),
                    InferenceRequest(id: 2, arrivalTime: 0.02, promptTokens: 10, outputTokens: 10)]
        for policy: any BatchingPolicy in [ContinuousBatchingPolicy(), try StaticBatchingPolicy(batchSize: 3), NoBatchingPolicy()] {
            let r = try ServingSimulator.run(reqs, configuration: SimulationConfiguration(
                policy: policy, kv: KVCacheConfiguration(blockCount: 8, blockSize: 16), executionModel: try LinearStepModel.constant(0.01)))
            #expect(r.rejected.map(\.id) == [1])
            #expect(r.rejected.first?.reason.contains("KV blocks") == true)
            #expect(Set(r.records.map(\.id)) == [0, 2])
        }
        // Without chunked prefill a prompt must fit one step's token budget: 20 + 5 − 1 tokens > 16 → rejected.
        let nc = try ServingSimulator.run([InferenceRequest(id: 3, arrivalTime: 0, promptTokens: 20, outputTokens: 5),
                                           InferenceRequest(id: 4, arrivalTime: 0, promptTokens: 8, outputTokens: 5)], configuration: SimulationConfiguration(
            policy: ContinuousBatchingPolicy(), limits: SchedulerLimits(maxBatchedTokens: 16, chunkedPrefill: false),
            kv: KVCacheConfiguration(blockCount: 100), executionModel: try LinearStepModel.constant(0.01)))
        #expect(nc.rejected.map(\.id) == [3] && nc.rejected[0].reason.contains("chunked prefill") && nc.records.map(\.id) == [4])
        // Longer than the model's context: rejected too.
        let r = try ServingSimulator.run([InferenceRequest(id: 5, arrivalTime: 0, promptTokens: 9000, outputTokens: 10)], configuration: SimulationConfiguration(
            policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 10_000), executionModel: try LinearStepModel.constant(0.01)))
        #expect(r.rejected.first?.reason.contains("context") == true)
    }
}

@Suite struct MetricsTests {
    @Test func percentilesInterpolateLinearlyBetweenRanks() {
        // [1, 2, 3, 4]: p50 at rank 1.5 → 2.5; p90 at rank 2.7 → 3.7; p99 at rank 2.97 → 3.97.
        let s = LatencySummary([4, 1, 3, 2])
        #expect(s.p50 == 2.5 && abs(s.p90 - 3.7) < 1e-12 && abs(s.p99 - 3.97) < 1e-12 && s.mean == 2.5 && s.max == 4)
        // A weighted multiset gives the same as its expansion.
        var rng = SimulationRandom(seed: 1)
        var expanded: [Double] = []
        var weighted: [(value: Double, count: Int)] = []
        for _ in 0..<50 {
            let v = (rng.unit() * 100).rounded() / 10, k = 1 + rng.index(below: 5)
            weighted.append((v, k))
            expanded += [Double](repeating: v, count: k)
        }
        let a = LatencySummary(expanded), b = LatencySummary(weighted: weighted)
        #expect(a.count == b.count && abs(a.p50 - b.p50) < 1e-12 && abs(a.p95 - b.p95) < 1e-12 && abs(a.p99 - b.p99) < 1e-12 && abs(a.mean - b.mean) < 1e-9)
    }

    @Test func goodputCountsOnlyRequestsMeetingEverySLO() throws {
        // The continuous three-request timeline (see TimelineTests): TTFTs 0.1, 0.15, 0.15 and TPOTs 0.1, 0.1.
        // SLO TTFT ≤ 0.12: only R0 qualifies → goodput 1 / 0.4 s = 2.5 req/s, attainment 1/3.
        let config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 100),
                                             executionModel: try LinearStepModel.constant(0.1), sloClasses: [ServiceLevelObjective(maxTTFT: 0.12)])
        let r = try ServingSimulator.run(TimelineTests.threeRequests, configuration: config)
        #expect(abs(r.summary.goodput - 2.5) < 1e-9 && abs(r.summary.sloAttainment - 1.0 / 3) < 1e-12)
    }

    @Test func arrivalProcessesHaveTheirMeanAndVariability() throws {
        // Poisson: gaps have mean 1/λ and CV 1; gamma(cv = 3): CV 3. 200k samples: standard error of the mean ≈ cv/√n.
        for (process, cv) in [(ArrivalProcess.poisson(rate: 4), 1.0), (.gamma(rate: 4, cv: 3), 3.0), (.gamma(rate: 4, cv: 0.5), 0.5)] {
            var rng = SimulationRandom(seed: 77)
            let n = 200_000
            var sum = 0.0, sum2 = 0.0
            for _ in 0..<n { let g = process.nextGap(&rng); sum += g; sum2 += g * g }
            let mean = sum / Double(n), sd = (sum2 / Double(n) - mean * mean).squareRoot()
            #expect(abs(mean - 0.25) < 5 * 0.25 * cv / Double(n).squareRoot())
            #expect(abs(sd / mean - cv) < 0.05 * cv)
        }
        // Log-normal lengths: the median of the samples is near the configured median.
        var rng = SimulationRandom(seed: 3)
        let lengths = (0..<20_001).map { _ in LengthDistribution.logNormal(median: 200, sigma: 1, min: 1, max: 100_000).sample(&rng) }.sorted()
        #expect(abs(Double(lengths[10_000]) - 200) < 10)
    }
}

@Suite struct LinearModelTests {
    @Test func fitRecoversKnownCoefficients() throws {
        // Samples generated from t = 5 ms + 20 µs·prefill + 150 µs·decode + 40 ns·context, with ±1 % multiplicative noise.
        var rng = SimulationRandom(seed: 8)
        var samples: [LinearStepModel.Sample] = []
        for _ in 0..<400 {
            let p = rng.index(below: 4096), d = rng.index(below: 256), ctx = d * (100 + rng.index(below: 2000))
            let t = 0.005 + 20e-6 * Double(p) + 150e-6 * Double(d) + 40e-9 * Double(ctx)
            samples.append(.init(shape: StepShape(prefillTokens: p, decodeTokens: d, contextTokens: ctx), seconds: t * (1 + 0.01 * (2 * rng.unit() - 1))))
        }
        let fit = try LinearStepModel.fit(samples)
        #expect(abs(fit.model.beta0 - 0.005) / 0.005 < 0.05)
        #expect(abs(fit.model.beta1 - 20e-6) / 20e-6 < 0.02)
        #expect(abs(fit.model.beta2 - 150e-6) / 150e-6 < 0.02)
        #expect(abs(fit.model.beta3 - 40e-9) / 40e-9 < 0.05)
        #expect(fit.meanAbsolutePercentageError < 0.01 && fit.rSquared > 0.99)
        // Without noise the fit is exact to rounding.
        let exact = try LinearStepModel.fit(samples.map { .init(shape: $0.shape, seconds: 0.005 + 20e-6 * Double($0.shape.prefillTokens) + 150e-6 * Double($0.shape.decodeTokens) + 40e-9 * Double($0.shape.contextTokens)) })
        #expect(exact.maxRelativeError < 1e-9)
    }

    @Test func fitRejectsDegenerateSamplesAndParsesCSV() throws {
        let same = (0..<10).map { _ in LinearStepModel.Sample(shape: StepShape(prefillTokens: 0, decodeTokens: 4, contextTokens: 100), seconds: 0.01) }
        #expect { try LinearStepModel.fit(same) } throws: { ($0 as? SchedulingError)?.code == .fitFailed }
        #expect { try LinearStepModel.fit(Array(same.prefix(2))) } throws: { ($0 as? SchedulingError)?.code == .fitFailed }
        let csv = "prefill_tokens,decode_tokens,context_tokens,step_time_ms\n100,0,100,12.5\n0,8,800,7\n"
        let s = try LinearStepModel.parseTimings(csv: csv)
        #expect(s.count == 2 && s[0].seconds == 0.0125 && s[1].shape.decodeTokens == 8)
        #expect { try LinearStepModel.parseTimings(csv: "prefill_tokens,decode_tokens,step_time\n1,2,-3\n") } throws: { ($0 as? SchedulingError)?.line == 2 }
    }
}
