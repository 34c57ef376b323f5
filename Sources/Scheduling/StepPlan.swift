import KVPaging

/// What one scheduled step asks an executor to compute, sequence by sequence.
///
/// The scheduler builds it after a policy returns ``SchedulingDecision/run``
/// (``SchedulerState/makePlan(_:)``); an executor runs it and answers with a
/// ``StepOutcome``. The simulator prices the same step with an
/// ``ExecutionModel`` instead. Buffers are kept between steps: reuse one plan.
///
/// Per sequence the executor computes the K/V of `tokenCount` tokens at
/// positions `firstPosition ..< firstPosition + tokenCount` through the block
/// table, and — when ``Sequence/samples`` — draws the next token from the last
/// position's logits. A decode may also verify up to ``Sequence/draftTokens``
/// speculative tokens: their K/V slots are reserved.
public struct StepPlan: Sendable {
    public struct Sequence: Sendable, Hashable {
        /// The request's slot in the ``SchedulerState`` (valid until it finishes or is aborted).
        public var slot: Int
        /// ``InferenceRequest/id``.
        public var requestID: Int
        /// Position of the first token to compute (tokens before it are in the K/V cache).
        public var firstPosition: Int
        /// Tokens to compute this step: a prefill chunk, or 1 for a decode.
        public var tokenCount: Int
        /// K/V slots reserved past `tokenCount` for speculative draft tokens (decodes only).
        public var draftTokens: Int
        /// Whether this step computes the sequence's last pending token, so it emits a token.
        public var samples: Bool
        public var isDecode: Bool
        /// Where the sequence's tokens start in ``StepPlan/tokens``.
        public var tokenStart: Int
        /// Where its block table starts in ``StepPlan/blockTables``, and its length in blocks.
        public var blockTableStart: Int
        public var blockCount: Int
    }

    /// The scheduled sequences, in batch order.
    public internal(set) var sequences: [Sequence] = []
    /// Token ids to compute, concatenated in sequence order (model-driving schedulers only).
    public internal(set) var tokens: [Int] = []
    /// Block tables of the scheduled sequences, concatenated (physical block ids).
    public internal(set) var blockTables: [Int] = []
    /// Block copies to perform before the step runs (copy-on-write of shared partial blocks).
    public internal(set) var copies: [BlockCopy] = []

    public init() {}

    /// The tokens of sequence `i`.
    public func tokens(of i: Int) -> ArraySlice<Int> {
        let s = sequences[i]
        return tokens[s.tokenStart..<(s.tokenStart + s.tokenCount)]
    }

    /// The block table of sequence `i`.
    public func blockTable(of i: Int) -> ArraySlice<Int> {
        let s = sequences[i]
        return blockTables[s.blockTableStart..<(s.blockTableStart + s.blockCount)]
    }

    mutating func removeAll() {
        sequences.removeAll(keepingCapacity: true)
        tokens.removeAll(keepingCapacity: true)
        blockTables.removeAll(keepingCapacity: true)
        copies.removeAll(keepingCapacity: true)
    }
}

/// What an executor reports for a ``StepPlan``: per sequence, the tokens it emitted and whether the
/// request is finished (EOS, a stop string or token, its length limit, or an error of its own).
///
/// Fill it in plan order with ``append(tokens:finished:)``, one call per planned sequence.
public struct StepOutcome: Sendable {
    /// Tokens emitted per planned sequence: 0 for a prefill chunk that does not sample, otherwise
    /// 1 + the accepted draft tokens.
    public private(set) var counts: [Int] = []
    /// The emitted token ids, concatenated.
    public private(set) var tokens: [Int] = []
    public private(set) var finished: [Bool] = []

    public init() {}

    /// Starts a new outcome, keeping the buffers.
    public mutating func removeAll() {
        counts.removeAll(keepingCapacity: true)
        tokens.removeAll(keepingCapacity: true)
        finished.removeAll(keepingCapacity: true)
    }

    /// Records the next planned sequence's result.
    public mutating func append(tokens new: some Collection<Int>, finished done: Bool) {
        counts.append(new.count)
        tokens.append(contentsOf: new)
        finished.append(done)
    }
}

