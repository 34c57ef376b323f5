/// Shared behaviour of request-level batching (no batching, static, dynamic): a batch is admitted
/// together and runs until every member finishes; nobody joins a batch in flight.
struct RequestLevelBatch {
    /// Runs one step of the batch in flight (prefill whole prompts, then decode).
    static func step(_ s: inout SchedulerState) -> SchedulingDecision {
        var i = 0
        while i < s.running.count {
            let slot = s.running[i]
            let n = s.pendingTokens(slot)
            if s.schedule(slot, tokens: n) { i += 1; continue }
            // Out of KV blocks: preempt the most recently admitted member (possibly this one), then retry.
            guard let victim = s.preemptionVictim(), let vi = s.running.lastIndex(of: victim) else { break }
            s.preempt(victim)
            if vi < i { i -= 1 }
        }
        return s.batch.isEmpty ? .idle(until: nil) : .run
    }

    /// Admits up to `size` requests from the head of the queue.
    static func launch(_ s: inout SchedulerState, size: Int, now: Double) {
        while s.runningCount < size, s.waitingCount > 0 {
            guard case .admitted = s.admitHead(now: now) else { break }
        }
    }
}

/// No batching: one request at a time, start to finish (the naive server).
public struct NoBatchingPolicy: BatchingPolicy {
    public init() {}
    public var name: String { "none" }
    public var usesPriority: Bool { false }
    public var usesTokenBudget: Bool { false }

    public mutating func schedule(_ s: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision {
        s.beginStep()
        if s.runningCount == 0 {
            guard s.waitingCount > 0 else { return .idle(until: nil) }
            RequestLevelBatch.launch(&s, size: 1, now: now)
        }
        return RequestLevelBatch.step(&s)
    }
}

/// Static batching: wait until `batchSize` requests are queued, run them together until all finish.
///
/// A partial batch is launched once no more requests will arrive (a finite trace), or — for a
/// server, whose arrivals never end — once the oldest request has waited `launchAfter` seconds.
public struct StaticBatchingPolicy: BatchingPolicy {
    public let batchSize: Int
    /// Launch a partial batch when its oldest request has waited this long; `nil` waits for a full
    /// batch until the arrivals are complete.
    public let launchAfter: Double?
    public init(batchSize: Int, launchAfter: Double? = nil) throws {
        guard batchSize >= 1 else { throw SchedulingError(.invalidConfiguration, "static batch size is \(batchSize); use at least 1") }
        if let launchAfter { try requireFinite(launchAfter, "static batching launch timeout", nonNegative: true) }
        self.batchSize = batchSize
        self.launchAfter = launchAfter
    }
    public var name: String { "static" }
    public var usesPriority: Bool { false }
    public var usesTokenBudget: Bool { false }

    public mutating func schedule(_ s: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision {
        s.beginStep()
        if s.runningCount == 0 {
            guard let oldest = s.oldestWaitingArrival else { return .idle(until: nil) }
            let timedOut = launchAfter.map { now >= oldest + $0 } ?? false
            guard s.waitingCount >= batchSize || arrivalsComplete || timedOut else {
                return .idle(until: launchAfter.map { oldest + $0 })
            }
            RequestLevelBatch.launch(&s, size: batchSize, now: now)
        }
        return RequestLevelBatch.step(&s)
    }
}

/// Dynamic batching (Triton-style): launch a batch when `maxBatchSize` requests are queued or
/// the oldest has waited `maxWait` seconds; the batch then runs until all members finish.
public struct DynamicBatchingPolicy: BatchingPolicy {
    public let maxBatchSize: Int
    public let maxWait: Double
    public init(maxBatchSize: Int, maxWait: Double) throws {
        guard maxBatchSize >= 1 else { throw SchedulingError(.invalidConfiguration, "dynamic batch size is \(maxBatchSize); use at least 1") }
        try requireFinite(maxWait, "dynamic batching max wait", nonNegative: true)
        self.maxBatchSize = maxBatchSize
        self.maxWait = maxWait
    }
    public var name: String { "dynamic" }
    public var usesPriority: Bool { false }
    public var usesTokenBudget: Bool { false }

