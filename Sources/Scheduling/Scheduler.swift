import KVPaging

/// How a running request gives up its KV memory when the scheduler preempts it.
public enum PreemptionMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Free its blocks; later re-admit it with its prompt plus the tokens generated so far and
    /// recompute their KV (prefix-cache hits shorten that).
    case recompute
    /// Copy its blocks to the host swap pool and back later (needs `hostBlockCount > 0` and the
    /// paged manager); falls back to recomputation when the host pool is full.
    case swap
}

/// The limits every policy schedules under.
public struct SchedulerLimits: Sendable, Hashable, Codable {
    /// Most sequences in one step (vLLM `max_num_seqs`). Default 256.
    public var maxNumSeqs: Int
    /// Most tokens in one step, prefill and decode together (vLLM `max_num_batched_tokens`). Default 8192.
    public var maxBatchedTokens: Int
    /// Split long prompts into chunks that fill the token budget (chunked prefill). Default on.
    public var chunkedPrefill: Bool
    public var preemptionMode: PreemptionMode

    public init(maxNumSeqs: Int = 256, maxBatchedTokens: Int = 8192, chunkedPrefill: Bool = true, preemptionMode: PreemptionMode = .recompute) {
        self.maxNumSeqs = maxNumSeqs
        self.maxBatchedTokens = maxBatchedTokens
        self.chunkedPrefill = chunkedPrefill
        self.preemptionMode = preemptionMode
    }

    public func validate() throws {
        guard maxNumSeqs >= 1, maxNumSeqs <= 1 << 20 else {
            throw SchedulingError(.invalidConfiguration, "maxNumSeqs is \(maxNumSeqs); use 1 … 1,048,576 sequences per step")
        }
        guard maxBatchedTokens >= 1, maxBatchedTokens <= 1 << 24 else {
            throw SchedulingError(.invalidConfiguration, "maxBatchedTokens is \(maxBatchedTokens); use 1 … 16,777,216 tokens per step")
        }
    }
}

/// One entry of a step's batch: a request (by scheduler slot) and how many tokens it runs.
public struct BatchEntry: Sendable, Hashable {
    /// The request's slot in the ``SchedulerState``.
    public var slot: Int
    /// Tokens this step processes for it (1 for a decode, a chunk for prefill).
    public var tokens: Int
    public var isDecode: Bool
    /// Speculative draft tokens verified with this decode (0 without speculative decoding).
    public var draftTokens: Int = 0
}

/// What a policy decided for the next step.
public enum SchedulingDecision: Sendable, Hashable {
    /// Run the batch now in ``SchedulerState/batch``.
    case run
    /// Nothing to run; ask again at this time (a batching timeout) or when a request arrives (`nil`).
    case idle(until: Double?)
}

