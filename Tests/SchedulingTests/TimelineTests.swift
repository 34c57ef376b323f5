import KVPaging
import Testing
@testable import Scheduling

/// Hand-checked timelines: every expected number below is derived in the comments, not copied from a run.
@Suite struct TimelineTests {
    /// Three requests, every step takes 0.1 s (a constant execution model), a large KV pool.
    /// R0 arrives 0.00 (prompt 10, 3 outputs), R1 0.05 (prompt 10, 2 outputs), R2 0.25 (prompt 10, 1 output).
    static let threeRequests = [
        InferenceRequest(id: 0, arrivalTime: 0.00, promptTokens: 10, outputTokens: 3),
        InferenceRequest(id: 1, arrivalTime: 0.05, promptTokens: 10, outputTokens: 2),
        InferenceRequest(id: 2, arrivalTime: 0.25, promptTokens: 10, outputTokens: 1),
    ]

    static func run(_ policy: any BatchingPolicy, _ requests: [InferenceRequest] = threeRequests,
                    limits: SchedulerLimits = SchedulerLimits(), kv: KVCacheConfiguration = KVCacheConfiguration(blockCount: 1000, blockSize: 16),
                    model: (any ExecutionModel)? = nil) throws -> SimulationResult {
        let config = SimulationConfiguration(policy: policy, limits: limits, kv: kv,
                                             executionModel: try model ?? LinearStepModel.constant(0.1), sloClasses: [ServiceLevelObjective()])
        return try ServingSimulator.run(requests, configuration: config)
    }

