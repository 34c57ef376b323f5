import KVPaging
import Testing
@testable import Scheduling

@Suite struct InvariantTests {
    static func policies() throws -> [any BatchingPolicy] {
        [NoBatchingPolicy(), try StaticBatchingPolicy(batchSize: 8), try DynamicBatchingPolicy(maxBatchSize: 8, maxWait: 0.05),
         ContinuousBatchingPolicy(), PriorityBatchingPolicy()]
    }

    /// A tight, bursty workload: a small KV pool forces preemptions; priorities mix.
    static func workload(seed: UInt64, count: Int = 300) throws -> [InferenceRequest] {
        try SyntheticWorkload(arrivals: .gamma(rate: 40, cv: 2), promptLength: .logNormal(median: 60, sigma: 0.8, min: 1, max: 400),
                              outputLength: .logNormal(median: 40, sigma: 0.8, min: 1, max: 300), count: count,
                              sharedPrefixFraction: 0.3, sharedPrefixLength: 32,
                              priorityMix: [.init(priority: 0, weight: 1), .init(priority: 1, weight: 3)], seed: seed).generate()
    }

    static let model = try! LinearStepModel(beta0: 0.005, beta1: 0.0001, beta2: 0.0002, beta3: 0.000001)

    @Test(arguments: [0, 1, 2, 3, 4])
    func noRequestLostOrDuplicatedAndKVBalanced(policyIndex: Int) throws {
        let policy = try Self.policies()[policyIndex]
        let reqs = try Self.workload(seed: 11)
        // 64 blocks × 16 tokens = 1,024 tokens of KV: requests of up to 700 tokens fit alone, not many together.
        let kv = KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 2048)
        let config = SimulationConfiguration(policy: policy, limits: SchedulerLimits(maxNumSeqs: 32, maxBatchedTokens: 256), kv: kv, executionModel: Self.model)
        let r = try ServingSimulator.run(reqs, configuration: config)
        let ids = r.records.map(\.id) + r.rejected.map(\.id)
        #expect(ids.count == reqs.count)
        #expect(Set(ids) == Set(reqs.map(\.id)))
        // Only requests whose peak KV exceeds the usable pool are rejected.
        let usable = kv.blockCount - kv.watermarkBlocks
        for q in reqs {
            let tooBig = kv.blocks(forTokens: q.promptTokens + q.outputTokens - 1) > usable
            #expect(r.rejected.contains { $0.id == q.id } == tooBig)
        }
        // Tokens generated step by step = tokens requested by the completed requests.
        let requested = Dictionary(uniqueKeysWithValues: reqs.map { ($0.id, $0.outputTokens) })
        #expect(r.tokensEmitted == r.records.reduce(0) { $0 + requested[$1.id]! })
        for rec in r.records {
            #expect(rec.outputTokens == requested[rec.id]!)
            #expect(rec.arrivalTime <= rec.firstScheduledTime && rec.firstScheduledTime < rec.firstTokenTime && rec.firstTokenTime <= rec.finishTime)
        }
        // Every block is back: nothing active, no sequence alive.
        #expect(r.finalKVUsage[0].activeBlocks == 0 && r.finalKVUsage[0].sequences == 0)
        #expect(r.fruitlessPreemptions == 0)
    }

    @Test func stateMachineInvariantsHoldAfterEveryStep() throws {
        // Drive the state machine by hand with a manual clock and check the bookkeeping after every step.
        let reqs = try Self.workload(seed: 5, count: 150)
        for var policy in try Self.policies() {
            var s = try SchedulerState(limits: SchedulerLimits(maxNumSeqs: 16, maxBatchedTokens: 128),
                                       kv: KVCacheConfiguration(blockCount: 48, blockSize: 8, maxSequenceLength: 4096))
            s.usesPriority = policy.usesPriority
            var t = 0.0, next = 0, steps = 0
            while next < reqs.count || s.activeCount > 0 {
                while next < reqs.count, reqs[next].arrivalTime <= t { s.enqueue(reqs[next]); next += 1 }
                switch policy.schedule(&s, now: t, arrivalsComplete: next == reqs.count) {
                case .run:
                    #expect(s.batch.count <= 16)
                    #expect(s.shape.totalTokens <= 128 || !policy.usesTokenBudget)
                    let end = t + Self.model.stepTime(s.shape)
                    s.completeStep(start: t, end: end)
                    t = end
                    steps += 1
                case let .idle(until):
                    t = until ?? (next < reqs.count ? reqs[next].arrivalTime : t)
                    if until == nil && next >= reqs.count { Issue.record("\(policy.name) idles with \(s.activeCount) requests left"); return }
                }
                if let v = s.invariantViolation() { Issue.record("\(policy.name) step \(steps): \(v)"); return }
            }
            #expect(s.records.count + s.rejected.count == reqs.count)
        }
    }

    @Test func deterministicUnderASeed() throws {
        let reqs = try Self.workload(seed: 99)
        let config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), limits: SchedulerLimits(maxNumSeqs: 32, maxBatchedTokens: 256),
                                             kv: KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 2048), executionModel: Self.model)
        let a = try ServingSimulator.run(reqs, configuration: config)
        let b = try ServingSimulator.run(try Self.workload(seed: 99), configuration: config)
        #expect(a.summary == b.summary)
        #expect(a.records == b.records)
        let c = try ServingSimulator.run(try Self.workload(seed: 100), configuration: config)
        #expect(a.records != c.records)
    }

    @Test func continuousBeatsStaticOnThroughputAndTTFT() throws {
        // Equal load, same model and memory: iteration-level batching must win (the reference's qualitative claim).
        let reqs = try SyntheticWorkload(arrivals: .poisson(rate: 20), promptLength: .logNormal(median: 100, sigma: 0.6, min: 1, max: 1000),
                                         outputLength: .logNormal(median: 80, sigma: 0.8, min: 1, max: 800), count: 400, seed: 3).generate()
        let kv = KVCacheConfiguration(blockCount: 4096, blockSize: 16)
        func run(_ p: any BatchingPolicy) throws -> SimulationSummary {
            try ServingSimulator.run(reqs, configuration: SimulationConfiguration(policy: p, limits: SchedulerLimits(maxNumSeqs: 64), kv: kv,
                                                                                executionModel: Self.model)).summary
        }
        let cont = try run(ContinuousBatchingPolicy())
        let stat = try run(try StaticBatchingPolicy(batchSize: 16))
        #expect(cont.outputTokenThroughput >= stat.outputTokenThroughput)
        #expect(cont.ttft.p95 < stat.ttft.p95)
    }
}