/// A batching policy: given the scheduler state at a step boundary, fill the next step's batch.
///
/// Policies see the queues and call ``SchedulerState`` operations (admit,
/// schedule tokens, preempt) that keep the request lifecycle and the KV cache
/// consistent; they only decide *who* runs and *how many tokens*.
/// Implementations: ``NoBatchingPolicy``, ``StaticBatchingPolicy``,
/// ``DynamicBatchingPolicy``, ``ContinuousBatchingPolicy``, ``PriorityBatchingPolicy``.
public protocol BatchingPolicy: Sendable {
    /// A short name for reports ("continuous").
    var name: String { get }
    /// Orders the waiting queue by priority (true) or arrival only (false).
    var usesPriority: Bool { get }
    /// Whether prompts must fit the per-step token budget (`maxBatchedTokens`); request-level
    /// batching prefills whole prompts regardless.
    var usesTokenBudget: Bool { get }
    /// Fills `state.batch` for a step starting at `now` and returns ``SchedulingDecision/run``, or
    /// returns ``SchedulingDecision/idle(until:)``. `arrivalsComplete` is true once no more requests
    /// will arrive (a policy waiting to fill a batch must then launch what it has).
    mutating func schedule(_ state: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision
}

/// The KV operations the scheduler needs beyond ``KVCacheAllocator``: preemption by swapping.
/// The paged `KVBlockManager` swaps; the contiguous baseline does not.
protocol SchedulerKVCache: KVCacheAllocator {
    /// Swaps `id` out; `nil` when unsupported or the host pool is full. Returns swapped tokens.
    mutating func schedulerSwapOut(_ id: SequenceID) -> Int?
    /// Swaps `id` back in; false when device blocks are short.
    mutating func schedulerSwapIn(_ id: SequenceID) -> Bool
    var prefixHitTokens: Int { get }
    /// Admits with prefix-cache registration deferred until the blocks are reported computed (engine mode).
    mutating func schedulerAdmit(_ id: SequenceID, prompt: KVPrompt, deferRegistration: Bool) throws(KVPagingError) -> AdmissionOutcome
    /// Registers the computed full blocks of `id` (engine mode); `tokens` are its first computed tokens.
    mutating func schedulerRegisterComputed(_ id: SequenceID, tokens: UnsafeBufferPointer<Int>)
    /// Appends the block table of `id` to `table`; returns its block count.
    func schedulerAppendBlockTable(_ id: SequenceID, to table: inout [Int]) -> Int
    /// Shares every block of `parent` with a new sequence `child` (copy-on-write); false when unsupported.
    mutating func schedulerFork(_ parent: SequenceID, into child: SequenceID) -> Bool
}

extension KVBlockManager: SchedulerKVCache {
    mutating func schedulerSwapOut(_ id: SequenceID) -> Int? {
        guard configuration.hostBlockCount > 0, let n = try? length(of: id),
              case .swapped = try? swapOut([id]) else { return nil }
        return n
    }
    mutating func schedulerSwapIn(_ id: SequenceID) -> Bool {
        if case .swapped = try? swapIn([id]) { return true }
        return false
    }
    var prefixHitTokens: Int { prefixCacheStats.hitTokens }
    mutating func schedulerAdmit(_ id: SequenceID, prompt: KVPrompt, deferRegistration: Bool) throws(KVPagingError) -> AdmissionOutcome {
        try admit(id, prompt: prompt, registration: deferRegistration ? .whenComputed : .onAdmission)
    }
    mutating func schedulerRegisterComputed(_ id: SequenceID, tokens: UnsafeBufferPointer<Int>) {
        try? registerComputed(id, tokens: tokens)
    }
    func schedulerAppendBlockTable(_ id: SequenceID, to table: inout [Int]) -> Int {
        guard let blocks = try? blockTable(of: id) else { return 0 }
        table.append(contentsOf: blocks)
        return blocks.count
    }
    mutating func schedulerFork(_ parent: SequenceID, into child: SequenceID) -> Bool {
        (try? fork(parent, into: child)) != nil
    }
}

extension ContiguousKVAllocator: SchedulerKVCache {
    mutating func schedulerSwapOut(_ id: SequenceID) -> Int? { nil }
    mutating func schedulerSwapIn(_ id: SequenceID) -> Bool { false }
    var prefixHitTokens: Int { 0 }
    mutating func schedulerAdmit(_ id: SequenceID, prompt: KVPrompt, deferRegistration: Bool) throws(KVPagingError) -> AdmissionOutcome {
        try admit(id, prompt: prompt)
    }
    mutating func schedulerRegisterComputed(_ id: SequenceID, tokens: UnsafeBufferPointer<Int>) {}
    func schedulerAppendBlockTable(_ id: SequenceID, to table: inout [Int]) -> Int {
        guard let blocks = try? blockTable(of: id) else { return 0 }
        table.append(contentsOf: blocks)
        return blocks.count
    }
    mutating func schedulerFork(_ parent: SequenceID, into child: SequenceID) -> Bool { false }
}

/// Which KV allocator backs the scheduler.
public enum KVAllocatorKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// PagedAttention-style blocks allocated on demand (`KVBlockManager`).
    case paged
    /// The pre-paging baseline: reserve the model's maximum sequence length contiguously at admission,
    /// because the output length is unknown until the request ends (`ContiguousKVAllocator`).
    case contiguous
}

