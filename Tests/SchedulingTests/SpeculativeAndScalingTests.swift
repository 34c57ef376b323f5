import Foundation
import KVPaging
import Testing
@testable import Scheduling

/// Upper critical value of the chi-square distribution (Wilson–Hilferty approximation), for significance 0.001 (z = 3.0902).
func chiSquareCritical001(df: Int) -> Double {
    let k = Double(df), z = 3.0902
    let a = 2 / (9 * k)
    return k * pow(1 - a + z * a.squareRoot(), 3)
}

/// Pearson's statistic of `counts` against `probs` (cells with expected count < 5 pooled into one).
func chiSquare(counts: [Int], probs: [Double], n: Int) -> (stat: Double, df: Int) {
    var stat = 0.0, cells = 0, poolObs = 0, poolExp = 0.0
    for (o, p) in zip(counts, probs) {
        let e = p * Double(n)
        if e < 5 { poolObs += o; poolExp += e; continue }
        stat += (Double(o) - e) * (Double(o) - e) / e
        cells += 1
    }
    if poolExp > 0 { stat += (Double(poolObs) - poolExp) * (Double(poolObs) - poolExp) / poolExp; cells += 1 }
    return (stat, cells - 1)
}

@Suite struct SpeculativeDecodingTests {
    static let target = try! BigramLanguageModel.random(vocabularySize: 4, seed: 1)
    static let draft = try! BigramLanguageModel.random(vocabularySize: 4, seed: 2, sharpness: 3)

    /// Joint distribution of the first three tokens after an empty prompt: 64 cells.
    static func counts(_ sample: (inout SimulationRandom) -> [Int], n: Int, seed: UInt64) -> [Int] {
        var rng = SimulationRandom(seed: seed)
        var c = [Int](repeating: 0, count: 64)
        for _ in 0..<n {
            let t = sample(&rng)
            c[t[0] * 16 + t[1] * 4 + t[2]] += 1
        }
        return c
    }

    static var exact: [Double] {
        (0..<64).map { target.probability(of: [$0 / 16, ($0 / 4) % 4, $0 % 4], after: []) }
    }

    @Test(arguments: [1, 2, 4])
    func speculativeSamplesFollowTheTargetDistribution(lookahead: Int) throws {
        // H0: speculative outputs ~ target. Chi-square goodness of fit at significance 0.001, fixed seed, 30,000 sequences.
        var dec = try SpeculativeDecoder(target: Self.target, draft: Self.draft, lookahead: lookahead)
        let n = 30_000
        let c = Self.counts({ dec.generate(prompt: [], count: 3, rng: &$0) }, n: n, seed: 1234 + UInt64(lookahead))
        let (stat, df) = chiSquare(counts: c, probs: Self.exact, n: n)
        #expect(stat < chiSquareCritical001(df: df), "χ² = \(stat) with \(df) df")
        // The draft really was used: some proposals were rejected, some accepted.
        #expect(dec.statistics.acceptanceRate > 0.2 && dec.statistics.acceptanceRate < 0.98)
    }

    @Test func theTestHasPowerAgainstADraftOnlySampler() {
        // Negative control: sampling from the draft alone (accepting every proposal) must fail the same test.
        let n = 30_000
        let c = Self.counts({ sampleAutoregressively(Self.draft, prompt: [], count: 3, rng: &$0) }, n: n, seed: 99)
        let (stat, df) = chiSquare(counts: c, probs: Self.exact, n: n)
        #expect(stat > 10 * chiSquareCritical001(df: df))
    }