@Suite struct SpeculativeInvariantTests {
    @Test func speculativeDecodingUnderMemoryPressureKeepsTheBooks() throws {
        // The tight invariant workload with speculative decoding: KV grows by up to γ + 1 slots per step.
        let reqs = try InvariantTests.workload(seed: 21)
        let kv = KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 2048)
        var config = SimulationConfiguration(policy: ContinuousBatchingPolicy(), limits: SchedulerLimits(maxNumSeqs: 32, maxBatchedTokens: 256),
                                             kv: kv, executionModel: InvariantTests.model)
        config.speculative = try SpeculativeDecodingModel(acceptanceRate: 0.7, lookahead: 3, costRatio: 0.05)
        let r = try ServingSimulator.run(reqs, configuration: config)
        #expect(r.records.count + r.rejected.count == reqs.count)
        let requested = Dictionary(uniqueKeysWithValues: reqs.map { ($0.id, $0.outputTokens) })
        #expect(r.tokensEmitted == r.records.reduce(0) { $0 + requested[$1.id]! })
        #expect(r.records.allSatisfy { $0.outputTokens == requested[$0.id]! })
        #expect(r.summary.preemptions > 0)
        #expect(r.finalKVUsage[0].activeBlocks == 0 && r.finalKVUsage[0].sequences == 0)
    }
}