/// The scheduler's state: request table, waiting queue, running set, the KV cache and the step's batch.
///
/// A value-type state machine with no clock of its own: the owner (the
/// simulator, or an engine) passes the time into every call. Requests live in
/// recycled slots; a slot index is valid until its request finishes.
public struct SchedulerState: Sendable {
    /// Per-request progress.
    struct Slot: Sendable {
        var request: InferenceRequest
        var phase: RequestPhase
        /// Unique sequence number (KV sequence id, FCFS tie-breaker).
        var seq: Int
        /// Tokens whose KV has been computed.
        var computed: Int
        /// Output tokens produced.
        var generated: Int
        /// KV token slots held (allocated at admission and by appends).
        var kvTokens: Int
        var swapped: Bool
        var firstScheduled: Double
        var firstToken: Double
        var lastToken: Double
        var preemptions: Int
        var cachedTokens: Int
        var admittedStep: Int
        /// Output tokens at the latest admission (a preemption before more are produced is fruitless).
        var generatedAtAdmission: Int
        /// Held back by its executor (a consumer that does not keep up): scheduled as if it ran, but
        /// left out of the batch.
        var held = false
    }

    public let limits: SchedulerLimits
    public let kvConfiguration: KVCacheConfiguration
    var kv: any SchedulerKVCache
    var slots: [Slot] = []
    var freeSlots: [Int] = []
    var waiting = WaitingQueue()
    /// Slots of running requests, in admission order.
    public internal(set) var running: [Int] = []
    /// The batch of the step being built or run.
    public internal(set) var batch: [BatchEntry] = []
    public internal(set) var shape = StepShape()
    var nextSeq = 0
    var usesPriority = false
    /// Steps completed.
    public internal(set) var stepCount = 0
    /// Whether a preemption happened while building the current batch (no admissions then).
    public internal(set) var preemptedThisStep = false
    let replica: Int

    // Metrics
    /// Finished requests, in completion order.
    public internal(set) var records: [RequestRecord] = []
    /// Requests refused at arrival, with the reason.
    public internal(set) var rejected: [RejectedRequest] = []
    var itl: [(value: Double, count: Int)] = []
    var batchSizeHistogram: [Int] = []
    var preemptionCount = 0
    /// Preemptions of a request that was re-admitted after a preemption and produced no token since (thrashing).
    public internal(set) var fruitlessPreemptions = 0
    /// Output tokens produced, counted step by step.
    public internal(set) var tokensEmitted = 0
    var promptTokensAdmitted = 0
    var cachedTokensTotal = 0
    var busyTime = 0.0
    var sloClasses: [ServiceLevelObjective]
    /// Speculative decoding: decodes verify γ draft tokens and emit 1 + (accepted) tokens.
    public var speculation: SpeculativeDecodingModel?
    /// Draws acceptances of speculative draft tokens (seeded: runs are reproducible).
    var rng = SimulationRandom(seed: 0x5EC0DE)

    // Model-driving mode (see ``init(limits:kv:drivingModel:)``)
    /// Whether an executor runs real steps: requests carry token ids, outcomes come from the executor.
    public internal(set) var drivesModel = false
    /// Per slot: the prompt's token ids followed by every token generated so far (model-driving mode).
    var tokenIDs: [[Int]] = []
    /// Copy-on-write block copies the appends of the step being built require (performed before it runs).
    public internal(set) var pendingCopies: [BlockCopy] = []
    /// Requests removed by ``abort(_:)``.
    public internal(set) var abortedCount = 0

    /// Creates an empty scheduler over a fresh KV cache.
    public init(limits: SchedulerLimits, kv: KVCacheConfiguration, allocator: KVAllocatorKind = .paged,
                sloClasses: [ServiceLevelObjective] = [ServiceLevelObjective()], replica: Int = 0) throws {
        try limits.validate()
        if allocator == .contiguous && kv.blocks(forTokens: kv.maxSequenceLength) > kv.blockCount {
            throw SchedulingError(.invalidConfiguration, "the contiguous allocator reserves maxSequenceLength (\(kv.maxSequenceLength) tokens = \(kv.blocks(forTokens: kv.maxSequenceLength)) blocks) per request, more than the \(kv.blockCount)-block pool; lower the maximum sequence length")
        }
        do {
            switch allocator {
            case .paged: self.kv = try KVBlockManager(kv)
            case .contiguous:
                self.kv = try ContiguousKVAllocator(kv, reservation: .maxSequenceLength)
            }
        } catch {
            throw SchedulingError(.invalidConfiguration, "KV cache: \(error.message)")
        }
        if limits.preemptionMode == .swap && (allocator != .paged || kv.hostBlockCount == 0) {
            throw SchedulingError(.invalidConfiguration, "swap preemption needs the paged allocator and a host swap pool (hostBlockCount > 0)")
        }
        for c in sloClasses { try c.validate() }
        guard !sloClasses.isEmpty else { throw SchedulingError(.invalidConfiguration, "give at least one SLO class (an empty objective checks nothing)") }
        self.limits = limits
        self.kvConfiguration = kv
        self.sloClasses = sloClasses
        self.replica = replica
    }