extension SchedulerState {
    /// Creates a scheduler that drives a real executor: requests must carry their prompt token ids,
    /// each step's outcome (tokens, finish) comes from ``completeStep(start:end:outcome:)``, and prefix
    /// caching registers a block only once its K/V is computed.
    public init(limits: SchedulerLimits, kv: KVCacheConfiguration, drivingModel policy: some BatchingPolicy,
                sloClasses: [ServiceLevelObjective] = [ServiceLevelObjective()]) throws {
        guard limits.preemptionMode == .recompute else {
            throw SchedulingError(.invalidConfiguration, "a model-driving scheduler preempts by recomputation; swap preemption needs host K/V storage, which the engine does not keep — use preemptionMode recompute")
        }
        try self.init(limits: limits, kv: kv, allocator: .paged, sloClasses: sloClasses)
        drivesModel = true
        usesPriority = policy.usesPriority
        usesTokenBudgetForPrefill = policy.usesTokenBudget
    }

    /// Holds a running request out of the batch (its consumer is behind) or lets it run again.
    public mutating func setHeld(_ slot: Int, _ held: Bool) { slots[slot].held = held }

    /// Drops the per-request records and inter-token samples kept for reports: a long-running engine
    /// calls this so they do not grow without bound (it keeps its own metrics).
    public mutating func discardHistory() {
        records.removeAll(keepingCapacity: true)
        rejected.removeAll(keepingCapacity: true)
        itl.removeAll(keepingCapacity: true)
    }

    /// Preemptions so far.
    public var preemptions: Int { preemptionCount }
    /// Times `slot`'s request was preempted.
    public func preemptions(of slot: Int) -> Int { slots[slot].preemptions }
    /// Prompt tokens `slot`'s request found in the prefix cache at its first admission.
    public func cachedPromptTokens(of slot: Int) -> Int { slots[slot].cachedTokens }
    /// The paged KV manager's prefix-cache counters (`nil` for the contiguous allocator).
    public var prefixCacheStats: PrefixCacheStats? { (kv as? KVBlockManager)?.prefixCacheStats }

    /// The token ids of `slot`'s request: its prompt, then every token generated so far.
    public func tokenIDs(of slot: Int) -> [Int] { tokenIDs[slot] }

    /// Tokens generated so far for `slot`.
    public func generatedCount(_ slot: Int) -> Int { slots[slot].generated }

    /// Writes the step the policy just built into `plan`: tokens, positions, block tables and
    /// the copy-on-write copies to perform first.
    public func makePlan(_ plan: inout StepPlan) {
        plan.removeAll()
        plan.copies.append(contentsOf: pendingCopies)
        for e in batch {
            let s = slots[e.slot]
            let first = s.computed
            let tokenStart = plan.tokens.count
            if drivesModel {
                plan.tokens.append(contentsOf: tokenIDs[e.slot][first..<(first + e.tokens)])
            }
            let tableStart = plan.blockTables.count
            let blocks = kv.schedulerAppendBlockTable(SequenceID(s.seq), to: &plan.blockTables)
            plan.sequences.append(StepPlan.Sequence(
                slot: e.slot, requestID: s.request.id, firstPosition: first, tokenCount: e.tokens,
                draftTokens: e.draftTokens, samples: first + e.tokens == s.request.promptTokens + s.generated,
                isDecode: e.isDecode, tokenStart: tokenStart, blockTableStart: tableStart, blockCount: blocks))
        }
    }