    @Test func analyticModelMatchesHandValuesAndMonteCarlo() throws {
        // α = 0.8, γ = 4: (1 − 0.8⁵) / 0.2 = (1 − 0.32768) / 0.2 = 3.3616 tokens per target pass;
        // c = 0.1: cost 4·0.1 + 1 = 1.4 → speed-up 2.4011…
        let m = try SpeculativeDecodingModel(acceptanceRate: 0.8, lookahead: 4, costRatio: 0.1)
        #expect(abs(m.expectedTokensPerStep - 3.3616) < 1e-12 && abs(m.speedup - 3.3616 / 1.4) < 1e-12)
        #expect(try SpeculativeDecodingModel(acceptanceRate: 1, lookahead: 3, costRatio: 0).expectedTokensPerStep == 4)
        #expect(try SpeculativeDecodingModel(acceptanceRate: 0, lookahead: 3, costRatio: 0).expectedTokensPerStep == 1)
        #expect(throws: SchedulingError.self) { try SpeculativeDecodingModel(acceptanceRate: 1.5, lookahead: 3, costRatio: 0) }
        // Context-free models (all rows equal) make α the same at every position: α = Σ min(p, q).
        let p = [0.5, 0.3, 0.15, 0.05], q = [0.25, 0.25, 0.25, 0.25]
        let tm = try BigramLanguageModel(initial: p, transitions: [p, p, p, p])
        let dm = try BigramLanguageModel(initial: q, transitions: [q, q, q, q])
        let alpha = acceptanceProbability(target: p, draft: q)  // 0.25 + 0.25 + 0.15 + 0.05 = 0.7
        #expect(abs(alpha - 0.7) < 1e-12)
        var dec = try SpeculativeDecoder(target: tm, draft: dm, lookahead: 3)
        var rng = SimulationRandom(seed: 5)
        for _ in 0..<40_000 { _ = dec.step(context: [0], rng: &rng) }
        let expected = try SpeculativeDecodingModel(acceptanceRate: alpha, lookahead: 3, costRatio: 0).expectedTokensPerStep  // 2.533
        // Tokens per pass lie in 1…4 (sd < 1.5): 5 standard errors of 40,000 passes ≈ 0.04.
        #expect(abs(dec.statistics.tokensPerIteration - expected) < 0.04)
        #expect(abs(dec.statistics.acceptanceRate - alpha) < 0.02)
    }

    @Test func bestLookaheadBalancesAcceptanceAndDraftCost() throws {
        // α = 0.6, c = 0.2: speed-ups γ=1: 1.6/1.2 = 1.333; γ=2: 1.96/1.4 = 1.4; γ=3: 2.176/1.6 = 1.36. Best γ = 2.
        let best = try SpeculativeDecodingModel(acceptanceRate: 0.6, lookahead: 1, costRatio: 0.2).bestLookahead(upTo: 10)
        #expect(best.lookahead == 2 && abs(best.speedup - 1.4) < 1e-12)
    }
}

@Suite struct AutoscalingTests {
    @Test func rulesWithAManualClock() throws {
        var a = try Autoscaler(AutoscalingConfiguration(minReplicas: 1, maxReplicas: 3, cooldown: 60, coldStart: 0))
        #expect(a.evaluate(now: 0, utilization: 0.9, queueDepth: 0, replicas: 1) == .scaleOut)     // > 80 %
        #expect(a.evaluate(now: 30, utilization: 0.9, queueDepth: 0, replicas: 2) == .none)       // cooldown
        #expect(a.evaluate(now: 60, utilization: 0.5, queueDepth: 11, replicas: 2) == .scaleOut)  // queue > 10
        #expect(a.evaluate(now: 200, utilization: 0.95, queueDepth: 50, replicas: 3) == .none)    // at max
        #expect(a.evaluate(now: 300, utilization: 0.1, queueDepth: 0, replicas: 3) == .none)      // low since 300
        #expect(a.evaluate(now: 600, utilization: 0.5, queueDepth: 0, replicas: 3) == .none)      // interrupted
        #expect(a.evaluate(now: 700, utilization: 0.1, queueDepth: 0, replicas: 3) == .none)      // low since 700
        #expect(a.evaluate(now: 1299, utilization: 0.1, queueDepth: 0, replicas: 3) == .none)     // 599 s < 10 min
        #expect(a.evaluate(now: 1300, utilization: 0.1, queueDepth: 0, replicas: 3) == .scaleIn)  // 600 s
        #expect(a.evaluate(now: 1400, utilization: 0.1, queueDepth: 0, replicas: 2) == .none)     // a new low period starts
        #expect(a.evaluate(now: 1900, utilization: 0.1, queueDepth: 0, replicas: 2) == .scaleIn)
        #expect(a.evaluate(now: 3000, utilization: 0.0, queueDepth: 0, replicas: 1) == .none)     // min replicas
        #expect(throws: SchedulingError.self) { try Autoscaler(AutoscalingConfiguration(minReplicas: 2, maxReplicas: 1)) }
        #expect(throws: SchedulingError.self) { try Autoscaler(AutoscalingConfiguration(scaleOutUtilization: 0.2, scaleInUtilization: 0.5)) }
    }