    // MARK: Queries for policies

    /// Requests waiting (including preempted ones).
    public var waitingCount: Int { waiting.count }
    public var runningCount: Int { running.count }
    /// Requests in the system (waiting or running).
    public var activeCount: Int { waiting.count + running.count }
    /// The slot at the head of the waiting queue (next by priority, then arrival).
    public var headOfQueue: Int? { waiting.peek }
    /// Arrival time of the request that has waited longest.
    public var oldestWaitingArrival: Double? { waiting.oldestArrival(ordersByPriority: usesPriority) }

    public func request(_ slot: Int) -> InferenceRequest { slots[slot].request }
    public func phase(_ slot: Int) -> RequestPhase { slots[slot].phase }
    /// Tokens still to compute before the request emits its next token (1 for a decode).
    @inline(__always)
    public func pendingTokens(_ slot: Int) -> Int {
        slots[slot].request.promptTokens + slots[slot].generated - slots[slot].computed
    }
    /// Whether the request's next step is a decode (its prompt and previous outputs are all computed).
    @inline(__always)
    public func isDecoding(_ slot: Int) -> Bool {
        let g = slots[slot].generated
        return g > 0 && slots[slot].computed == slots[slot].request.promptTokens + g - 1
    }
    /// Tokens the request must compute at most in its first step after admission (no cache hits assumed).
    public func tokensToAdmit(_ slot: Int) -> Int {
        let s = slots[slot]
        return s.swapped ? s.request.promptTokens + s.generated - s.computed : s.request.promptTokens + s.generated
    }
    /// Fraction of device KV blocks held by sequences.
    public var kvUsage: Double {
        let u = kv.usage
        return u.totalBlocks == 0 ? 0 : Double(u.activeBlocks) / Double(u.totalBlocks)
    }
    /// The KV cache's usage snapshot.
    public var kvCacheUsage: KVCacheUsage { kv.usage }

    // MARK: Arrival

    /// Queues an arriving request; rejects it (with a reason) when it could never be served.
    /// Returns its slot, or `nil` when rejected.
    @discardableResult
    public mutating func enqueue(_ request: InferenceRequest) -> Int? {
        if let reason = rejectionReason(request) {
            rejected.append(RejectedRequest(id: request.id, arrivalTime: request.arrivalTime, reason: reason))
            return nil
        }
        let slot = Slot(request: request, phase: .waiting, seq: nextSeq, computed: 0, generated: 0, kvTokens: 0, swapped: false,
                        firstScheduled: -1, firstToken: -1, lastToken: -1, preemptions: 0, cachedTokens: 0, admittedStep: -1, generatedAtAdmission: 0)
        nextSeq += 1
        let index: Int
        if let f = freeSlots.popLast() { slots[f] = slot; index = f } else { slots.append(slot); index = slots.count - 1 }
        if drivesModel {
            if index >= tokenIDs.count { tokenIDs.append([]) }
            tokenIDs[index] = request.promptTokenIDs ?? []
            tokenIDs[index].reserveCapacity(request.promptTokens + request.outputTokens)
        }
        waiting.push(key(index), slot: index)
        return index
    }

    /// Why `request` could never be served by this scheduler (larger than the context or the KV pool),
    /// or `nil` when it could. Pure: the same check ``enqueue(_:)`` makes.
    public func rejectionReason(for request: InferenceRequest) -> String? { rejectionReason(request) }

