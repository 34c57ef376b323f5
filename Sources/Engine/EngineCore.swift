import Dispatch
import KVPaging
import ModelRuntime
import Scheduling
import Synchronization
import Tokenization

/// One request in flight: its stream and what its samples share.
final class RequestGroup {
    let id: Int
    let request: EngineRequest
    let channel: EventChannel
    /// Submission time, nanoseconds of uptime.
    let submitted: UInt64
    let endTokens: Set<Int>
    var slots: Set<Int> = []
    var finishedSamples = 0

    init(_ s: Submission, endTokens: Set<Int>) {
        id = s.id
        request = s.request
        channel = s.channel
        submitted = s.submitted
        self.endTokens = endTokens
    }
}

/// One sample of a request: the scheduler sequence's sampling and detokenization state.
final class LiveSequence {
    let group: RequestGroup
    let sample: Int
    /// Its scheduler slot (set at admission, or when a fork gives it one).
    var slot = -1
    var sampler: Sampler
    var decoder: StreamingDecoder
    var stopper: StopMatcher
    /// Prompt and visible output tokens (the n-gram proposer's context).
    var history: [Int]
    var outputCount = 0
    var firstToken: UInt64 = 0
    var lastToken: UInt64 = 0
    var held = false
    /// A parent of `n > 1` samples that has not produced its first token yet.
    var pendingSamples: Int
    /// Finished while its forks were being created: abort it once they exist.
    var finishAfterForking = false

    init(group: RequestGroup, sample: Int, tokenizer: Tokenizer) {
        self.group = group
        self.sample = sample
        var p = group.request.parameters.sampling
        if let seed = p.seed { p.seed = seed &+ UInt64(sample) }
        sampler = Sampler(parameters: p, promptTokens: group.request.promptTokens)
        decoder = tokenizer.makeStreamingDecoder(skipSpecialTokens: true)
        stopper = StopMatcher(stops: group.request.parameters.stop)
        history = group.request.promptTokens
        history.reserveCapacity(group.request.promptTokens.count + group.request.parameters.maxTokens)
        pendingSamples = sample == 0 ? group.request.samples - 1 : 0
    }

    var banned: Set<Int> { outputCount < group.request.parameters.minTokens ? group.endTokens : [] }
}

/// Everything the engine thread owns. `@unchecked Sendable`: after `InferenceEngine.init` hands it
/// to the thread, only that thread touches it, except `published` and `stopped`, which are
/// synchronised themselves.
final class EngineCore: @unchecked Sendable {
    let model: LlamaModel
    let configuration: EngineConfiguration
    let forward: CPUForwardPass
    var cache: KVCache
    var state: SchedulerState
    var policy: any BatchingPolicy
    let inbox: Inbox
    let metrics: EngineMetrics
    let proposer: NGramProposer?

    let published = Mutex(EngineStatistics())
    let stopped = StopSignal()

    var groups: [Int: RequestGroup] = [:]
    var live: [Int: LiveSequence] = [:]
    var stats = EngineStatistics()
    var nextRequestID = 0
    let start = DispatchTime.now().uptimeNanoseconds

    // Reused per step.
    var plan = StepPlan()
    var outcome = StepOutcome()
    var batch = ForwardBatch()
    var logits = Logits()
    var drafts: [Int] = []
    var draftCounts: [Int] = []
    var scratch: [Int] = []
    var emitted: [Int] = []

    init(model: LlamaModel, configuration: EngineConfiguration, state: SchedulerState, cache: KVCache, inbox: Inbox) {
        self.model = model
        self.configuration = configuration
        self.state = state
        self.cache = cache
        self.policy = configuration.policy
        self.inbox = inbox
        forward = CPUForwardPass(model: model, threads: configuration.threads)
        metrics = EngineMetrics(modelName: configuration.modelName)
        proposer = configuration.speculative.map { NGramProposer(maximumMatch: $0.maximumMatch, minimumMatch: $0.minimumMatch) }
        stats.totalBlocks = cache.blockCount
    }

    /// Seconds on the engine's clock.
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
    func seconds(_ a: UInt64, _ b: UInt64) -> Double { b > a ? Double(b - a) / 1e9 : 0 }

    // MARK: The loop

