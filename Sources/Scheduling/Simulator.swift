import Foundation
import KVPaging

/// Everything a simulation needs besides the workload.
public struct SimulationConfiguration: Sendable {
    public var policy: any BatchingPolicy
    public var limits: SchedulerLimits
    public var kv: KVCacheConfiguration
    public var allocator: KVAllocatorKind
    public var executionModel: any ExecutionModel
    /// SLO classes; ``InferenceRequest/sloClass`` indexes this list. Default: the reference's interactive targets.
    public var sloClasses: [ServiceLevelObjective]
    /// Seconds of simulated time between time-series samples; `nil` picks ~400 samples over the arrival span.
    public var sampleInterval: Double?
    /// Fixed replica count when ``autoscaling`` is `nil`. Default 1.
    public var replicas: Int
    /// Replicas behind a central queue, scaled by these rules.
    public var autoscaling: AutoscalingConfiguration?
    /// Speculative decoding on every decode: acceptances are drawn per draft token with probability α,
    /// and steps are priced by ``SpeculativeExecutionModel`` over ``executionModel``.
    public var speculative: SpeculativeDecodingModel?
    /// Seed of the random draws the simulation makes itself (speculative acceptances).
    public var seed: UInt64 = 0x5EC0DE

    public init(policy: any BatchingPolicy, limits: SchedulerLimits = SchedulerLimits(), kv: KVCacheConfiguration,
                allocator: KVAllocatorKind = .paged, executionModel: any ExecutionModel,
                sloClasses: [ServiceLevelObjective] = [.interactive], sampleInterval: Double? = nil,
                replicas: Int = 1, autoscaling: AutoscalingConfiguration? = nil) {
        self.policy = policy
        self.limits = limits
        self.kv = kv
        self.allocator = allocator
        self.executionModel = executionModel
        self.sloClasses = sloClasses
        self.sampleInterval = sampleInterval
        self.replicas = replicas
        self.autoscaling = autoscaling
    }
}

/// The outcome of a simulation: per-request records, the summary, and time series.
public struct SimulationResult: Sendable {
    public var summary: SimulationSummary
    /// Finished requests in completion order.
    public var records: [RequestRecord]
    public var rejected: [RejectedRequest]
    public var timeSeries: [TimeSample]
    /// `batchSizeHistogram[n]` = steps that ran `n` sequences (over all replicas).
    public var batchSizeHistogram: [Int]
    public var scalingEvents: [ScalingEvent]
    /// Wall-clock seconds the simulation took.
    public var wallSeconds: Double
    /// CPU seconds of the simulating thread (robust to other processes on a shared machine).
    public var cpuSeconds: Double
    /// Output tokens produced, counted step by step (equals the sum of the records' outputs).
    public var tokensEmitted: Int
    /// Preemptions of requests that had been re-admitted after a preemption and produced nothing since (thrashing).
    public var fruitlessPreemptions: Int
    /// Each replica's KV cache at the end (every block should be free or cached-free).
    public var finalKVUsage: [KVCacheUsage]
}

/// A discrete-event simulator of an inference server (or a fleet of replicas behind a queue).
///
/// The clock is virtual: it jumps from event to event (a step ends, a request arrives, a batching
/// timeout fires, a replica finishes its cold start, the autoscaler evaluates). Each replica runs
/// a ``SchedulerState`` driven by the configured ``BatchingPolicy``; each step's duration comes
/// from the ``ExecutionModel``. Runs are deterministic: the same requests and configuration give
/// the same result. Events at the same instant are handled in a fixed order: steps that end,
/// then arrivals, then replicas becoming ready, then the autoscaler, then scheduling.
public enum ServingSimulator {
    struct Replica {
        var state: SchedulerState
        var policy: any BatchingPolicy
        var stepEnd: Double?
        var stepStart = 0.0
        var wakeAt: Double?
        var readyAt: Double
        var startedAt: Double
        var stoppedAt: Double?
        var draining = false
        var busyInWindow = 0.0
        var lastBusy = 0.0
        var ready: Bool { stoppedAt == nil && stepEnd == nil }
    }