    func rejectionReason(_ r: InferenceRequest) -> String? {
        let c = kvConfiguration
        if drivesModel && r.promptTokenIDs?.count != r.promptTokens {
            return "a scheduler driving a model needs the prompt's \(r.promptTokens) token ids (promptTokenIDs); give them"
        }
        // The most KV the request ever holds: the prompt plus every output token but the last.
        let peak = r.promptTokens + r.outputTokens - 1
        if r.promptTokens + r.outputTokens > c.maxSequenceLength {
            return "prompt \(r.promptTokens) + output \(r.outputTokens) tokens exceed the model's context of \(c.maxSequenceLength) tokens"
        }
        let usable = c.blockCount - c.watermarkBlocks
        if c.blocks(forTokens: peak) > usable {
            return "needs \(c.blocks(forTokens: peak)) KV blocks of \(c.blockSize) tokens at its longest, but the pool has only \(usable) usable blocks (\(c.blockCount) minus a watermark of \(c.watermarkBlocks)); it can never run"
        }
        if !limits.chunkedPrefill && peak > limits.maxBatchedTokens && usesTokenBudgetForPrefill {
            return "prompt (with recomputation after a preemption) needs up to \(peak) tokens in one step without chunked prefill, above maxBatchedTokens \(limits.maxBatchedTokens); enable chunked prefill or raise the budget"
        }
        return nil
    }

    var usesTokenBudgetForPrefill = true

    @inline(__always)
    func key(_ slot: Int) -> WaitingQueue.Key {
        let s = slots[slot]
        return WaitingQueue.Key(priority: usesPriority ? s.request.priority : 0, arrival: s.request.arrivalTime, seq: s.seq)
    }

    // MARK: Building a step

    /// Starts building a new step: clears the batch.
    public mutating func beginStep() {
        batch.removeAll(keepingCapacity: true)
        shape = StepShape()
        preemptedThisStep = false
        if drivesModel { pendingCopies.removeAll(keepingCapacity: true) }
    }

    /// Outcome of an admission attempt.
    public enum AdmissionResult: Sendable, Hashable {
        /// The request is now running; prefix-cache hits covered `cachedTokens` prompt tokens.
        case admitted(cachedTokens: Int)
        /// Not enough KV memory now.
        case noMemory
        /// The sequence limit is reached.
        case noSequenceSlot
    }

    /// Moves the head of the waiting queue into the running set, allocating its KV (or swapping it back in).
    public mutating func admitHead(now: Double) -> AdmissionResult {
        guard let slot = waiting.peek else { return .noMemory }
        guard running.count < limits.maxNumSeqs else { return .noSequenceSlot }
        var s = slots[slot]
        let id = SequenceID(s.seq)
        if s.swapped {
            guard kv.schedulerSwapIn(id) else { return .noMemory }
            s.swapped = false
            shape.swapInTokens += s.kvTokens
        } else {
            let length = s.request.promptTokens + s.generated
            let prompt = kvPrompt(s, slot: slot, length: length)
            let outcome: AdmissionOutcome
            do { outcome = try kv.schedulerAdmit(id, prompt: prompt, deferRegistration: drivesModel) } catch {
                // Only reachable through a scheduler bug (duplicate id); report as no memory rather than crash.
                return .noMemory
            }
            guard case let .admitted(a) = outcome else { return .noMemory }
            s.kvTokens = length
            // Cached tokens are already computed; at least one token is always left to compute.
            s.computed = min(a.cachedTokens, length - 1)
            if s.preemptions == 0 {
                s.cachedTokens = s.computed
                cachedTokensTotal += s.computed
                promptTokensAdmitted += s.request.promptTokens
            }
        }
        _ = waiting.pop()
        s.phase = .running
        s.admittedStep = stepCount
        s.generatedAtAdmission = s.generated
        slots[slot] = s
        running.append(slot)
        return .admitted(cachedTokens: s.computed)
    }