    func run() {
        var drainDeadline: UInt64?
        while true {
            let (submissions, cancels, shutdown) = inbox.take()
            // Submissions first: a stream cancelled right after `generate` has both in the same batch.
            for s in submissions { admit(s) }
            for id in cancels {
                if let g = groups[id] { end(g, error: CancellationError(), cancelled: true) }
            }
            if let shutdown {
                switch shutdown {
                case .cancel:
                    endAll(EngineError(.shutDown, "the engine was shut down with the request in flight; retry on another replica"))
                    finishThread()
                    return
                case let .drain(deadline):
                    if drainDeadline == nil {
                        drainDeadline = deadline.map { DispatchTime.now().uptimeNanoseconds + UInt64(max(0, $0) * 1e9) } ?? .max
                    }
                    if groups.isEmpty || DispatchTime.now().uptimeNanoseconds >= drainDeadline! {
                        endAll(EngineError(.shutDown, "the engine's drain deadline passed with the request in flight; retry on another replica"))
                        finishThread()
                        return
                    }
                }
            }
            // Consumers that are behind are held out of the batch until they catch up.
            for (slot, seq) in live {
                let held = seq.group.channel.isHeld
                if held != seq.held {
                    seq.held = held
                    state.setHeld(slot, held)
                }
            }
            let t = now()
            let decision = policy.schedule(&state, now: t, arrivalsComplete: false)
            if case .run = decision, !state.batch.isEmpty {
                step(start: t)
            } else {
                publish()
                var timeout: Double?
                if case let .idle(until) = decision, let until { timeout = until - now() }
                if drainDeadline != nil && drainDeadline! != .max {
                    let left = seconds(DispatchTime.now().uptimeNanoseconds, drainDeadline!)
                    timeout = min(timeout ?? left, left)
                }
                inbox.wait(seconds: timeout)
            }
        }
    }

    func finishThread() {
        publish()
        stopped.signal()
    }

    // MARK: Requests

    func admit(_ s: Submission) {
        let tk = model.tokenizer
        var end = s.request.parameters.stopTokenIDs
        if !s.request.parameters.ignoreEOS {
            end.formUnion(tk.configuration.endOfTurnTokenIDs)
            if let eos = tk.configuration.eosTokenID { end.insert(eos) }
        }
        let group = RequestGroup(s, endTokens: end)
        let r = s.request
        nextRequestID += 1
        let request = InferenceRequest(
            id: nextRequestID, arrivalTime: seconds(start, s.submitted), promptTokens: r.promptTokens.count,
            outputTokens: r.parameters.maxTokens, priority: r.priority, promptTokenIDs: r.promptTokens,
            cacheSalt: r.cacheSalt.map { CacheSalt($0).rawValue })
        guard let slot = state.enqueue(request) else {
            let reason = state.rejected.last?.reason ?? "it can never fit"
            state.discardHistory()
            s.channel.finish(throwing: EngineError(.requestTooLarge, "\(reason); shorten the prompt or lower max_tokens"))
            inbox.retire()
            return
        }
        groups[group.id] = group
        group.slots.insert(slot)
        let seq = LiveSequence(group: group, sample: 0, tokenizer: tk)
        seq.slot = slot
        live[slot] = seq
        stats.promptTokens += r.promptTokens.count
        metrics.promptTokens.increment(by: r.promptTokens.count)
    }

    /// Ends every sequence of `g` and its stream (between steps).
    func end(_ g: RequestGroup, error: (any Error)?, cancelled: Bool = false) {
        for slot in g.slots {
            state.abort(slot)
            live.removeValue(forKey: slot)
        }
        g.slots.removeAll()
        groups.removeValue(forKey: g.id)
        if cancelled { stats.abortedRequests += 1; metrics.finished(reason: "abort") }
        g.channel.finish(throwing: error)
        inbox.retire()
    }

    func endAll(_ error: EngineError) {
        for g in Array(groups.values) { end(g, error: error) }
    }

    // MARK: A step