    /// Runs `requests` (any order; they are sorted by arrival) to completion.
    public static func run(_ requests: [InferenceRequest], configuration c: SimulationConfiguration,
                           progress: ((Int, Int) -> Void)? = nil) throws -> SimulationResult {
        let wallStart = DispatchTime.now().uptimeNanoseconds
        let cpuStart = threadCPUSeconds()
        guard !requests.isEmpty else { throw SchedulingError(.invalidArgument, "the workload has no requests") }
        for r in requests { try r.validate() }
        try c.limits.validate()
        for s in c.sloClasses { try s.validate() }
        do { try c.kv.validate() } catch { throw SchedulingError(.invalidConfiguration, "KV cache: \(error.message)") }
        if let si = c.sampleInterval { try requireFinite(si, "sample interval", positive: true) }
        let sorted = requests.enumerated().sorted { ($0.element.arrivalTime, $0.offset) < ($1.element.arrivalTime, $1.offset) }.map(\.element)
        var autoscaler = try c.autoscaling.map { try Autoscaler($0) }
        let fixedReplicas = c.autoscaling?.minReplicas ?? c.replicas
        guard fixedReplicas >= 1, fixedReplicas <= 10_000 else {
            throw SchedulingError(.invalidConfiguration, "replica count is \(fixedReplicas); use 1 … 10,000")
        }
        let central = fixedReplicas > 1 || autoscaler != nil
        let executionModel: any ExecutionModel = c.speculative.map { SpeculativeExecutionModel(target: c.executionModel, speculation: $0) } ?? c.executionModel
        func makeReplica(_ index: Int, at t: Double, ready: Double) throws -> Replica {
            var st = try SchedulerState(limits: c.limits, kv: c.kv, allocator: c.allocator, sloClasses: c.sloClasses, replica: index)
            st.usesPriority = c.policy.usesPriority
            st.usesTokenBudgetForPrefill = c.policy.usesTokenBudget
            st.speculation = c.speculative
            st.rng = SimulationRandom(seed: c.seed &+ UInt64(index))
            return Replica(state: st, policy: c.policy, readyAt: ready, startedAt: t)
        }
        var replicas: [Replica] = try (0..<fixedReplicas).map { try makeReplica($0, at: 0, ready: 0) }
        var queue = WaitingQueue()
        var centralRequests: [InferenceRequest] = []
        var events: [ScalingEvent] = []
        var samples: [TimeSample] = []
        let span = max(sorted.last!.arrivalTime - sorted.first!.arrivalTime, 1e-3)
        let sampleInterval = c.sampleInterval ?? max(span / 400, 1e-3)
        var nextSample = sorted.first!.arrivalTime
        var nextTick = autoscaler?.configuration.evaluationInterval ?? .infinity
        var arrivalIndex = 0
        var finished = 0
        var t = 0.0
        let total = sorted.count
        var lastProgress = 0

        // Plain functions of their arguments: a local closure capturing `replicas` would box the array, and
        // unoptimised builds then copy a replica's state on every mutation through the box.
        func queueDepth(_ replicas: [Replica], _ queue: WaitingQueue) -> Int {
            replicas.reduce(queue.count) { $0 + ($1.stoppedAt == nil ? $1.state.waitingCount : 0) }
        }
        func doneCount(_ replicas: [Replica]) -> Int { replicas.reduce(0) { $0 + $1.state.records.count + $1.state.rejected.count } }

        while true {
            // Next event time.
            var next = arrivalIndex < total ? sorted[arrivalIndex].arrivalTime : .infinity
            for r in replicas where r.stoppedAt == nil {
                if let e = r.stepEnd { next = min(next, e) } else {
                    if r.readyAt > t { next = min(next, r.readyAt) }
                    if let w = r.wakeAt { next = min(next, w) }
                }
            }
            if autoscaler != nil { next = min(next, nextTick) }
            guard next.isFinite else { break }
            t = max(t, next)

            // 1. Steps that end now.
            for i in replicas.indices where replicas[i].stepEnd == t {
                // Read the start first: a `replicas[i]` read inside the call's arguments would keep a copy of the
                // replica (and its state's buffers) alive during the call in unoptimised builds, so every append copied.
                let start = replicas[i].stepStart
                replicas[i].state.completeStep(start: start, end: t)
                replicas[i].busyInWindow += t - start
                replicas[i].stepEnd = nil
            }
            // 2. Arrivals up to now.
            while arrivalIndex < total, sorted[arrivalIndex].arrivalTime <= t {
                let r = sorted[arrivalIndex]
                arrivalIndex += 1
                if central {
                    // Reject up front what no replica could ever serve.
                    if let reason = replicas[0].state.rejectionReason(r) {
                        replicas[0].state.rejected.append(RejectedRequest(id: r.id, arrivalTime: r.arrivalTime, reason: reason))
                    } else {
                        centralRequests.append(r)
                        queue.push(WaitingQueue.Key(priority: c.policy.usesPriority ? r.priority : 0, arrival: r.arrivalTime, seq: centralRequests.count - 1), slot: centralRequests.count - 1)
                    }
                } else {
                    replicas[0].state.enqueue(r)
                }
                for i in replicas.indices { replicas[i].wakeAt = nil }
            }
            // 3. Replicas whose cold start ends now.
            for i in replicas.indices where replicas[i].stoppedAt == nil && replicas[i].readyAt == t && replicas[i].startedAt < t {
                events.append(ScalingEvent(time: t, event: "ready", replica: i, utilization: 0, queueDepth: queueDepth(replicas, queue)))
            }
            // 4. Autoscaler.
            if var a = autoscaler, t >= nextTick {
                let window = a.configuration.evaluationInterval
                let live = replicas.indices.filter { replicas[$0].stoppedAt == nil && !replicas[$0].draining && replicas[$0].readyAt <= t }
                let busy = live.reduce(0.0) { $0 + replicas[$1].busyInWindow }
                let util = live.isEmpty ? 0 : min(1, busy / (window * Double(live.count)))
                for i in replicas.indices { replicas[i].busyInWindow = 0 }
                let counted = replicas.filter { $0.stoppedAt == nil && !$0.draining }.count
                let depth = queueDepth(replicas, queue)
                switch a.evaluate(now: t, utilization: util, queueDepth: depth, replicas: counted) {
                case .scaleOut:
                    let index = replicas.count
                    replicas.append(try makeReplica(index, at: t, ready: t + a.configuration.coldStart))
                    events.append(ScalingEvent(time: t, event: "scale-out", replica: index, utilization: util, queueDepth: depth))
                case .scaleIn:
                    if let victim = live.max(by: { replicas[$0].state.activeCount > replicas[$1].state.activeCount || ($0 < $1 && replicas[$0].state.activeCount == replicas[$1].state.activeCount) }) {
                        replicas[victim].draining = true
                        events.append(ScalingEvent(time: t, event: "scale-in", replica: victim, utilization: util, queueDepth: depth))
                    }
                case .none: break
                }
                autoscaler = a
                nextTick = t + window
            }
            // 5. Idle, ready replicas pull from the central queue and schedule.
            let arrivalsComplete = arrivalIndex >= total
            for i in replicas.indices where replicas[i].stoppedAt == nil && replicas[i].stepEnd == nil && replicas[i].readyAt <= t {
                if central && !replicas[i].draining {
                    while replicas[i].state.activeCount < c.limits.maxNumSeqs, let slot = queue.pop() {
                        replicas[i].state.enqueue(centralRequests[slot])
                    }
                }
                if let w = replicas[i].wakeAt, w > t { continue }
                let done = central ? (arrivalsComplete && queue.count == 0) : arrivalsComplete
                var policy = replicas[i].policy
                let decision = policy.schedule(&replicas[i].state, now: t, arrivalsComplete: done)
                replicas[i].policy = policy
                switch decision {
                case .run:
                    let d = executionModel.stepTime(replicas[i].state.shape)
                    guard d.isFinite, d > 0 else {
                        throw SchedulingError(.invalidConfiguration, "the execution model priced a step at \(d) s; step times must be finite and > 0 (\(executionModel.summary))")
                    }
                    replicas[i].stepStart = t
                    replicas[i].stepEnd = t + d
                    replicas[i].wakeAt = nil
                case let .idle(until):
                    replicas[i].wakeAt = until.map { max($0, t) }
                    if let u = until, u <= t { replicas[i].wakeAt = nil }
                    if replicas[i].draining && replicas[i].state.activeCount == 0 {
                        replicas[i].stoppedAt = t
                        events.append(ScalingEvent(time: t, event: "stopped", replica: i, utilization: 0, queueDepth: queueDepth(replicas, queue)))
                    }
                }
            }
            // Time series.
            if t >= nextSample {
                var kvSum = 0.0, live = 0, running = 0
                for r in replicas where r.stoppedAt == nil && r.readyAt <= t {
                    kvSum += r.state.kvUsage
                    live += 1
                    running += r.state.runningCount
                }
                finished = replicas.reduce(0) { $0 + $1.state.records.count }
                samples.append(TimeSample(time: t, queueDepth: queueDepth(replicas, queue), running: running, kvUsage: live > 0 ? kvSum / Double(live) : 0,
                                          replicas: replicas.filter { $0.stoppedAt == nil }.count, finished: finished))
                nextSample = t + sampleInterval
                if let progress, finished - lastProgress >= max(1, total / 100) {
                    progress(finished, total)
                    lastProgress = finished
                }
            }
            // Done?
            if arrivalIndex >= total && queue.count == 0 && replicas.allSatisfy({ $0.stepEnd == nil && $0.state.activeCount == 0 }) {
                break
            }
            // Stuck: nothing can happen any more but requests remain (a policy bug; reported, never a hang).
            if arrivalIndex >= total,
               replicas.allSatisfy({ $0.stoppedAt != nil || ($0.stepEnd == nil && $0.wakeAt == nil && $0.readyAt <= t) }),
               autoscaler == nil || queue.count == 0 {
                throw SchedulingError(.noProgress, "the simulation stalled at t = \(t) s with \(total - doneCount(replicas)) requests unfinished; the policy scheduled nothing although requests wait")
            }
        }
        if doneCount(replicas) < total {
            throw SchedulingError(.noProgress, "the simulation stalled at t = \(t) s with \(total - doneCount(replicas)) requests unfinished; the policy scheduled nothing although requests wait")
        }
        let end = t
        for i in replicas.indices where replicas[i].stoppedAt == nil { replicas[i].stoppedAt = end }
        let wall = Double(DispatchTime.now().uptimeNanoseconds - wallStart) / 1e9
        return summarize(replicas: replicas, configuration: c, samples: samples, events: events, wall: wall, cpu: threadCPUSeconds() - cpuStart)
    }