    func kvPrompt(_ s: Slot, slot: Int, length: Int) -> KVPrompt {
        let salt = s.request.cacheSalt.map { CacheSalt(rawValue: $0) } ?? .none
        if drivesModel {
            // Real ids for every position: the prompt and the tokens generated so far.
            return .tokens(Array(tokenIDs[slot].prefix(length)), salt: salt, maxNewTokens: s.request.outputTokens - s.generated)
        }
        if let ids = s.request.promptTokenIDs, kvConfiguration.enablePrefixCaching {
            // Real prompt ids; generated tokens (recomputation after a preemption) get ids unique to the request.
            var tokens = ids
            for i in ids.count..<max(ids.count, length) {
                tokens.append(Int(truncatingIfNeeded: mix(UInt64(s.seq) &+ 0xA11CE, UInt64(i)) % 32_000) + 1 << 40)
            }
            return .tokens(Array(tokens.prefix(length)), salt: salt, maxNewTokens: s.request.outputTokens - s.generated)
        }
        guard let prefix = s.request.sharedPrefix, kvConfiguration.enablePrefixCaching else {
            return .length(length, maxNewTokens: s.request.outputTokens - s.generated)
        }
        // Synthetic token ids: the shared prefix is identical within its group; the rest is unique to the request.
        var tokens = [Int]()
        tokens.reserveCapacity(length)
        for i in 0..<length {
            if i < prefix.length {
                tokens.append(Int(truncatingIfNeeded: mix(UInt64(prefix.group) &+ 0x5EED, UInt64(i)) % 32_000))
            } else {
                tokens.append(Int(truncatingIfNeeded: mix(UInt64(s.seq) &+ 0xA11CE, UInt64(i)) % 32_000) + 32_000)
            }
        }
        return .tokens(tokens, salt: salt, maxNewTokens: s.request.outputTokens - s.generated)
    }

    /// Adds `tokens` of `slot` (a running request) to the batch, growing its KV when needed.
    /// Returns false when the KV cache has no block for the growth (preempt someone, then retry).
    public mutating func schedule(_ slot: Int, tokens: Int) -> Bool {
        if slots[slot].held { return true }
        let computed = slots[slot].computed, kvTokens = slots[slot].kvTokens
        let prompt = slots[slot].request.promptTokens, generated = slots[slot].generated
        let isDecode = generated > 0 && computed == prompt + generated - 1
        // Speculative decoding: a decode also verifies up to γ draft tokens, never past the output.
        let draft = isDecode ? min(speculation?.lookahead ?? 0, slots[slot].request.outputTokens - generated - 1) : 0
        let need = computed + tokens + draft - kvTokens
        if need > 0 {
            // Reserve up to the end of the block the slots land in (never past the request's last
            // KV token): the manager allocates exactly the blocks token-by-token appends would, at
            // the same step, with one call per block instead of one per token.
            let bs = kvConfiguration.blockSize
            let end = kvTokens + need
            let blockEnd = (end + bs - 1) / bs * bs
            let maxTokens = prompt + slots[slot].request.outputTokens - 1
            let count = max(need, min(blockEnd, maxTokens) - kvTokens)
            let outcome: AppendOutcome
            do { outcome = try kv.appendSlots(SequenceID(slots[slot].seq), count: count) } catch { return false }
            guard case let .appended(result) = outcome else { return false }
            if let copy = result.copy { pendingCopies.append(copy) }
            slots[slot].kvTokens = kvTokens + count
        }
        batch.append(BatchEntry(slot: slot, tokens: tokens, isDecode: isDecode, draftTokens: draft))
        if isDecode {
            shape.decodeTokens += 1
            shape.draftTokens += draft
        } else {
            shape.prefillTokens += tokens
            shape.prefillSequences += 1
        }
        shape.contextTokens += computed
        return true
    }

    /// Preempts a running request: removes it from the batch if scheduled, frees (or swaps out) its KV
    /// and queues it again.
    public mutating func preempt(_ slot: Int) {
        guard let i = running.lastIndex(of: slot) else { return }
        running.remove(at: i)
        unschedule(slot)
        var s = slots[slot]
        let id = SequenceID(s.seq)
        if limits.preemptionMode == .swap, let n = kv.schedulerSwapOut(id) {
            s.swapped = true
            shape.swapOutTokens += n
        } else {
            try? kv.release(id)
            s.computed = 0
            s.kvTokens = 0
        }
        s.phase = .preempted
        if s.preemptions > 0 && s.generated == s.generatedAtAdmission { fruitlessPreemptions += 1 }
        s.preemptions += 1
        slots[slot] = s
        preemptionCount += 1
        preemptedThisStep = true
        waiting.push(key(slot), slot: slot)
    }

    /// Removes the batch entries of `slot` (used when a policy preempts a request it already scheduled).
    mutating func unschedule(_ slot: Int) {
        guard let i = batch.lastIndex(where: { $0.slot == slot }) else { return }
        let e = batch.remove(at: i)
        let s = slots[slot]
        if e.isDecode { shape.decodeTokens -= 1; shape.draftTokens -= e.draftTokens } else { shape.prefillTokens -= e.tokens; shape.prefillSequences -= 1 }
        shape.contextTokens -= s.computed
    }