    func step(start t0: Double) {
        state.makePlan(&plan)
        batch.removeAll()
        drafts.removeAll(keepingCapacity: true)
        draftCounts.removeAll(keepingCapacity: true)
        for i in plan.sequences.indices {
            let p = plan.sequences[i]
            var d = 0
            if p.isDecode, p.draftTokens > 0, let proposer, let seq = live[p.slot], seq.group.request.speculate {
                d = proposer.propose(seq.history, limit: p.draftTokens, into: &drafts)
            }
            draftCounts.append(d)
            if d > 0 {
                scratch.removeAll(keepingCapacity: true)
                scratch.append(contentsOf: plan.tokens(of: i))
                scratch.append(contentsOf: drafts[(drafts.count - d)...])
                batch.append(tokens: scratch, startPosition: p.firstPosition, blockTable: plan.blockTable(of: i), logits: .all)
            } else {
                batch.append(tokens: plan.tokens(of: i), startPosition: p.firstPosition, blockTable: plan.blockTable(of: i),
                             logits: p.samples ? .last : .none)
            }
        }
        do {
            if !plan.copies.isEmpty {
                try cache.copyBlocks(plan.copies)
                stats.blockCopies += plan.copies.count
            }
            try forward.run(batch, cache: &cache, logits: &logits)
        } catch {
            failStep(EngineError(.modelFailure, "the forward pass failed: \(error.message)"))
            return
        }
        let stepEnd = DispatchTime.now().uptimeNanoseconds
        outcome.removeAll()
        var forks: [(parent: Int, child: LiveSequence, token: Int, logprob: Float?, top: [TokenLogprob])] = []
        var finishedSlots: [Int] = []
        var row = 0
        var draftOffset = 0
        for i in plan.sequences.indices {
            let p = plan.sequences[i]
            let d = draftCounts[i]
            stats.draftTokens += d
            defer { draftOffset += d }
            guard p.samples, let seq = live[p.slot] else {
                if d > 0 { row += p.tokenCount + d } else if p.samples { row += 1 }
                outcome.append(tokens: EmptyCollection(), finished: false)
                continue
            }
            let base = d > 0 ? row + p.tokenCount - 1 : row
            row += d > 0 ? p.tokenCount + d : 1
            emitted.removeAll(keepingCapacity: true)
            var finished = false
            let top = seq.group.request.parameters.topLogprobs ?? -1
            for j in 0...d {
                let pick: (token: Int, accepted: Bool, logprob: Float?, top: [TokenLogprob]) = logits.withRow(base + j) { r in
                    if j < d { return seq.sampler.verify(r, draft: drafts[draftOffset + j], banned: seq.banned, topLogprobs: top) }
                    let s = seq.sampler.sample(r, banned: seq.banned, topLogprobs: top)
                    return (s.token, false, s.logprob, s.top)
                }
                if seq.pendingSamples > 0 && emitted.isEmpty {
                    // The prompt's last row also starts the other samples of an `n > 1` request.
                    for k in 1...seq.pendingSamples {
                        let child = LiveSequence(group: seq.group, sample: k, tokenizer: model.tokenizer)
                        let c = logits.withRow(base) { r in child.sampler.sample(r, banned: child.banned, topLogprobs: top) }
                        forks.append((p.slot, child, c.token, c.logprob, c.top))
                    }
                }
                emitted.append(pick.token)
                if j < d && pick.accepted { stats.acceptedDraftTokens += 1 }
                if deliver(pick.token, logprob: pick.logprob, top: pick.top, to: seq, at: stepEnd) {
                    finished = true
                    break
                }
                if j < d && !pick.accepted { break }
            }
            if d > 0 {
                metrics.draftTokens.increment(by: d)
                metrics.acceptedDraftTokens.increment(by: emitted.count - 1)
            }
            if finished && seq.pendingSamples > 0 {
                // Keep the parent's K/V until its samples have forked from it.
                seq.finishAfterForking = true
                finished = false
            } else if finished {
                finishedSlots.append(p.slot)
            }
            outcome.append(tokens: emitted, finished: finished)
        }
        let t1 = now()
        do { try state.completeStep(start: t0, end: t1, outcome: outcome) } catch {
            failStep(EngineError(.modelFailure, "internal: the step's outcome did not fit its plan (\(error)); please report it"))
            return
        }
        state.discardHistory()
        stats.steps += 1
        for slot in finishedSlots { retireSample(slot) }
        // Parallel samples: fork each from its parent now that the prompt is computed.
        var parents: Set<Int> = []
        for f in forks {
            parents.insert(f.parent)
            let parent = live[f.parent]!
            nextRequestID += 1
            var request = state.request(f.parent)
            request.id = nextRequestID
            guard let slot = state.fork(f.parent, as: request, lastToken: f.token) else {
                // Unreachable while the parent is decoding; end the sample rather than lose it.
                finishSample(f.child, .length, flush: true)
                closeIfDone(f.child.group)
                continue
            }
            parent.group.slots.insert(slot)
            f.child.slot = slot
            live[slot] = f.child
            if deliver(f.token, logprob: f.logprob, top: f.top, to: f.child, at: stepEnd) {
                state.abort(slot)
                retireSample(slot)
            }
        }
        for slot in parents {
            guard let parent = live[slot] else { continue }
            parent.pendingSamples = 0
            if parent.finishAfterForking {
                state.abort(slot)
                retireSample(slot)
            }
        }
        publish()
    }