    static func byID(_ r: SimulationResult) -> [Int: RequestRecord] { Dictionary(uniqueKeysWithValues: r.records.map { ($0.id, $0) }) }

    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-9 }

    @Test func continuousBatchingTimeline() throws {
        // t=0.0  R0 admitted, prefill 10 tokens        step [0.0, 0.1] → R0 token 1 (TTFT 0.1)
        // t=0.1  R1 (arrived 0.05) joins: R0 decode + R1 prefill [0.1, 0.2] → R0 token 2, R1 token 1 (TTFT 0.15)
        // t=0.2  both decode                            [0.2, 0.3] → R0 token 3 (done, E2E 0.3), R1 token 2 (done, E2E 0.25)
        // t=0.3  R2 (arrived 0.25) prefill              [0.3, 0.4] → R2 token 1 (done, TTFT = E2E = 0.15)
        let r = try Self.run(ContinuousBatchingPolicy())
        let m = Self.byID(r)
        #expect(close(m[0]!.ttft, 0.1) && close(m[0]!.e2e, 0.3))
        #expect(close(m[1]!.ttft, 0.15) && close(m[1]!.e2e, 0.25))
        #expect(close(m[2]!.ttft, 0.15) && close(m[2]!.e2e, 0.15))
        #expect(close(m[1]!.queueTime, 0.05) && close(m[2]!.queueTime, 0.05) && close(m[0]!.queueTime, 0))
        // TPOT R0 = (0.3 − 0.1) / 2 = 0.1; R1 = (0.25 − 0.15) / 1 = 0.1; R2 has one token (excluded).
        #expect(r.summary.tpot.count == 2 && close(r.summary.tpot.mean, 0.1))
        // Inter-token gaps: R0 0.1, 0.1; R1 0.1.
        #expect(r.summary.itl.count == 3 && close(r.summary.itl.max, 0.1))
        #expect(r.summary.steps == 4)
        // Batch sizes 1, 2, 2, 1.
        #expect(r.batchSizeHistogram == [0, 2, 2])
        // Duration 0 → 0.4: 3 requests / 0.4 s, 6 output tokens / 0.4 s.
        #expect(close(r.summary.duration, 0.4) && close(r.summary.requestThroughput, 7.5) && close(r.summary.outputTokenThroughput, 15))
    }

    @Test func staticBatchingTimeline() throws {
        // Batch size 2: R0 waits for R1.
        // t=0.05 launch {R0, R1}: prefill 20 tokens [0.05, 0.15] → tokens 1 (TTFT R0 0.15, R1 0.10)
        // [0.15, 0.25] decode both → R1 done (E2E 0.20); R2 arrives 0.25 but the batch is in flight
        // [0.25, 0.35] R0 decode → R0 done (E2E 0.35)
        // t=0.35 no more arrivals: launch the partial batch {R2} [0.35, 0.45] → R2 done (TTFT = E2E = 0.20)
        let r = try Self.run(try StaticBatchingPolicy(batchSize: 2))
        let m = Self.byID(r)
        #expect(close(m[0]!.ttft, 0.15) && close(m[0]!.e2e, 0.35))
        #expect(close(m[1]!.ttft, 0.10) && close(m[1]!.e2e, 0.20))
        #expect(close(m[2]!.ttft, 0.20) && close(m[2]!.e2e, 0.20))
        #expect(r.summary.steps == 4)
        #expect(r.batchSizeHistogram == [0, 2, 2])
    }

    @Test func noBatchingTimeline() throws {
        // One at a time: R0 [0, 0.3] (3 steps); R1 [0.3, 0.5] → TTFT 0.35, E2E 0.45; R2 [0.5, 0.6] → E2E 0.35.
        let r = try Self.run(NoBatchingPolicy())
        let m = Self.byID(r)
        #expect(close(m[0]!.e2e, 0.3))
        #expect(close(m[1]!.ttft, 0.35) && close(m[1]!.e2e, 0.45))
        #expect(close(m[2]!.e2e, 0.35))
        #expect(r.batchSizeHistogram == [0, 6])
    }

    @Test func dynamicBatchingTimeline() throws {
        // Max batch 2, max wait 0.02 s.
        // R0 alone; its wait expires at 0.02: launch {R0} [0.02, 0.12] → TTFT 0.12; decodes end 0.22, 0.32 → E2E 0.32.
        // t=0.32: R1 (0.05) and R2 (0.25) wait → 2 ≥ 2: launch; prefill [0.32, 0.42] → R1 TTFT 0.37, R2 done E2E 0.17.
        // R1 decode [0.42, 0.52] → E2E 0.47.
        let r = try Self.run(try DynamicBatchingPolicy(maxBatchSize: 2, maxWait: 0.02))
        let m = Self.byID(r)
        #expect(close(m[0]!.ttft, 0.12) && close(m[0]!.e2e, 0.32))
        #expect(close(m[1]!.ttft, 0.37) && close(m[1]!.e2e, 0.47))
        #expect(close(m[2]!.e2e, 0.17))
    }

    @Test func chunkedPrefillSplitsLongPrompts() throws {
        // One request, prompt 20, 2 outputs, token budget 8; t = 0.01 + 0.001·prefill + 0.002·decode.
        // Chunks 8, 8, 4: 0.018 + 0.018 + 0.014 = 0.050 → TTFT 0.05; one decode 0.012 → E2E 0.062.
        let model = try LinearStepModel(beta0: 0.01, beta1: 0.001, beta2: 0.002)
        let r = try Self.run(ContinuousBatchingPolicy(), [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 20, outputTokens: 2)],
                             limits: SchedulerLimits(maxBatchedTokens: 8), model: model)
        #expect(close(r.records[0].ttft, 0.05) && close(r.records[0].e2e, 0.062))
        #expect(r.summary.steps == 4)
    }

    @Test func decodesGoFirstUnderTheTokenBudget() throws {
        // Budget 8. R0 (prompt 4, 3 outputs) at 0; R1 (prompt 20, 1 output) at 0.05. Constant 0.1 s.
        // [0, 0.1] R0 prefill 4 → token 1.  [0.1, 0.2] R0 decode (1) + R1 chunk 7 → R0 token 2.
        // [0.2, 0.3] R0 decode + R1 chunk 7 → R0 token 3 (E2E 0.3).  [0.3, 0.4] R1 last 6 tokens → R1 token 1 (E2E 0.35).
        let r = try Self.run(ContinuousBatchingPolicy(), [
            InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 4, outputTokens: 3),
            InferenceRequest(id: 1, arrivalTime: 0.05, promptTokens: 20, outputTokens: 1),
        ], limits: SchedulerLimits(maxBatchedTokens: 8))
        let m = Self.byID(r)
        #expect(close(m[0]!.e2e, 0.3))
        #expect(close(m[1]!.e2e, 0.35))
        #expect(r.summary.steps == 4)
    }

    @Test func preemptionByRecomputeWhenBlocksRunOut() throws {
        // 6 blocks of 4 tokens, no watermark. Two requests, prompt 8 (2 blocks) and 9 outputs (peak 16 tokens = 4 blocks).
        // [0, 0.1] both prefill → token 1 each. Decodes feed positions 8, 9, … ; position 8 opens block 3 for both (6 used).
        // Steps 2–5 fill positions 8–11. Step 6 (t = 0.5) R0 needs block 4 for position 12: none free → preempt the most
        // recently admitted, R1 (5 tokens so far), which frees 3 blocks. R0 runs alone: tokens 6…9 at 0.6 … 0.9 (E2E 0.9).
        // R1 cannot come back while R0 holds 4 blocks (it needs 4 for 13 tokens, 2 are free). At 0.9 it is re-admitted and
        // recomputes 13 tokens [0.9, 1.0] → token 6; decodes give tokens 7, 8, 9 at 1.1, 1.2, 1.3 (E2E 1.3).
        let kv = KVCacheConfiguration(blockCount: 6, blockSize: 4, watermark: 0)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 8, outputTokens: 9),
                    InferenceRequest(id: 1, arrivalTime: 0, promptTokens: 8, outputTokens: 9)]
        let r = try Self.run(ContinuousBatchingPolicy(), reqs, kv: kv)
        let m = Self.byID(r)
        #expect(close(m[0]!.e2e, 0.9) && m[0]!.preemptions == 0)
        #expect(close(m[1]!.e2e, 1.3) && m[1]!.preemptions == 1)
        #expect(r.summary.preemptions == 1 && r.fruitlessPreemptions == 0)
        // R1's gap across the preemption: token 5 at 0.5, token 6 at 1.0.
        #expect(close(r.summary.itl.max, 0.5))
        #expect(r.summary.steps == 13)
        #expect(r.finalKVUsage[0].activeBlocks == 0)
    }

    @Test func priorityPreemptsWhenTheSequenceLimitBinds() throws {
        // maxNumSeqs 1. R0 (priority 1, prompt 4, 5 outputs) at 0; R1 (priority 0, prompt 4, 2 outputs) at 0.15.
        // [0, 0.1] R0 prefill, [0.1, 0.2] R0 decode → 2 tokens. At 0.2 R1 is more urgent and no slot is free:
        // R0 is preempted. [0.2, 0.3] R1 prefill → TTFT 0.15; [0.3, 0.4] decode → R1 done (E2E 0.25).
        // [0.4, 0.5] R0 recomputes prompt + 2 tokens → token 3; tokens 4, 5 at 0.6, 0.7 → E2E 0.7.
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 4, outputTokens: 5, priority: 1),
                    InferenceRequest(id: 1, arrivalTime: 0.15, promptTokens: 4, outputTokens: 2, priority: 0)]
        let p = try Self.run(PriorityBatchingPolicy(), reqs, limits: SchedulerLimits(maxNumSeqs: 1))
        let m = Self.byID(p)
        #expect(close(m[1]!.ttft, 0.15) && close(m[1]!.e2e, 0.25))
        #expect(close(m[0]!.e2e, 0.7) && m[0]!.preemptions == 1)
        // FCFS continuous batching lets R0 finish first: R0 done at 0.5, R1 prefill [0.5, 0.6], decode → E2E 0.55.
        let f = try Self.run(ContinuousBatchingPolicy(), reqs, limits: SchedulerLimits(maxNumSeqs: 1))
        let n = Self.byID(f)
        #expect(close(n[0]!.e2e, 0.5) && close(n[1]!.e2e, 0.55) && f.summary.preemptions == 0)
    }

    @Test func priorityPreemptsWhenKVMemoryBinds() throws {
        // 8 blocks × 4 tokens, no watermark. R0 (priority 1, prompt 20 = 5 blocks, 5 outputs) at 0;
        // R1 (priority 0, prompt 16 = 4 blocks, 2 outputs) at 0.15.
        // [0, 0.1] R0 prefill → token 1. [0.1, 0.2] decode at position 20 opens block 6 → token 2.
        // At 0.2 R1 needs 4 blocks, 2 are free: R0 is preempted (its 6 blocks freed), R1 prefills [0.2, 0.3] → TTFT 0.15,
        // decodes [0.3, 0.4] → E2E 0.25. R0 (22 tokens = 6 blocks) cannot return while R1 holds 5; at 0.4 it recomputes
        // [0.4, 0.5] → token 3, then tokens 4, 5 at 0.6, 0.7 → E2E 0.7.
        let kv = KVCacheConfiguration(blockCount: 8, blockSize: 4, watermark: 0)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 20, outputTokens: 5, priority: 1),
                    InferenceRequest(id: 1, arrivalTime: 0.15, promptTokens: 16, outputTokens: 2, priority: 0)]
        let p = try Self.run(PriorityBatchingPolicy(), reqs, kv: kv)
        let m = Self.byID(p)
        #expect(close(m[1]!.ttft, 0.15) && close(m[1]!.e2e, 0.25))
        #expect(close(m[0]!.e2e, 0.7) && m[0]!.preemptions == 1)
        // FCFS: R1 waits for memory until R0 finishes at 0.5, then [0.5, 0.6] prefill, [0.6, 0.7] decode → E2E 0.55.
        let f = try Self.run(ContinuousBatchingPolicy(), reqs, kv: kv)
        #expect(close(Self.byID(f)[0]!.e2e, 0.5) && close(Self.byID(f)[1]!.e2e, 0.55) && f.summary.preemptions == 0)
    }

    @Test func priorityNeverPreemptsForEqualPriority() throws {
        // Same shape as above but both priority 0: nobody is preempted, FCFS order holds.
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 4, outputTokens: 5),
                    InferenceRequest(id: 1, arrivalTime: 0.15, promptTokens: 4, outputTokens: 2)]
        let p = try Self.run(PriorityBatchingPolicy(), reqs, limits: SchedulerLimits(maxNumSeqs: 1))
        #expect(p.summary.preemptions == 0)
        #expect(close(Self.byID(p)[1]!.e2e, 0.55))
    }

    @Test func prefixCacheHitsShortenPrefill() throws {
        // Two requests with the same 64-token prefix (4 full blocks of 16), prompt 80, 1 output; t = 0.001·prefill tokens.
        // R0 at 0 computes 80 tokens: 0.08 s. R1 at 1.0 finds the 4 cached blocks: computes 16 tokens → 0.016 s.
        let model = try LinearStepModel(beta0: 0, beta1: 0.001)
        let prefix = SharedPrefix(group: 7, length: 64)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 80, outputTokens: 1, sharedPrefix: prefix),
                    InferenceRequest(id: 1, arrivalTime: 1, promptTokens: 80, outputTokens: 1, sharedPrefix: prefix)]
        let r = try Self.run(ContinuousBatchingPolicy(), reqs, model: model)
        let m = Self.byID(r)
        #expect(close(m[0]!.ttft, 0.08))
        #expect(close(m[1]!.ttft, 0.016) && m[1]!.cachedPromptTokens == 64)
        #expect(close(r.summary.prefixCacheHitRate, 64.0 / 160.0))
    }

    @Test func swapPreemptionKeepsComputedTokens() throws {
        // The recompute scenario above with a host swap pool: R1 is swapped out at 0.5 instead of freed, and swapped
        // back in at 0.9 without recomputation; swap costs nothing in this model. Its next step is a decode:
        // token 6 at 1.0, then 7, 8, 9 at 1.1, 1.2, 1.3 — the same times, but the swapped-in step processes 1 token, not 13.
        let kv = KVCacheConfiguration(blockCount: 6, blockSize: 4, watermark: 0, hostBlockCount: 8)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 8, outputTokens: 9),
                    InferenceRequest(id: 1, arrivalTime: 0, promptTokens: 8, outputTokens: 9)]
        let model = try LinearStepModel(beta0: 0.1, beta1: 0.01)
        let r = try Self.run(ContinuousBatchingPolicy(), reqs, limits: SchedulerLimits(preemptionMode: .swap), kv: kv, model: model)
        let m = Self.byID(r)
        // Prefill step: 0.1 + 16·0.01 = 0.26; then 0.1 per decode-only step. R0: 0.26 + 8·0.1 = 1.06.
        // R1: preempted after 5 tokens (t = 0.26 + 4·0.1 = 0.66), back at 1.06, 4 decodes → 1.46. With recompute its
        // first step back would prefill 13 tokens (0.23 s) → 1.59.
        #expect(close(m[0]!.e2e, 1.06))
        #expect(close(m[1]!.e2e, 1.46) && m[1]!.preemptions == 1)
        #expect(r.finalKVUsage[0].activeBlocks == 0 && r.finalKVUsage[0].hostUsedBlocks == 0)
    }
}