    // MARK: Completing a step

    /// Applies the step that ran from `start` to `end`: advances every scheduled request, emits tokens,
    /// finishes requests and frees their KV.
    public mutating func completeStep(start: Double, end: Double) {
        beginRecording(start: start, end: end)
        var sameGap = 0
        var anyFinished = false
        // Field-wise, in-place updates: copying whole slots per token dominated the profile.
        for e in batch {
            let i = e.slot
            if slots[i].firstScheduled < 0 { slots[i].firstScheduled = start }
            // Speculative decoding: the fed token plus every accepted draft token is now in the KV
            // cache, and the step emits the accepted drafts plus one corrected or bonus token.
            var accepted = 0
            if e.draftTokens > 0, let spec = speculation {
                while accepted < e.draftTokens && rng.unit() < spec.acceptanceRate { accepted += 1 }
            }
            slots[i].computed += e.tokens + accepted
            guard slots[i].computed == slots[i].request.promptTokens + slots[i].generated + accepted else { continue }
            sameGap += recordTokens(i, count: 1 + accepted, start: start, end: end)
            if slots[i].generated == slots[i].request.outputTokens {
                slots[i].phase = .finished
                anyFinished = true
                try? kv.release(SequenceID(slots[i].seq))
                finish(slots[i], at: end)
            }
        }
        endRecording(start: start, end: end, sameGap: sameGap, anyFinished: anyFinished)
    }

    /// Step-level counters at the start of a step's completion.
    @inline(__always)
    mutating func beginRecording(start: Double, end: Double) {
        stepCount += 1
        busyTime += end - start
        let n = batch.count
        if n >= batchSizeHistogram.count { batchSizeHistogram += [Int](repeating: 0, count: n + 1 - batchSizeHistogram.count) }
        batchSizeHistogram[n] += 1
    }

    /// Counts `count` tokens emitted by `slot` in the step `start ..< end` (first-token time, inter-token
    /// gaps); returns 1 when the gap is the step itself (gathered into one ITL entry per step).
    @inline(__always)
    mutating func recordTokens(_ i: Int, count: Int, start: Double, end: Double) -> Int {
        slots[i].generated += count
        tokensEmitted += count
        var sameGap = 0
        if slots[i].generated == count {
            slots[i].firstToken = end
        } else if slots[i].lastToken == start {
            sameGap = 1
        } else {
            itl.append((end - slots[i].lastToken, 1))
        }
        slots[i].lastToken = end
        return sameGap
    }

    /// Ends a step's completion: the shared ITL entry, finished slots out of the running set, the batch cleared.
    @inline(__always)
    mutating func endRecording(start: Double, end: Double, sameGap: Int, anyFinished: Bool) {
        if sameGap > 0 { itl.append((end - start, sameGap)) }
        if anyFinished {
            var kept = 0
            for i in 0..<running.count {
                let slot = running[i]
                if slots[slot].phase == .finished {
                    freeSlots.append(slot)
                } else {
                    running[kept] = slot
                    kept += 1
                }
            }
            running.removeLast(running.count - kept)
        }
        batch.removeAll(keepingCapacity: true)
    }

    mutating func finish(_ s: Slot, at end: Double) {
        let r = s.request
        var record = RequestRecord(
            id: r.id, arrivalTime: r.arrivalTime, firstScheduledTime: s.firstScheduled, firstTokenTime: s.firstToken, finishTime: end,
            promptTokens: r.promptTokens, outputTokens: s.generated, cachedPromptTokens: s.cachedTokens, preemptions: s.preemptions,
            priority: r.priority, sloClass: r.sloClass, replica: replica, metSLO: true)
        let slo = sloClasses[min(r.sloClass, sloClasses.count - 1)]
        var ok = true
        if let m = slo.maxTTFT, record.ttft > m { ok = false }
        if let m = slo.maxTPOT, let t = record.tpot, t > m { ok = false }
        if let m = slo.maxE2E, record.e2e > m { ok = false }
        if let d = r.deadline, record.e2e > d { ok = false }
        record.metSLO = ok
        records.append(record)
    }