    @Test func fleetScalesOutForABurstAndBackIn() throws {
        // 100 s at 1 req/s, 100 s at 30 req/s, 1,000 s at 0.5 req/s. One replica serves ~6 req/s of these requests.
        var reqs: [InferenceRequest] = []
        var rng = SimulationRandom(seed: 4)
        var t = 0.0
        for (rate, until) in [(1.0, 100.0), (30, 200), (0.5, 1200)] {
            while true {
                t += rng.exponential(rate: rate)
                if t >= until { t = until; break }
                reqs.append(InferenceRequest(id: reqs.count, arrivalTime: t, promptTokens: 50, outputTokens: 20))
            }
        }
        let scaling = AutoscalingConfiguration(minReplicas: 1, maxReplicas: 6, cooldown: 20, coldStart: 30, evaluationInterval: 10)
        let config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), limits: SchedulerLimits(maxNumSeqs: 8),
                                             kv: KVCacheConfiguration(blockCount: 512), executionModel: try LinearStepModel(beta0: 0.02, beta2: 0.005),
                                             sloClasses: [ServiceLevelObjective(maxTTFT: 2)], autoscaling: scaling)
        let r = try ServingSimulator.run(reqs, configuration: config)
        #expect(r.records.count == reqs.count)
        let outs = r.scalingEvents.filter { $0.event == "scale-out" }, ins = r.scalingEvents.filter { $0.event == "scale-in" }
        #expect(outs.count >= 2 && ins.count >= 1)
        #expect(outs.allSatisfy { $0.time >= 100 && $0.time < 260 })
        #expect(ins.allSatisfy { $0.time > 700 })  // needs 10 min of low utilisation after the burst
        #expect(r.timeSeries.map(\.replicas).max()! <= 6)
        // Replica-hours: at least one replica for the whole run, less than six.
        #expect(r.summary.replicaHours > r.summary.duration / 3600 && r.summary.replicaHours < 6 * r.summary.duration / 3600)
    }
}

@Suite struct SpeculativeServingTests {
    @Test func simulatedSpeedUpMatchesTheAnalyticModel() throws {
        // One request, prompt 10, 4,001 outputs; every step costs β0 = 10 ms whatever its size.
        // Plain decoding: 4,000 decode steps. Speculative (α 0.8, γ 4, c 0.1): each step costs 10 ms × (1 + 4·0.1) = 14 ms
        // and emits (1 − 0.8⁵)/0.2 = 3.3616 tokens on average, so TPOT shrinks by the model's speed-up 3.3616 / 1.4 = 2.401.
        // 4,000 tokens ≈ 1,190 steps: the relative standard error of the mean tokens per step is ≈ 1.1/3.36/√1190 ≈ 1 %.
        let req = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 10, outputTokens: 4001)]
        let model = try LinearStepModel.constant(0.01)
        let spec = try SpeculativeDecodingModel(acceptanceRate: 0.8, lookahead: 4, costRatio: 0.1)
        var config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 1024), executionModel: model,
                                             sloClasses: [ServiceLevelObjective()])
        let plain = try ServingSimulator.run(req, configuration: config)
        config.speculative = spec
        let fast = try ServingSimulator.run(req, configuration: config)
        #expect(abs(plain.records[0].tpot! - 0.01) < 1e-9)
        let speedup = plain.records[0].tpot! / fast.records[0].tpot!
        #expect(abs(speedup / spec.speedup - 1) < 0.04, "simulated \(speedup)× vs analytic \(spec.speedup)×")
        #expect(fast.tokensEmitted == 4001 && fast.records[0].outputTokens == 4001)
        #expect(fast.finalKVUsage[0].activeBlocks == 0)
        // Deterministic under the seed; another seed draws other acceptances.
        #expect(try ServingSimulator.run(req, configuration: config).records == fast.records)
        config.seed = 99
        #expect(try ServingSimulator.run(req, configuration: config).records != fast.records)
    }
}
