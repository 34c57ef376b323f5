import Dispatch
import Engine
import KVPaging
import ModelRuntime
import Scheduling
import Synchronization

/// The engine benchmarks behind `inferkit bench engine` and `inferkit generate --parallel`:
/// aggregate throughput at fixed concurrency (the shape of llama.cpp's `llama-batched-bench`), and
/// open-loop Poisson workloads under each batching policy.
public enum EngineBenchmark {
    /// One `npl` point: `parallel` sequences, each a `promptTokens` prompt and `outputTokens` outputs.
    public struct ThroughputPoint: Sendable, Hashable, Codable {
        public var parallel: Int
        public var promptTokens: Int
        public var outputTokens: Int
        /// Submission to the last sequence's first token (every prompt prefilled): llama-batched-bench's T_PP.
        public var prefillSeconds: Double
        /// From then to the last token: T_TG.
        public var decodeSeconds: Double
        /// Prompt tokens per second over `prefillSeconds` (S_PP).
        public var prefillTokensPerSecond: Double
        /// Tokens generated after every prompt was prefilled, per second of `decodeSeconds` (S_TG).
        public var decodeTokensPerSecond: Double
        /// All tokens (prompt + generated) over the whole run (S).
        public var totalTokensPerSecond: Double
        public var steps: Int
    }

    /// Random prompt ids above the control tokens (a model's first ids are specials).
    static func prompt(_ rng: inout SimulationRandom, length: Int, vocabulary: Int) -> [Int] {
        let low = min(1000, vocabulary / 2)
        return (0..<length).map { _ in low + Int(rng.unit() * Double(vocabulary - low - 1)) }
    }