    /// Applies a step an executor ran from `start` to `end` (seconds on the owner's clock): advances
    /// every scheduled sequence by its computed and accepted tokens, appends the emitted tokens,
    /// registers newly computed full blocks in the prefix cache, and finishes the requests the
    /// outcome marks finished (freeing their KV). Checks the outcome against the batch first and
    /// changes nothing when it does not fit.
    public mutating func completeStep(start: Double, end: Double, outcome: StepOutcome) throws {
        guard drivesModel else {
            throw SchedulingError(.invalidArgument, "completeStep(outcome:) is for schedulers created with init(limits:kv:drivingModel:); a simulated step completes with completeStep(start:end:)")
        }
        guard outcome.counts.count == batch.count else {
            throw SchedulingError(.invalidArgument, "the outcome reports \(outcome.counts.count) sequences for a step of \(batch.count); append one result per planned sequence, in plan order")
        }
        for (k, e) in batch.enumerated() {
            let s = slots[e.slot]
            let samples = s.computed + e.tokens == s.request.promptTokens + s.generated
            let n = outcome.counts[k]
            if samples {
                guard n >= 1 || outcome.finished[k], n <= 1 + e.draftTokens else {
                    throw SchedulingError(.invalidArgument, "request \(s.request.id) emitted \(n) tokens; a sampling step emits 1 … \(1 + e.draftTokens) (1 + accepted drafts), or 0 when it finishes the request")
                }
            } else if n != 0 {
                throw SchedulingError(.invalidArgument, "request \(s.request.id) emitted \(n) tokens in a prefill chunk that does not reach its last prompt token; report 0")
            }
            guard s.generated + n <= s.request.outputTokens else {
                throw SchedulingError(.invalidArgument, "request \(s.request.id) would hold \(s.generated + n) output tokens, past its limit of \(s.request.outputTokens); finish it at the limit")
            }
        }
        beginRecording(start: start, end: end)
        var offset = 0
        var sameGap = 0
        var anyFinished = false
        for (k, e) in batch.enumerated() {
            let i = e.slot
            let n = outcome.counts[k]
            let accepted = n > 1 ? n - 1 : 0
            if slots[i].firstScheduled < 0 { slots[i].firstScheduled = start }
            slots[i].computed += e.tokens + accepted
            if n > 0 {
                tokenIDs[i].append(contentsOf: outcome.tokens[offset..<(offset + n)])
                offset += n
                sameGap += recordTokens(i, count: n, start: start, end: end)
            }
            let id = SequenceID(slots[i].seq)
            let computed = slots[i].computed
            tokenIDs[i].withUnsafeBufferPointer { t in
                kv.schedulerRegisterComputed(id, tokens: UnsafeBufferPointer(rebasing: t[..<computed]))
            }
            if outcome.finished[k] {
                slots[i].phase = .finished
                anyFinished = true
                try? kv.release(id)
                finish(slots[i], at: end)
                tokenIDs[i] = []
            }
        }
        endRecording(start: start, end: end, sameGap: sameGap, anyFinished: anyFinished)
    }

    /// Removes a request wherever it is (waiting, preempted or running) and frees its KV blocks.
    /// Call between steps (not between a policy's `schedule` and the step's completion).
    /// Returns false when `slot` holds no live request.
    @discardableResult
    public mutating func abort(_ slot: Int) -> Bool {
        guard slot >= 0, slot < slots.count else { return false }
        let phase = slots[slot].phase
        let id = SequenceID(slots[slot].seq)
        switch phase {
        case .waiting, .preempted:
            guard waiting.remove(slot: slot) else { return false }
            if slots[slot].swapped { try? kv.release(id) }
        case .running:
            unschedule(slot)
            if let i = running.firstIndex(of: slot) { running.remove(at: i) }
            try? kv.release(id)
        case .pending, .finished, .rejected:
            return false
        }
        slots[slot].phase = .finished
        if drivesModel { tokenIDs[slot] = [] }
        freeSlots.append(slot)
        abortedCount += 1
        return true
    }

    /// Starts another sample of a running request that is about to decode (parallel sampling, `n > 1`):
    /// the new request shares every K/V block of `slot` — a shared partial block is copied on the
    /// first append (see ``pendingCopies``) — and differs only in its last, not yet computed token,
    /// `lastToken`. Returns the new slot, or `nil` when `slot` is not decoding.
    public mutating func fork(_ slot: Int, as request: InferenceRequest, lastToken: Int) -> Int? {
        guard drivesModel, slots[slot].phase == .running, isDecoding(slot), !slots[slot].swapped else { return nil }
        var child = slots[slot]
        child.request = request
        child.seq = nextSeq
        guard kv.schedulerFork(SequenceID(slots[slot].seq), into: SequenceID(nextSeq)) else { return nil }
        nextSeq += 1
        var tokens = tokenIDs[slot]
        tokens[tokens.count - 1] = lastToken
        let index: Int
        if let f = freeSlots.popLast() { slots[f] = child; index = f } else { slots.append(child); index = slots.count - 1 }
        if index >= tokenIDs.count { tokenIDs.append([]) }
        tokenIDs[index] = tokens
        running.append(index)
        return index
    }
}

extension WaitingQueue {
    /// Removes `slot` from the queue (O(n)); false when it is not queued.
    mutating func remove(slot: Int) -> Bool {
        var rest: [(key: Key, slot: Int)] = []
        var found = false
        while let top = popEntry() {
            if top.slot == slot && !found { found = true } else { rest.append(top) }
        }
        for e in rest { push(e.key, slot: e.slot) }
        return found
    }
}