    static func summarize(replicas: [Replica], configuration c: SimulationConfiguration, samples: [TimeSample], events: [ScalingEvent], wall: Double, cpu: Double) -> SimulationResult {
        var records: [RequestRecord] = []
        var rejected: [RejectedRequest] = []
        var itl: [(value: Double, count: Int)] = []
        var hist: [Int] = []
        var preemptions = 0, steps = 0, prompt = 0, cached = 0
        var busy = 0.0, replicaSeconds = 0.0
        for r in replicas {
            records += r.state.records
            rejected += r.state.rejected
            itl += r.state.itl
            if r.state.batchSizeHistogram.count > hist.count { hist += [Int](repeating: 0, count: r.state.batchSizeHistogram.count - hist.count) }
            for (n, k) in r.state.batchSizeHistogram.enumerated() { hist[n] += k }
            preemptions += r.state.preemptionCount
            steps += r.state.stepCount
            prompt += r.state.promptTokensAdmitted
            cached += r.state.cachedTokensTotal
            busy += r.state.busyTime
            replicaSeconds += (r.stoppedAt ?? 0) - r.startedAt
        }
        let firstArrival = records.map(\.arrivalTime).min() ?? 0
        let lastFinish = records.map(\.finishTime).max() ?? 0
        let duration = max(lastFinish - firstArrival, 1e-12)
        let outTokens = records.reduce(0) { $0 + $1.outputTokens }
        let inTokens = records.reduce(0) { $0 + $1.promptTokens }
        let good = records.filter(\.metSLO).count
        var batchValues: [(value: Double, count: Int)] = []
        for (n, k) in hist.enumerated() where k > 0 { batchValues.append((Double(n), k)) }
        let gpus = Double(c.autoscaling?.gpusPerReplica ?? 1)
        let summary = SimulationSummary(
            policy: c.policy.name, executionModel: (c.speculative.map { SpeculativeExecutionModel(target: c.executionModel, speculation: $0) } ?? c.executionModel).summary,
            completed: records.count, rejected: rejected.count, duration: duration,
            requestThroughput: Double(records.count) / duration,
            outputTokenThroughput: Double(outTokens) / duration,
            totalTokenThroughput: Double(outTokens + inTokens) / duration,
            goodput: Double(good) / duration,
            sloAttainment: records.isEmpty ? 0 : Double(good) / Double(records.count),
            ttft: LatencySummary(records.map(\.ttft)),
            tpot: LatencySummary(records.compactMap(\.tpot)),
            itl: LatencySummary(weighted: itl),
            e2e: LatencySummary(records.map(\.e2e)),
            queueTime: LatencySummary(records.map(\.queueTime)),
            preemptions: preemptions, steps: steps,
            batchSize: LatencySummary(weighted: batchValues),
            meanKVUsage: samples.isEmpty ? 0 : samples.reduce(0) { $0 + $1.kvUsage } / Double(samples.count),
            peakKVUsage: samples.map(\.kvUsage).max() ?? 0,
            prefixCacheHitRate: prompt == 0 ? 0 : Double(cached) / Double(prompt),
            replicaHours: replicaSeconds * gpus / 3600,
            utilization: replicaSeconds > 0 ? busy / replicaSeconds : 0)
        return SimulationResult(summary: summary, records: records, rejected: rejected, timeSeries: samples,
                                batchSizeHistogram: hist, scalingEvents: events, wallSeconds: wall, cpuSeconds: cpu,
                                tokensEmitted: replicas.reduce(0) { $0 + $1.state.tokensEmitted },
                                fruitlessPreemptions: replicas.reduce(0) { $0 + $1.state.fruitlessPreemptions },
                                finalKVUsage: replicas.map(\.state.kvCacheUsage))
    }
}

/// CPU time consumed by the calling thread, in seconds.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