    public mutating func schedule(_ s: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision {
        s.beginStep()
        if s.runningCount == 0 {
            guard let oldest = s.oldestWaitingArrival else { return .idle(until: nil) }
            let deadline = oldest + maxWait
            guard s.waitingCount >= maxBatchSize || now >= deadline || arrivalsComplete else { return .idle(until: deadline) }
            RequestLevelBatch.launch(&s, size: maxBatchSize, now: now)
        }
        return RequestLevelBatch.step(&s)
    }
}

/// Continuous (iteration-level) batching with chunked prefill, as in Orca, vLLM and Sarathi.
///
/// Every step: (1) one decode token for every running request that is decoding, oldest first;
/// (2) the next chunk of prompts already being prefilled; (3) new requests from the head of the
/// queue while a sequence slot (`maxNumSeqs`), token budget (`maxBatchedTokens`) and KV memory
/// last. When a decode needs a KV block and none is free, the most recently admitted request is
/// preempted (recompute or swap); no new request is admitted in a step that preempted, and a
/// request preempted before is re-admitted only with one block of headroom per running sequence,
/// so the scheduler does not thrash.
public struct ContinuousBatchingPolicy: BatchingPolicy {
    public init() {}
    public var name: String { "continuous" }
    public var usesPriority: Bool { false }
    public var usesTokenBudget: Bool { true }

    public mutating func schedule(_ s: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision {
        IterationLevel.schedule(&s, now: now, priorityPreemption: false)
    }
}

/// Continuous batching that serves lower ``InferenceRequest/priority`` values first and preempts the
/// lowest-priority running request when a strictly more urgent request is waiting and either the
/// sequence limit or KV memory is the bottleneck. Equal priorities are FCFS; a request is never
/// preempted for one of equal or lower urgency, so two requests cannot evict each other in turn.
public struct PriorityBatchingPolicy: BatchingPolicy {
    public init() {}
    public var name: String { "priority" }
    public var usesPriority: Bool { true }
    public var usesTokenBudget: Bool { true }

    public mutating func schedule(_ s: inout SchedulerState, now: Double, arrivalsComplete: Bool) -> SchedulingDecision {
        IterationLevel.schedule(&s, now: now, priorityPreemption: true)
    }
}

enum IterationLevel {
    static func schedule(_ s: inout SchedulerState, now: Double, priorityPreemption: Bool) -> SchedulingDecision {
        s.beginStep()
        var budget = s.limits.maxBatchedTokens
        // 1. Decodes, in admission order.
        var i = 0
        while i < s.running.count, budget > 0 {
            let slot = s.running[i]
            guard s.isDecoding(slot) else { i += 1; continue }
            if s.schedule(slot, tokens: 1) { budget -= 1; i += 1; continue }
            guard let victim = s.preemptionVictim(), let vi = s.running.lastIndex(of: victim) else { break }
            if vi < i { budget += 1 }  // it was scheduled for one decode token; that token is returned
            s.preempt(victim)
            if vi < i { i -= 1 }
        }
        // 2. Prompts already in prefill: their next chunk.
        i = 0
        while i < s.running.count, budget > 0 {
            let slot = s.running[i]
            i += 1
            // Requests decoding were handled (or skipped for budget) in pass 1.
            guard !s.isDecoding(slot) else { continue }
            let pending = s.pendingTokens(slot)
            let n = min(pending, budget)
            if n < pending && !s.limits.chunkedPrefill { continue }
            if s.schedule(slot, tokens: n) { budget -= n }
        }
        // 3. Admissions from the head of the queue.
        let growthPreempted = s.preemptedThisStep
        while budget > 0, !growthPreempted, let head = s.headOfQueue {
            if !s.limits.chunkedPrefill && s.tokensToAdmit(head) > budget { break }
            guard s.hasHeadroomToReadmit(head) else { break }
            switch s.admitHead(now: now) {
            case .admitted:
                let p = s.pendingTokens(head)
                let n = min(p, budget)
                if s.schedule(head, tokens: n) { budget -= n }
            case .noMemory, .noSequenceSlot:
                guard priorityPreemption, let victim = s.preemptionVictim(allowProtected: false),
                      s.request(victim).priority > s.request(head).priority else { return finish(s) }
                if s.batch.contains(where: { $0.slot == victim }) {
                    budget += s.batch.last(where: { $0.slot == victim })!.tokens
                }
                s.preempt(victim)
            }
        }
        return finish(s)
    }

    @inline(__always)
    static func finish(_ s: SchedulerState) -> SchedulingDecision { s.batch.isEmpty ? .idle(until: nil) : .run }
}