    /// Checks the bookkeeping: every request is in exactly one place and the KV cache holds exactly the running sequences.
    /// Returns a description of the first violation, or `nil`.
    public func invariantViolation() -> String? {
        var seen = Set<Int>()
        for slot in running {
            guard seen.insert(slot).inserted else { return "slot \(slot) is twice in the running set" }
            guard slots[slot].phase == .running else { return "running slot \(slot) has phase \(slots[slot].phase)" }
            guard kv.contains(SequenceID(slots[slot].seq)) else { return "running slot \(slot) holds no KV sequence" }
        }
        for slot in waiting.slots {
            guard seen.insert(slot).inserted else { return "slot \(slot) is both waiting and running, or queued twice" }
            let s = slots[slot]
            guard s.phase == .waiting || s.phase == .preempted else { return "waiting slot \(slot) has phase \(s.phase)" }
            if kv.contains(SequenceID(s.seq)) != s.swapped { return "waiting slot \(slot) KV presence \(!s.swapped) mismatch" }
        }
        let held = running.count + waiting.slots.filter { slots[$0].swapped }.count
        guard kv.sequenceCount == held else { return "KV cache holds \(kv.sequenceCount) sequences; expected \(held)" }
        return nil
    }
}

/// A binary min-heap of waiting requests ordered by (priority, arrival, sequence number).
struct WaitingQueue: Sendable {
    struct Key: Sendable, Comparable {
        var priority: Int
        var arrival: Double
        var seq: Int
        static func < (a: Key, b: Key) -> Bool {
            if a.priority != b.priority { return a.priority < b.priority }
            if a.arrival != b.arrival { return a.arrival < b.arrival }
            return a.seq < b.seq
        }
    }

    private var heap: [(key: Key, slot: Int)] = []
    private var minArrival: [Double] = []

    var count: Int { heap.count }
    var peek: Int? { heap.first?.slot }
    var slots: [Int] { heap.map(\.slot) }
    /// The earliest arrival among waiting requests (O(1) in arrival order, O(n) in priority order).
    func oldestArrival(ordersByPriority: Bool) -> Double? {
        guard let first = heap.first else { return nil }
        return ordersByPriority ? heap.map(\.key.arrival).min() : first.key.arrival
    }

    mutating func push(_ key: Key, slot: Int) {
        heap.append((key, slot))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].key < heap[p].key else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Int? { popEntry()?.slot }

    mutating func popEntry() -> (key: Key, slot: Int)? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].key < heap[m].key { m = l }
                if r < heap.count && heap[r].key < heap[m].key { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

@inline(__always)
func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var z = a &* 0x9E37_79B9_7F4A_7C15 ^ b &* 0xC2B2_AE3D_27D4_EB4F
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

extension SchedulerState {
    /// Anti-thrashing guard for a request that was preempted before: re-admit it only if, after
    /// admission, every running sequence can still grow by one block. Fresh requests always pass.
    public func hasHeadroomToReadmit(_ slot: Int) -> Bool {
        let s = slots[slot]
        guard s.preemptions > 0, !s.swapped else { return true }
        let check = kv.admissionCheck(kvPrompt(s, slot: slot, length: s.request.promptTokens + s.generated))
        return check.fits && check.blocksAvailable - check.blocksNeeded >= running.count
    }

    /// Whether `slot` was re-admitted after a preemption and has not produced a token since; such a
    /// request is preempted again only when nothing else can be (the anti-thrashing rule).
    public func isProtectedFromPreemption(_ slot: Int) -> Bool {
        let s = slots[slot]
        return s.preemptions > 0 && s.generated == s.generatedAtAdmission
    }

    /// The running request to preempt first: the lowest priority (largest value), latest arrival
    /// when ordering by priority; otherwise the most recently admitted (vLLM's choice). Requests
    /// protected by ``isProtectedFromPreemption(_:)`` are skipped unless `allowProtected` and no
    /// other request is running.
    public func preemptionVictim(allowProtected: Bool = true) -> Int? {
        var best: Int?
        var bestKey: WaitingQueue.Key?
        for slot in running.reversed() where !isProtectedFromPreemption(slot) {
            guard usesPriority else { return slot }
            // Later admissions win ties (reverse order, strict comparison keeps the first found).
            let k = key(slot)
            if bestKey == nil || bestKey! < k { best = slot; bestKey = k }
        }
        if best == nil && allowProtected { return usesPriority ? running.max { key($0) < key($1) } : running.last }
        return best
    }
}