@Suite struct TokenIDPrefixTests {
    @Test func identicalTokenIDsShareCachedBlocks() throws {
        // Prompts of 40 ids: R1 repeats R0's first 32 (two full 16-token blocks) then differs. t = 0.001 s per prefill token.
        // R0 computes 40 tokens: 0.040 s. R1 (at 1 s) reuses 32 → computes 8: 0.008 s. R2 shares nothing → 0.040 s.
        let base = Array(0..<40)
        let r1 = Array(0..<32) + Array(100..<108)
        let r2 = Array(500..<540)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 40, outputTokens: 1, promptTokenIDs: base),
                    InferenceRequest(id: 1, arrivalTime: 1, promptTokens: 40, outputTokens: 1, promptTokenIDs: r1),
                    InferenceRequest(id: 2, arrivalTime: 2, promptTokens: 40, outputTokens: 1, promptTokenIDs: r2)]
        let r = try TimelineTests.run(ContinuousBatchingPolicy(), reqs, model: try LinearStepModel(beta0: 0, beta1: 0.001))
        let m = TimelineTests.byID(r)
        #expect(abs(m[0]!.ttft - 0.040) < 1e-9 && abs(m[1]!.ttft - 0.008) < 1e-9 && abs(m[2]!.ttft - 0.040) < 1e-9)
        #expect(m[1]!.cachedPromptTokens == 32 && m[2]!.cachedPromptTokens == 0)
        #expect(throws: SchedulingError.self) { try InferenceRequest(id: 9, arrivalTime: 0, promptTokens: 3, outputTokens: 1, promptTokenIDs: [1, 2]).validate() }
        let j = try TraceReader.parseJSONLines("{\"arrival_time\": 0, \"prompt_tokens\": 3, \"output_tokens\": 1, \"prompt_token_ids\": [5, 6, 7]}")
        #expect(j[0].promptTokenIDs == [5, 6, 7])
        #expect { try TraceReader.parseJSONLines("{\"arrival_time\": 0, \"prompt_tokens\": 3, \"output_tokens\": 1, \"prompt_token_ids\": [5, 6]}") } throws: { ($0 as? SchedulingError)?.line == 1 }
    }
}
