import Foundation
import KVPaging
import Testing
@testable import Scheduling

/// The plan/outcome API a real executor drives: checked against the KV manager's own state and
/// against what the requests must hold, on random open-ended arrivals.
@Suite struct StepPlanTests {
    struct Refused: Error {}
    func admitted(_ s: inout SchedulerState, _ r: InferenceRequest) throws -> Int {
        guard let slot = s.enqueue(r) else { Issue.record("request \(r.id) was refused"); throw Refused() }
        return slot
    }

    func request(_ id: Int, prompt: [Int], output: Int, at t: Double = 0, salt: UInt64? = nil) -> InferenceRequest {
        InferenceRequest(id: id, arrivalTime: t, promptTokens: prompt.count, outputTokens: output, promptTokenIDs: prompt, cacheSalt: salt)
    }

    @Test("a plan gives each sequence its tokens, first position and block table; the outcome advances it")
    func planAndOutcome() throws {
        let kv = KVCacheConfiguration(blockCount: 32, blockSize: 4, maxSequenceLength: 256, enablePrefixCaching: false, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(maxNumSeqs: 8, maxBatchedTokens: 6), kv: kv, drivingModel: policy)
        let prompt = Array(100..<109)  // 9 tokens: two chunks under a 6-token budget
        let slot = try admitted(&s, request(1, prompt: prompt, output: 3))
        var plan = StepPlan()
        var outcome = StepOutcome()
        var generated: [Int] = []
        var step = 0
        while s.activeCount > 0 {
            guard case .run = policy.schedule(&s, now: Double(step), arrivalsComplete: false) else { Issue.record("idle with work"); return }
            s.makePlan(&plan)
            let p = try #require(plan.sequences.first)
            let all = prompt + generated
            #expect(Array(plan.tokens(of: 0)) == Array(all[p.firstPosition..<(p.firstPosition + p.tokenCount)]))
            #expect(p.blockCount * 4 >= p.firstPosition + p.tokenCount, "the table covers every position written")
            outcome.removeAll()
            if p.samples {
                let t = 500 + generated.count
                generated.append(t)
                outcome.append(tokens: [t], finished: generated.count == 3)
            } else {
                outcome.append(tokens: EmptyCollection(), finished: false)
            }
            try s.completeStep(start: Double(step), end: Double(step) + 0.5, outcome: outcome)
            #expect(s.invariantViolation() == nil)
            step += 1
        }
        #expect(generated.count == 3)
        #expect(step == 4, "two prefill chunks (6 + 3 tokens; the second samples), then two decodes")
        #expect(s.kvCacheUsage.activeBlocks == 0)
        #expect(s.phase(slot) == .finished)
    }

    @Test("an outcome that does not fit the plan is refused and changes nothing")
    func badOutcome() throws {
        let kv = KVCacheConfiguration(blockCount: 16, blockSize: 4, maxSequenceLength: 64, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(), kv: kv, drivingModel: policy)
        _ = s.enqueue(request(1, prompt: [1, 2, 3], output: 2))
        _ = policy.schedule(&s, now: 0, arrivalsComplete: false)
        var o = StepOutcome()
        #expect(throws: SchedulingError.self) { try s.completeStep(start: 0, end: 1, outcome: o) }  // no entry
        o.append(tokens: [7, 8], finished: false)  // two tokens without drafts
        #expect(throws: SchedulingError.self) { try s.completeStep(start: 0, end: 1, outcome: o) }
        o.removeAll()
        o.append(tokens: [7], finished: false)
        try s.completeStep(start: 0, end: 1, outcome: o)
        #expect(s.generatedCount(0) == 1)
        // The simulator's completion is refused on a model-driving scheduler and vice versa.
        var sim = try SchedulerState(limits: SchedulerLimits(), kv: kv)
        #expect(throws: SchedulingError.self) { try sim.completeStep(start: 0, end: 1, outcome: o) }
        #expect(sim.enqueue(request(2, prompt: [1], output: 1)) != nil)
        #expect(s.enqueue(InferenceRequest(id: 3, arrivalTime: 0, promptTokens: 4, outputTokens: 1)) == nil, "a model-driving request needs its token ids")
    }