    /// Emits one sampled token of `seq`; returns true when the sample is finished.
    func deliver(_ token: Int, logprob: Float?, top: [TokenLogprob], to seq: LiveSequence, at t: UInt64) -> Bool {
        let g = seq.group
        if seq.firstToken == 0 {
            seq.firstToken = t
            metrics.timeToFirstToken.record(seconds(g.submitted, t))
        } else if seq.lastToken != t {
            metrics.interTokenLatency.record(seconds(seq.lastToken, t))
        }
        seq.lastToken = t
        stats.generationTokens += 1
        metrics.generationTokens.increment()
        if g.endTokens.contains(token) {
            finishSample(seq, .stop, flush: true)
            return true
        }
        seq.outputCount += 1
        seq.history.append(token)
        let piece = (try? seq.decoder.append(token)) ?? ""
        let (text, stopped) = seq.stopper.append(piece)
        // A full buffer holds the request out of the next step (`run` reads the channel's flag).
        seq.group.channel.push(.token(GeneratedToken(token: token, text: text, logprob: logprob, topLogprobs: top), sample: seq.sample))
        if stopped {
            finishSample(seq, .stop, flush: false)  // what followed the stop string is not part of the answer
            return true
        }
        if seq.outputCount >= g.request.parameters.maxTokens {
            finishSample(seq, .length, flush: true)
            return true
        }
        return false
    }

    func completion(_ seq: LiveSequence, _ reason: FinishReason, trailing: String = "") -> GenerationCompletion {
        let slot: Int? = seq.slot >= 0 ? seq.slot : nil
        let t = seq.lastToken
        return GenerationCompletion(
            sample: seq.sample, finishReason: reason, promptTokens: seq.group.request.promptTokens.count,
            cachedPromptTokens: slot.map { state.cachedPromptTokens(of: $0) } ?? 0, completionTokens: seq.outputCount,
            trailingText: trailing, timeToFirstToken: seconds(seq.group.submitted, seq.firstToken),
            latency: seconds(seq.group.submitted, t), preemptions: slot.map { state.preemptions(of: $0) } ?? 0)
    }

    /// Ends a sample; `flush` emits the text still held back (an incomplete character or a partial stop
    /// string) — true unless a stop string matched, whose remainder is dropped.
    func finishSample(_ seq: LiveSequence, _ reason: FinishReason, flush: Bool) {
        let tail = flush ? seq.stopper.append(seq.decoder.finish()).emit + seq.stopper.finish() : ""
        let c = completion(seq, reason, trailing: tail)
        metrics.requestFinished(c, reason: reason.rawValue)
        seq.group.channel.push(.finished(c))
        seq.group.finishedSamples += 1
    }

    /// A finished sample's sequence is gone from the scheduler: forget it; end the stream after the last sample.
    func retireSample(_ slot: Int) {
        guard let seq = live.removeValue(forKey: slot) else { return }
        seq.group.slots.remove(slot)
        closeIfDone(seq.group)
    }

    /// Ends the stream once every sample has finished and no sequence is left.
    func closeIfDone(_ g: RequestGroup) {
        if g.finishedSamples >= g.request.samples && g.slots.isEmpty && groups[g.id] != nil {
            groups.removeValue(forKey: g.id)
            stats.finishedRequests += 1
            g.channel.finish()
            inbox.retire()
        }
    }

    /// The forward pass failed: end the requests of this step with `error`, keep serving the rest.
    func failStep(_ error: EngineError) {
        var failed: [Int: RequestGroup] = [:]
        for p in plan.sequences { if let g = live[p.slot]?.group { failed[g.id] = g } }
        for g in failed.values { end(g, error: error) }
        state.beginStep()
    }

    func publish() {
        let u = state.kvCacheUsage
        stats.requestsRunning = state.runningCount
        stats.requestsWaiting = state.waitingCount
        stats.liveRequests = groups.count
        stats.liveSequences = state.activeCount
        stats.activeBlocks = u.activeBlocks
        stats.kvUsage = state.kvUsage
        if state.preemptions > stats.preemptions {
            metrics.preemptions.increment(by: state.preemptions - stats.preemptions)
            stats.preemptions = state.preemptions
        }
        if let p = state.prefixCacheStats {
            if p.queriedTokens > stats.prefixCacheQueriedTokens { metrics.prefixQueries.increment(by: p.queriedTokens - stats.prefixCacheQueriedTokens) }
            if p.hitTokens > stats.prefixCacheHitTokens { metrics.prefixHits.increment(by: p.hitTokens - stats.prefixCacheHitTokens) }
            stats.prefixCacheQueriedTokens = p.queriedTokens
            stats.prefixCacheHitTokens = p.hitTokens
        }
        metrics.running.record(stats.requestsRunning)
        metrics.waiting.record(stats.requestsWaiting)
        metrics.kvUsage.record(stats.kvUsage)
        let snapshot = stats
        published.withLock { $0 = snapshot }
    }
}