    /// Runs `parallel` requests at once (submitted together, EOS ignored) and splits the run at the
    /// moment the last of them produced its first token.
    public static func throughput(model: LlamaModel, threads: Int, parallel: Int, promptTokens p: Int, outputTokens n: Int,
                                  seed: UInt64 = 1) async throws -> ThroughputPoint {
        let budget = min(max(512, parallel * p), 8192)
        let configuration = EngineConfiguration(
            threads: threads, kvCacheTokens: parallel * (p + n) + 64, blockSize: 16, contextLength: p + n + 16,
            limits: SchedulerLimits(maxNumSeqs: parallel, maxBatchedTokens: budget), enablePrefixCaching: false, watermark: 0,
            streamBufferLimit: n + 8)
        let engine = try InferenceEngine(model: model, configuration: configuration)  // on a throw, its deinit stops it
        var rng = SimulationRandom(seed: seed)
        let parameters = GenerationParameters(sampling: .greedy, maxTokens: n, ignoreEOS: true)
        // Warm-up: scratch buffers grow to this batch shape once.
        _ = try await consume(try engine.generate(EngineRequest(promptTokens: prompt(&rng, length: p, vocabulary: model.configuration.vocabularySize),
                                                                 parameters: GenerationParameters(sampling: .greedy, maxTokens: 2, ignoreEOS: true))))
        let steps0 = engine.statistics().steps
        let start = DispatchTime.now().uptimeNanoseconds
        let streams = try (0..<parallel).map { _ in
            try engine.generate(EngineRequest(promptTokens: prompt(&rng, length: p, vocabulary: model.configuration.vocabularySize), parameters: parameters))
        }
        let times = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for s in streams { group.addTask { try await consume(s) } }
            var all: [[UInt64]] = []
            for try await t in group { all.append(t) }
            return all
        }
        let boundary = times.map { $0.first ?? start }.max()!
        let end = times.compactMap(\.last).max() ?? boundary
        let after = times.reduce(0) { $0 + $1.filter { $0 > boundary }.count }
        let pre = Double(boundary - start) / 1e9, dec = Double(end - boundary) / 1e9
        let steps = engine.statistics().steps - steps0
        await engine.shutdown()
        return ThroughputPoint(
            parallel: parallel, promptTokens: p, outputTokens: n, prefillSeconds: pre, decodeSeconds: dec,
            prefillTokensPerSecond: Double(parallel * p) / max(pre, 1e-9),
            decodeTokensPerSecond: Double(after) / max(dec, 1e-9),
            totalTokensPerSecond: Double(parallel * (p + n)) / max(Double(end - start) / 1e9, 1e-9),
            steps: steps)
    }

    /// Speculative decoding on one request: the same greedy generation with and without prompt-lookup drafts.
    public struct SpeculationResult: Sendable, Hashable, Codable {
        public var workload: String
        public var tokens: Int
        /// Decode tokens per second after the first token, without and with speculation (medians).
        public var plainTokensPerSecond: Double
        public var speculativeTokensPerSecond: Double
        public var draftTokens: Int
        public var acceptedDraftTokens: Int
        /// Whether both runs produced the same tokens (greedy: they must).
        public var identical: Bool
        public var speedup: Double { speculativeTokensPerSecond / max(plainTokensPerSecond, 1e-9) }
        public var acceptanceRate: Double { draftTokens == 0 ? 0 : Double(acceptedDraftTokens) / Double(draftTokens) }
    }

    public static func speculation(model: LlamaModel, threads: Int, workload: String, prompt: [Int], maxTokens: Int, lookahead: Int,
                                   repetitions: Int = 3) async throws -> SpeculationResult {
        func run(_ spec: SpeculativeConfiguration?) async throws -> (tokens: [Int], rate: Double, drafts: Int, accepted: Int) {
            let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(
                threads: threads, kvCacheTokens: prompt.count + maxTokens + 64, contextLength: prompt.count + maxTokens + 16,
                limits: SchedulerLimits(maxNumSeqs: 1, maxBatchedTokens: 512), speculative: spec, streamBufferLimit: maxTokens + 8))
            var best: [Double] = []
            var tokens: [Int] = []
            for _ in 0..<(repetitions + 1) {
                var times: [UInt64] = []
                tokens = []
                for try await e in try engine.generate(EngineRequest(promptTokens: prompt, parameters: GenerationParameters(sampling: .greedy, maxTokens: maxTokens))) {
                    if case let .token(t, _) = e { tokens.append(t.token); times.append(DispatchTime.now().uptimeNanoseconds) }
                }
                if times.count > 1 { best.append(Double(times.count - 1) / (Double(times.last! - times.first!) / 1e9)) }
            }
            let s = engine.statistics()
            await engine.shutdown()
            let rates = best.dropFirst().sorted()  // the first run warms up
            return (tokens, rates.isEmpty ? 0 : rates[rates.count / 2], s.draftTokens, s.acceptedDraftTokens)
        }
        let plain = try await run(nil)
        let spec = try await run(SpeculativeConfiguration(lookahead: lookahead))
        return SpeculationResult(workload: workload, tokens: spec.tokens.count, plainTokensPerSecond: plain.rate, speculativeTokensPerSecond: spec.rate,
                                 draftTokens: spec.drafts, acceptedDraftTokens: spec.accepted, identical: plain.tokens == spec.tokens)
    }

    /// Token arrival times (uptime nanoseconds) of one single-sample stream.
    static func consume(_ stream: GenerationStream) async throws -> [UInt64] {
        var t: [UInt64] = []
        for try await e in stream {
            if case .token = e { t.append(DispatchTime.now().uptimeNanoseconds) }
        }
        return t
    }

    /// One policy under one open-loop workload.
    public struct WorkloadResult: Sendable, Hashable, Codable {
        public var policy: String
        public var rate: Double
        public var requests: Int
        public var seconds: Double
        public var ttft: LatencySummary
        public var tpot: LatencySummary
        public var e2e: LatencySummary
        /// Generated tokens per second of the run.
        public var outputTokensPerSecond: Double
        /// Requests per second that met the SLO.
        public var goodput: Double
        public var sloAttainment: Double
        public var preemptions: Int
        /// Most K/V blocks held at once, and what reserving each running request's whole context
        /// (the contiguous baseline) or its prompt + `max_tokens` would have held at that moment's
        /// concurrency peak.
        public var peakBlocksInUse: Int
        public var peakContiguousContextBlocks: Int
        public var peakContiguousMaxTokensBlocks: Int
    }

    /// Sends `requests` (arrival times in seconds from the start, prompt and output lengths) to an
    /// engine running `policy`, each at its arrival time, with random prompt ids and EOS ignored.
    public static func workload(model: LlamaModel, threads: Int, policy: any BatchingPolicy, requests: [InferenceRequest], rate: Double,
                                kvCacheTokens: Int, context: Int, slo: ServiceLevelObjective, seed: UInt64 = 7) async throws -> WorkloadResult {
        let configuration = EngineConfiguration(
            threads: threads, kvCacheTokens: kvCacheTokens, blockSize: 16, contextLength: context,
            limits: SchedulerLimits(maxNumSeqs: 64, maxBatchedTokens: 512), policy: policy, enablePrefixCaching: false,
            streamBufferLimit: 4096)
        let engine = try InferenceEngine(model: model, configuration: configuration)
        var rng = SimulationRandom(seed: seed)
        let vocab = model.configuration.vocabularySize
        let prompts = requests.map { prompt(&rng, length: $0.promptTokens, vocabulary: vocab) }
        let blockSize = 16
        let tracker = ReservationTracker()
        let start = DispatchTime.now().uptimeNanoseconds
        let sampler = Task {
            while !Task.isCancelled {
                tracker.sample(engine.statistics(), contextBlocks: (context + blockSize - 1) / blockSize)
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let records = try await withThrowingTaskGroup(of: (ttft: Double, tpot: Double?, e2e: Double, tokens: Int).self) { group in
            for (i, r) in requests.enumerated() {
                let due = start + UInt64(r.arrivalTime * 1e9)
                let now = DispatchTime.now().uptimeNanoseconds
                if due > now { try await Task.sleep(for: .nanoseconds(Int(due - now))) }
                let submitted = DispatchTime.now().uptimeNanoseconds
                let stream = try engine.generate(EngineRequest(promptTokens: prompts[i],
                                                               parameters: GenerationParameters(sampling: .greedy, maxTokens: r.outputTokens, ignoreEOS: true)))
                let reserve = (r.promptTokens + r.outputTokens + blockSize - 1) / blockSize
                group.addTask {
                    var first: UInt64 = 0, last: UInt64 = 0, count = 0
                    for try await e in stream {
                        guard case .token = e else { continue }
                        last = DispatchTime.now().uptimeNanoseconds
                        if first == 0 {
                            first = last
                            tracker.started(reserve)
                        }
                        count += 1
                    }
                    tracker.finished(reserve)
                    let ttft = Double(first - submitted) / 1e9, e2e = Double(last - submitted) / 1e9
                    return (ttft, count > 1 ? (e2e - ttft) / Double(count - 1) : nil, e2e, count)
                }
            }
            var out: [(ttft: Double, tpot: Double?, e2e: Double, tokens: Int)] = []
            for try await r in group { out.append(r) }
            return out
        }
        sampler.cancel()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stats = engine.statistics()
        await engine.shutdown()
        let good = records.filter { r in
            if let m = slo.maxTTFT, r.ttft > m { return false }
            if let m = slo.maxTPOT, let t = r.tpot, t > m { return false }
            if let m = slo.maxE2E, r.e2e > m { return false }
            return true
        }.count
        let peaks = tracker.peaks()
        return WorkloadResult(
            policy: policy.name, rate: rate, requests: records.count, seconds: seconds,
            ttft: LatencySummary(records.map(\.ttft)), tpot: LatencySummary(records.compactMap(\.tpot)), e2e: LatencySummary(records.map(\.e2e)),
            outputTokensPerSecond: Double(records.reduce(0) { $0 + $1.tokens }) / seconds,
            goodput: Double(good) / seconds, sloAttainment: records.isEmpty ? 0 : Double(good) / Double(records.count),
            preemptions: stats.preemptions, peakBlocksInUse: peaks.blocks, peakContiguousContextBlocks: peaks.context,
            peakContiguousMaxTokensBlocks: peaks.maxTokens)
    }
}

/// Peak memory bookkeeping of a workload run, from the consumers and the engine's statistics.
final class ReservationTracker: Sendable {
    private struct State {
        var reserved = 0
        var peakReserved = 0
        var peakBlocks = 0
        var peakRunningContext = 0
    }
    private let state = Mutex(State())

    func started(_ blocks: Int) { state.withLock { $0.reserved += blocks; $0.peakReserved = max($0.peakReserved, $0.reserved) } }
    func finished(_ blocks: Int) { state.withLock { $0.reserved -= blocks } }
    func sample(_ s: EngineStatistics, contextBlocks: Int) {
        state.withLock {
            $0.peakBlocks = max($0.peakBlocks, s.activeBlocks)
            $0.peakRunningContext = max($0.peakRunningContext, s.requestsRunning * contextBlocks)
        }
    }
    func peaks() -> (blocks: Int, context: Int, maxTokens: Int) {
        state.withLock { ($0.peakBlocks, $0.peakRunningContext, $0.peakReserved) }
    }
}