    @Test("prefix blocks are hits only once computed; a salt separates tenants")
    func deferredRegistration() throws {
        let kv = KVCacheConfiguration(blockCount: 64, blockSize: 4, maxSequenceLength: 256, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(maxNumSeqs: 8, maxBatchedTokens: 12), kv: kv, drivingModel: policy)
        let shared = Array(10..<26)  // 16 tokens = 4 blocks
        _ = try admitted(&s, request(1, prompt: shared + [90, 91], output: 1))
        var plan = StepPlan(), outcome = StepOutcome()
        // Step 1 computes 12 of the first prompt's 18 tokens: 3 of the shared blocks; the 4th is allocated, not computed.
        _ = policy.schedule(&s, now: 0, arrivalsComplete: false)
        s.makePlan(&plan)
        #expect(plan.sequences.map(\.tokenCount) == [12])
        outcome.append(tokens: EmptyCollection(), finished: false)
        try s.completeStep(start: 0, end: 1, outcome: outcome)
        // A second prompt with the same 16-token prefix (admission-time registration would hit 4 blocks).
        let b = try admitted(&s, request(2, prompt: shared + [70], output: 1))
        _ = policy.schedule(&s, now: 1, arrivalsComplete: false)
        s.makePlan(&plan)
        let planned = try #require(plan.sequences.first { $0.slot == b }, "the 6-token budget left fits the second prompt's uncached 5 tokens")
        #expect(planned.firstPosition == 12, "only the 3 computed blocks may be hits")
        outcome.removeAll()
        for p in plan.sequences { outcome.append(tokens: p.samples ? [1] : [], finished: p.samples) }
        try s.completeStep(start: 1, end: 2, outcome: outcome)
        // Every block is computed now; the same prompt under another salt still finds none of them.
        let plain = try admitted(&s, request(3, prompt: shared + [72], output: 1))  // 1 token to compute
        let salted = try admitted(&s, request(4, prompt: shared + [71], output: 1, salt: 99))  // 11 of its 17 in this step
        _ = policy.schedule(&s, now: 2, arrivalsComplete: false)
        s.makePlan(&plan)
        #expect(plan.sequences.first { $0.slot == salted }?.firstPosition == 0)
        #expect(plan.sequences.first { $0.slot == plain }?.firstPosition == 16)
        #expect(s.invariantViolation() == nil)
    }

    @Test("abort frees a waiting or running request's blocks at once")
    func abort() throws {
        let kv = KVCacheConfiguration(blockCount: 16, blockSize: 4, maxSequenceLength: 64, enablePrefixCaching: false, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(maxNumSeqs: 1), kv: kv, drivingModel: policy)
        let a = try admitted(&s, request(1, prompt: [1, 2, 3, 4, 5], output: 4))
        let b = try admitted(&s, request(2, prompt: [6, 7], output: 4))
        _ = policy.schedule(&s, now: 0, arrivalsComplete: false)
        #expect(s.runningCount == 1 && s.waitingCount == 1)
        s.beginStep()
        let waitingAborted = s.abort(b), runningAborted = s.abort(a), again = s.abort(a)
        #expect(waitingAborted, "waiting")
        #expect(runningAborted, "running")
        #expect(!again, "twice")
        #expect(s.activeCount == 0)
        #expect(s.kvCacheUsage.activeBlocks == 0)
        #expect(s.invariantViolation() == nil)
        #expect(s.abortedCount == 2)
    }

    @Test("a fork shares the blocks; the first append copies the shared partial block")
    func forkCopyOnWrite() throws {
        let kv = KVCacheConfiguration(blockCount: 16, blockSize: 4, maxSequenceLength: 64, enablePrefixCaching: false, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(), kv: kv, drivingModel: policy)
        let r = request(1, prompt: [1, 2, 3, 4, 5, 6], output: 4)
        let parent = try admitted(&s, r)
        var plan = StepPlan(), outcome = StepOutcome()
        _ = policy.schedule(&s, now: 0, arrivalsComplete: false)
        s.makePlan(&plan)
        outcome.append(tokens: [40], finished: false)
        try s.completeStep(start: 0, end: 1, outcome: outcome)
        let before = s.kvCacheUsage.activeBlocks
        var childRequest = r
        childRequest.id = 2
        let forked = s.fork(parent, as: childRequest, lastToken: 41)
        let child = try #require(forked)
        #expect(s.kvCacheUsage.activeBlocks == before, "no block is copied at the fork")
        #expect(s.tokenIDs(of: child) == [1, 2, 3, 4, 5, 6, 41])
        _ = policy.schedule(&s, now: 1, arrivalsComplete: false)
        s.makePlan(&plan)
        #expect(plan.copies.count == 1, "one of the two decodes copies the shared block holding positions 4–5")
        let tables = plan.sequences.map { Array(plan.blockTable(of: plan.sequences.firstIndex(of: $0)!)) }
        #expect(tables[0][0] == tables[1][0], "the full first block stays shared")
        #expect(tables[0][1] != tables[1][1], "the partial block is private after the copy")
        #expect(s.invariantViolation() == nil)
    }

    @Test("static batching launches a partial batch after launchAfter seconds of an open-ended stream")
    func staticLaunchTimeout() throws {
        let kv = KVCacheConfiguration(blockCount: 16, blockSize: 4, maxSequenceLength: 64, watermark: 0)
        var policy = try StaticBatchingPolicy(batchSize: 4, launchAfter: 0.5)
        var s = try SchedulerState(limits: SchedulerLimits(), kv: kv, drivingModel: policy)
        _ = s.enqueue(request(1, prompt: [1, 2], output: 1, at: 0))
        #expect(policy.schedule(&s, now: 0.1, arrivalsComplete: false) == .idle(until: 0.5))
        #expect(policy.schedule(&s, now: 0.5, arrivalsComplete: false) == .run)
        var open = try StaticBatchingPolicy(batchSize: 4)
        var t = try SchedulerState(limits: SchedulerLimits(), kv: kv, drivingModel: open)
        _ = t.enqueue(request(1, prompt: [1, 2], output: 1, at: 0))
        #expect(open.schedule(&t, now: 100, arrivalsComplete: false) == .idle(until: nil), "without a timeout it waits for a full batch")
    }

    @Test("random open-ended arrivals, random finishes and aborts: invariants hold and every block comes back", arguments: [1, 2, 3])
    func randomDriving(seed: UInt64) throws {
        var rng = SimulationRandom(seed: seed)
        let kv = KVCacheConfiguration(blockCount: 40, blockSize: 4, maxSequenceLength: 128, watermark: 0)
        var policy = ContinuousBatchingPolicy()
        var s = try SchedulerState(limits: SchedulerLimits(maxNumSeqs: 6, maxBatchedTokens: 24), kv: kv, drivingModel: policy)
        var live: [Int: (limit: Int, got: Int)] = [:]
        var plan = StepPlan(), outcome = StepOutcome()
        var next = 0
        for step in 0..<600 {
            if step < 400, rng.unit() < 0.3 {
                let n = 1 + Int(rng.unit() * 30)
                let prompt = (0..<n).map { _ in Int(rng.unit() * 8) }  // a tiny alphabet: many shared prefixes
                let out = 1 + Int(rng.unit() * 20)
                next += 1
                if let slot = s.enqueue(request(next, prompt: prompt, output: out, at: Double(step))) { live[slot] = (out, 0) }
            }
            if rng.unit() < 0.05, let victim = live.keys.sorted().randomElement(using: &rng) {
                let aborted = s.abort(victim)
                #expect(aborted)
                live.removeValue(forKey: victim)
            }
            guard case .run = policy.schedule(&s, now: Double(step), arrivalsComplete: false) else { continue }
            s.makePlan(&plan)
            outcome.removeAll()
            for p in plan.sequences {
                if p.samples {
                    var entry = live[p.slot]!
                    entry.got += 1
                    live[p.slot] = entry
                    let done = entry.got == entry.limit || rng.unit() < 0.05
                    outcome.append(tokens: [Int(rng.unit() * 8)], finished: done)
                    if done { live.removeValue(forKey: p.slot) }
                } else {
                    outcome.append(tokens: EmptyCollection(), finished: false)
                }
            }
            try s.completeStep(start: Double(step), end: Double(step) + 0.5, outcome: outcome)
            if let v = s.invariantViolation() { Issue.record("step \(step): \(v)"); return }
            s.discardHistory()
        }
        for slot in Array(live.keys) { s.abort(slot) }
        #expect(s.activeCount == 0)
        #expect(s.kvCacheUsage.activeBlocks == 0)
    }
}
