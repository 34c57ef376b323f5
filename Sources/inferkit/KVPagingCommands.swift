import ArgumentParser
import Foundation
import KVPaging
import TensorCore

/// `inferkit bench kvpaging` — capacity, prefix caching, block-manager speed and paged-attention cost.
struct BenchKVPaging: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvpaging",
        abstract: "Benchmark the paged KV cache: concurrent sequences vs a contiguous baseline, prefix caching, allocator speed, paged vs contiguous decode attention.",
        discussion: """
        Capacity uses the KV budget left on one 80 GiB GPU after Llama-3.1-8B FP16 weights at 0.9 memory \
        utilisation, and log-normal request lengths. Build with -c release; results vary on a shared machine, \
        so compare the ratios printed for the same run.
        """
    )

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Flag(help: "Smaller runs (for a smoke test).")
    var quick = false

    @Option(help: "Repetitions for timed parts (the median is reported).")
    var repetitions = 7

    @Option(help: "Sections to run (comma-separated): capacity, prefix, speed, attention, opencl (not in the default).")
    var only = "capacity,prefix,speed,attention"

    @Option(help: "Random seed of the workloads.")
    var seed: UInt64 = 2024

    mutating func run() throws {
        guard repetitions >= 1, repetitions <= 1000 else { throw ValidationError("--repetitions is \(repetitions); pass 1…1000") }
        let sections = Set(only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let known: Set<String> = ["capacity", "prefix", "speed", "attention", "opencl"]
        guard sections.isSubset(of: known), !sections.isEmpty else {
            throw ValidationError("--only takes a comma-separated subset of: capacity, prefix, speed, attention, opencl")
        }
        if sections.contains("opencl") {   // opt-in: OpenCL paged vs contiguous attention (KVPagingOpenCLBench.swift)
            try KVPagingOpenCLBench.printReport(repetitions: repetitions, quick: quick, json: json)
            if sections.count == 1 { return }
        }
        var report = KVPagingBenchReport(budget: .llama31_8B_on80GiB, machine: KVPagingBenchReport.machineDescription())
        let steps = quick ? 1_500 : 6_000
        if sections.contains("capacity") {
            progress("capacity: steady-state simulation, \(steps) decode steps per allocator…")
            report.capacity = try CapacityBench.run(budget: report.budget, steps: steps, seed: seed)
        }
        if sections.contains("prefix") {
            progress("prefix caching: 80% of requests share a 1,000-token system prompt…")
            report.prefix = try PrefixBench.run(budget: report.budget, steps: steps, seed: seed)
        }
        if sections.contains("speed") {
            progress("block manager speed…")
            report.speed = try SpeedBench.run(repetitions: repetitions, quick: quick)
        }
        if sections.contains("attention") {
            progress("paged vs contiguous decode attention…")
            report.attention = try AttentionBench.run(repetitions: repetitions, quick: quick)
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }

    private func progress(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }
}

// MARK: - Budget and workload

/// The KV memory budget of the capacity benchmark.
struct KVBudget: Codable, Sendable {
    var gpuBytes: Double
    var utilisation: Double
    var weightBytes: Double
    var kvBytesPerToken: Double
    var blockSize: Int
    var maxContext: Int

    /// One 80 GiB GPU, 0.9 utilisation, Llama-3.1-8B FP16: 8.03e9 params × 2 B; KV per token
    /// 2 (K and V) × 32 layers × 8 KV heads × 128 dims × 2 B = 131,072 B.
    static let llama31_8B_on80GiB = KVBudget(
        gpuBytes: 80 * 1_073_741_824, utilisation: 0.9, weightBytes: 8.03e9 * 2,
        kvBytesPerToken: 2 * 32 * 8 * 128 * 2, blockSize: 16, maxContext: 8192
    )

    var kvBytes: Double { gpuBytes * utilisation - weightBytes }
    var tokens: Int { Int(kvBytes / kvBytesPerToken) }
    var blocks: Int { tokens / blockSize }
}

/// Log-normal request lengths fitted to chat traffic: prompt median 200 (σ = 1.0 in log space, mean ≈ 330),
/// output median 250 (σ = 0.8, mean ≈ 344); prompt capped at 8,191 tokens, prompt + output at 8,192.
struct ChatWorkload {
    var rng: SplitMix64
    let maxContext: Int
    static let promptMu = log(200.0), promptSigma = 1.0
    static let outputMu = log(250.0), outputSigma = 0.8

    init(seed: UInt64, maxContext: Int) {
        rng = SplitMix64(seed: seed)
        self.maxContext = maxContext
    }

    mutating func normal() -> Double {
        let u1 = max(rng.nextUnitDouble(), 1e-300), u2 = rng.nextUnitDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    mutating func next() -> (prompt: Int, output: Int) {
        let p = min(maxContext - 1, max(1, Int(exp(Self.promptMu + Self.promptSigma * normal()).rounded())))
        let o = min(maxContext - p, max(1, Int(exp(Self.outputMu + Self.outputSigma * normal()).rounded())))
        return (p, o)
    }
}

// MARK: - Capacity

struct CapacityRow: Codable, Sendable {
    var allocator: String
    /// Mean running sequences per decode step over the measured window.
    var meanConcurrentSequences: Double
    var peakConcurrentSequences: Int
    /// Mean of (allocated slots not holding a token) / allocated slots.
    var meanWasteFraction: Double
    /// Mean fraction of the KV budget's blocks in use.
    var meanBlockUtilisation: Double
    var completedRequests: Int
    var preemptions: Int
}

struct CapacityReport: Codable, Sendable {
    var rows: [CapacityRow]
    var steps: Int
    var warmupSteps: Int
    var ratioVsMaxContext: Double
    var ratioVsMaxTokens: Double
}

/// A request in the steady-state loop.
struct SimRequest {
    var prompt: Int
    var output: Int
    var tokens: [Int]?
}

/// Steady-state decode loop: an always-full queue, FCFS admission while the allocator admits,
/// one token per running sequence per step, release at completion, recompute-preemption of the
/// newest sequence when an append finds no block.
struct SteadyState<A: KVCacheAllocator> {
    var allocator: A
    var queue: [SimRequest] = []
    var next: () -> SimRequest
    var running: [(id: SequenceID, request: SimRequest, generated: Int)] = []
    var nextID = 0
    var completed = 0
    var preemptions = 0
    var concurrencySum = 0.0
    var wasteSum = 0.0
    var utilSum = 0.0
    var peak = 0
    var samples = 0

    mutating func step(measure: Bool) throws {
        // Admission (head of line blocks, like FCFS schedulers).
        while true {
            if queue.isEmpty { queue.append(next()) }
            let r = queue[0]
            // Clients send max_tokens (2,048), not the output length they will get.
            let prompt: KVPrompt = r.tokens.map { .tokens($0, maxNewTokens: CapacityBench.maxTokensCap) } ?? .length(r.prompt, maxNewTokens: CapacityBench.maxTokensCap)
            let id = SequenceID(nextID)
            guard case .admitted = try allocator.admit(id, prompt: prompt) else { break }
            nextID += 1
            queue.removeFirst()
            running.append((id, r, 0))
        }
        // One decode step.
        var i = 0
        while i < running.count {
            let id = running[i].id
            switch try allocator.appendSlot(id) {
            case .appended:
                running[i].generated += 1
                if running[i].generated >= running[i].request.output {
                    try allocator.release(id)
                    completed += 1
                    running.remove(at: i)
                    continue
                }
                i += 1
            case .needsPreemption:
                // Preempt the newest running sequence (recompute later): requeue its request in front.
                let victim = running.removeLast()
                try allocator.release(victim.id)
                queue.insert(victim.request, at: 0)
                preemptions += 1
                if victim.id == id { continue }   // it was this one; `i` now points past the end or at the next
            }
        }
        if measure {
            let u = allocator.usage
            samples += 1
            concurrencySum += Double(running.count)
            peak = max(peak, running.count)
            wasteSum += u.wasteFraction
            utilSum += Double(u.activeBlocks) / Double(u.totalBlocks)
        }
    }

    func row(_ name: String) -> CapacityRow {
        CapacityRow(
            allocator: name,
            meanConcurrentSequences: concurrencySum / Double(max(samples, 1)),
            peakConcurrentSequences: peak,
            meanWasteFraction: wasteSum / Double(max(samples, 1)),
            meanBlockUtilisation: utilSum / Double(max(samples, 1)),
            completedRequests: completed,
            preemptions: preemptions
        )
    }
}

enum CapacityBench {
    static let maxTokensCap = 2048

    static func simulate<A: KVCacheAllocator>(_ allocator: A, name: String, steps: Int, seed: UInt64, budget: KVBudget) throws -> CapacityRow {
        var workload = ChatWorkload(seed: seed, maxContext: budget.maxContext)
        var sim = SteadyState(allocator: allocator) {
            let (p, o) = workload.next()
            return SimRequest(prompt: p, output: min(o, maxTokensCap), tokens: nil)
        }
        let warmup = steps / 3
        for s in 0..<steps { try sim.step(measure: s >= warmup) }
        return sim.row(name)
    }

    static func run(budget: KVBudget, steps: Int, seed: UInt64) throws -> CapacityReport {
        let cfg = KVCacheConfiguration(blockCount: budget.blocks, blockSize: budget.blockSize, maxSequenceLength: budget.maxContext, enablePrefixCaching: false)
        let paged = try simulate(KVBlockManager(cfg), name: "paged (16-token blocks)", steps: steps, seed: seed, budget: budget)
        let full = try simulate(ContiguousKVAllocator(cfg, reservation: .maxSequenceLength), name: "contiguous, reserve max context (8,192)", steps: steps, seed: seed, budget: budget)
        let capped = try simulate(ContiguousKVAllocator(cfg, reservation: .promptPlusMaxNewTokens), name: "contiguous, reserve prompt + max_tokens (2,048)", steps: steps, seed: seed, budget: budget)
        return CapacityReport(
            rows: [paged, full, capped], steps: steps, warmupSteps: steps / 3,
            ratioVsMaxContext: paged.meanConcurrentSequences / full.meanConcurrentSequences,
            ratioVsMaxTokens: paged.meanConcurrentSequences / capped.meanConcurrentSequences
        )
    }
}

// MARK: - Prefix caching

struct PrefixReport: Codable, Sendable {
    var sharedFraction: Double
    var systemPromptTokens: Int
    var queriedTokens: Int
    var hitTokens: Int
    var hitRate: Double
    var blocksSaved: Int
    var admissions: Int
    var meanConcurrentWithCaching: Double
    var meanConcurrentWithoutCaching: Double
    var concurrencyRatio: Double
}

enum PrefixBench {
    static func run(budget: KVBudget, steps: Int, seed: UInt64) throws -> PrefixReport {
        let systemLength = 1_000
        var sysRng = SplitMix64(seed: seed ^ 0x5157)
        let system = (0..<systemLength).map { _ in Int(sysRng.next() % 128_000) }
        func simulate(caching: Bool) throws -> (row: CapacityRow, stats: PrefixCacheStats) {
            var workload = ChatWorkload(seed: seed, maxContext: budget.maxContext)
            var rng = SplitMix64(seed: seed &+ 17)
            let cfg = KVCacheConfiguration(blockCount: budget.blocks, blockSize: budget.blockSize, maxSequenceLength: budget.maxContext, enablePrefixCaching: caching)
            var sim = SteadyState(allocator: try KVBlockManager(cfg)) {
                let (p, o) = workload.next()
                let shared = rng.nextUnitDouble() < 0.8
                let user = (0..<min(p, budget.maxContext - systemLength - 1)).map { _ in Int(rng.next() % 128_000) }
                let tokens = shared ? system + user : user
                return SimRequest(prompt: tokens.count, output: min(o, budget.maxContext - tokens.count, CapacityBench.maxTokensCap), tokens: tokens)
            }
            let warmup = steps / 3
            for s in 0..<steps { try sim.step(measure: s >= warmup) }
            return (sim.row(caching ? "paged + prefix caching" : "paged, caching off"), sim.allocator.prefixCacheStats)
        }
        let on = try simulate(caching: true)
        let off = try simulate(caching: false)
        return PrefixReport(
            sharedFraction: 0.8, systemPromptTokens: systemLength,
            queriedTokens: on.stats.queriedTokens, hitTokens: on.stats.hitTokens, hitRate: on.stats.hitRate,
            blocksSaved: on.stats.hitBlocks, admissions: on.stats.queries,
            meanConcurrentWithCaching: on.row.meanConcurrentSequences,
            meanConcurrentWithoutCaching: off.row.meanConcurrentSequences,
            concurrencyRatio: on.row.meanConcurrentSequences / off.row.meanConcurrentSequences
        )
    }
}

// MARK: - Speed

struct SpeedReport: Codable, Sendable {
    /// Block-level allocate + release pairs per second (one core).
    var poolPairsPerSecond: Double
    /// Sequence-level admit(16-token length prompt) + release pairs per second (one core).
    var sequencePairsPerSecond: Double
    /// Median admission time of a 2,000-token prompt whose first 1,984 tokens are cached (124 hits), µs.
    var admit2000CachedMicroseconds: Double
    /// Median admission time of a 2,000-token prompt with no cached prefix (lookup miss, 125 blocks allocated and registered), µs.
    var admit2000UncachedMicroseconds: Double
    /// Median admission of a 2,000-token prompt given only by length (no hashing), µs.
    var admit2000LengthOnlyMicroseconds: Double
}

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

enum SpeedBench {
    static func run(repetitions: Int, quick: Bool) throws -> SpeedReport {
        // Block level: a pool with some blocks in use, then allocate/release pairs.
        var pool = try KVBlockPool(blockCount: 29_207, blockSize: 16, cachingEnabled: true)
        for _ in 0..<10_000 { _ = pool.allocate() }
        let pairs = quick ? 2_000_000 : 20_000_000
        var poolRates: [Double] = []
        for _ in 0..<repetitions {
            var sum = 0
            let t = try seconds {
                for _ in 0..<pairs {
                    guard let b = pool.allocate() else { throw ValidationError("pool unexpectedly full") }
                    sum &+= b
                    try pool.release(b)
                }
            }
            blackHole(sum)
            poolRates.append(Double(pairs) / t)
        }

        // Sequence level.
        var kv = try KVBlockManager(KVCacheConfiguration(blockCount: 29_207, blockSize: 16))
        let seqPairs = quick ? 200_000 : 2_000_000
        var seqRates: [Double] = []
        var nextID = 0
        for _ in 0..<repetitions {
            let t = try seconds {
                for _ in 0..<seqPairs {
                    let id = SequenceID(nextID)
                    nextID += 1
                    _ = try kv.admit(id, prompt: .length(16))
                    try kv.release(id)
                }
            }
            seqRates.append(Double(seqPairs) / t)
        }

        // Admission of 2,000-token prompts: time a batch of admissions of distinct ids, release untimed.
        let batch = 64
        var rng = SplitMix64(seed: 99)
        let prompts = (0..<batch).map { _ in (0..<2_000).map { _ in Int(rng.next() % 128_000) } }
        let shared = prompts[0]
        func admitBatch(_ make: (Int) -> KVPrompt, evictBetween: Bool) throws -> Double {
            var samples: [Double] = []
            var kv = try KVBlockManager(KVCacheConfiguration(blockCount: 29_207, blockSize: 16))
            let rounds = quick ? 10 : 60
            var id = 0
            for round in 0..<(rounds + 2) {
                let ids = (0..<batch).map { i in SequenceID(id + i) }
                id += batch
                let t = try seconds {
                    for (i, sid) in ids.enumerated() {
                        guard case .admitted = try kv.admit(sid, prompt: make(i)) else { throw ValidationError("admission failed") }
                    }
                }
                for sid in ids { try kv.release(sid) }
                if evictBetween { kv.evictCachedBlocks() }
                if round >= 2 { samples.append(t / Double(batch) * 1e6) }   // two warm-up rounds
            }
            return median(samples)
        }
        let cached = try admitBatch({ _ in .tokens(shared) }, evictBetween: false)
        let uncached = try admitBatch({ i in .tokens(prompts[i]) }, evictBetween: true)
        let lengthOnly = try admitBatch({ _ in .length(2_000) }, evictBetween: false)
        return SpeedReport(
            poolPairsPerSecond: median(poolRates), sequencePairsPerSecond: median(seqRates),
            admit2000CachedMicroseconds: cached, admit2000UncachedMicroseconds: uncached,
            admit2000LengthOnlyMicroseconds: lengthOnly
        )
    }
}

// MARK: - Attention

struct AttentionReport: Codable, Sendable {
    var batch: Int, context: Int, queryHeads: Int, kvHeads: Int, headDim: Int, blockSize: Int
    var threads: Int
    var pagedMilliseconds: Double
    var contiguousMilliseconds: Double
    /// paged / contiguous (goal ≤ 1.25).
    var ratio: Double
    var maxAbsDifference: Float
    var pagedGFLOPs: Double
}

enum AttentionBench {
    static func run(repetitions: Int, quick: Bool) throws -> AttentionReport {
        let (b, ctx, hq, hk, d, bs) = (16, quick ? 512 : 2_048, 32, 8, 128, 16)
        let blocksPerSeq = ctx / bs
        var storage = try PagedKVStorage(numBlocks: b * blocksPerSeq, blockSize: bs, kvHeads: hk, headDim: d)
        // Random, non-contiguous block tables (a fragmented pool after hours of serving).
        var rng = SplitMix64(seed: 7)
        var blocks = Array(0..<(b * blocksPerSeq))
        blocks.shuffle(using: &rng)
        let tables = (0..<b).map { Array(blocks[($0 * blocksPerSeq)..<(($0 + 1) * blocksPerSeq)]) }
        // Contiguous K/V [B, Hkv, T, D] and the same values written into the paged storage.
        let key = Tensor.random(shape: [b, hk, ctx, d], seed: 1)
        let value = Tensor.random(shape: [b, hk, ctx, d], seed: 2)
        for s in 0..<b {
            var slots: [KVSlot] = []
            for p in 0..<ctx { slots.append(KVSlot(block: tables[s][p / bs], offset: p % bs)) }
            // [Hkv, T, D] → [T, Hkv, D]
            func rows(_ t: Tensor) throws -> Tensor {
                try Tensor(shape: [ctx, hk, d], scalars: (0..<(ctx * hk * d)).map { i in
                    let p = i / (hk * d), h = (i / d) % hk, x = i % d
                    return t.scalars[((s * hk + h) * ctx + p) * d + x]
                })
            }
            try storage.write(key: rows(key), value: rows(value), at: slots)
        }
        let query = Tensor.random(shape: [b, hq, d], seed: 3)
        let query4 = try query.reshaped([b, hq, 1, d])
        let batch = PagedAttentionBatch.decode(blockTables: tables, contextLengths: Array(repeating: ctx, count: b))
        let kernel = CPUPagedAttention()
        let scale = 1 / Float(d).squareRoot()
        var paged: [Double] = [], contiguous: [Double] = []
        var outP = Tensor(zeros: [1]), outC = Tensor(zeros: [1])
        // Interleave the two so machine noise hits both alike; one warm-up each.
        for r in 0..<(repetitions + 1) {
            let tp = try seconds { outP = try kernel.attention(query: query, storage: storage, batch: batch, scale: scale) }
            let tc = try seconds { outC = try kernel.contiguousAttention(query: query4, key: key, value: value, causal: false, scale: scale) }
            if r > 0 {
                paged.append(tp)
                contiguous.append(tc)
            }
        }
        let diff = zip(outP.scalars, outC.scalars).map { abs($0 - $1) }.max() ?? 0
        let mp = median(paged), mc = median(contiguous)
        return AttentionReport(
            batch: b, context: ctx, queryHeads: hq, kvHeads: hk, headDim: d, blockSize: bs,
            threads: ProcessInfo.processInfo.activeProcessorCount,
            pagedMilliseconds: mp * 1e3, contiguousMilliseconds: mc * 1e3, ratio: mp / mc,
            maxAbsDifference: diff, pagedGFLOPs: 4.0 * Double(b * hq * ctx * d) / mp / 1e9
        )
    }
}

// MARK: - Report

struct KVPagingBenchReport: Codable, Sendable {
    var budget: KVBudget
    var machine: String
    var capacity: CapacityReport?
    var prefix: PrefixReport?
    var speed: SpeedReport?
    var attention: AttentionReport?

    static func machineDescription() -> String {
        var model = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let name = line.split(separator: ":", maxSplits: 1).last {
            model = name.trimmingCharacters(in: .whitespaces)
        }
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    var table: String {
        func f(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
        func pct(_ x: Double) -> String { String(format: "%.2f%%", x * 100) }
        var out = "KV paging benchmark — \(machine)\n"
        out += "KV budget: \(f(budget.gpuBytes / 1_073_741_824, 0)) GiB × \(budget.utilisation) − \(f(budget.weightBytes / 1e9, 2)) GB weights = "
        out += "\(f(budget.kvBytes / 1e9, 2)) GB = \(budget.tokens) tokens = \(budget.blocks) blocks of \(budget.blockSize) "
        out += "(\(Int(budget.kvBytesPerToken)) B/token)\n"
        if let c = capacity {
            out += "\n[capacity] log-normal lengths: prompt median 200 (σ=1.0), output median 250 (σ=0.8), max_tokens 2,048, context ≤ 8,192; "
            out += "\(c.steps) decode steps, first \(c.warmupSteps) not measured\n"
            out += "  allocator                                        mean seqs  peak  waste    util   done  preempt\n"
            for r in c.rows {
                out += "  " + r.allocator.padding(toLength: 48, withPad: " ", startingAt: 0)
                out += " " + f(r.meanConcurrentSequences).leftPad(9) + " " + "\(r.peakConcurrentSequences)".leftPad(5)
                out += " " + pct(r.meanWasteFraction).leftPad(7) + " " + pct(r.meanBlockUtilisation).leftPad(7)
                out += " " + "\(r.completedRequests)".leftPad(6) + " " + "\(r.preemptions)".leftPad(8) + "\n"
            }
            out += "  paged / contiguous(max context) = \(f(c.ratioVsMaxContext, 2))×   paged / contiguous(prompt + max_tokens) = \(f(c.ratioVsMaxTokens, 2))×\n"
        }
        if let p = prefix {
            out += "\n[prefix caching] \(Int(p.sharedFraction * 100))% of requests start with the same \(p.systemPromptTokens)-token system prompt\n"
            out += "  hit rate \(pct(p.hitRate)) (\(p.hitTokens) of \(p.queriedTokens) prompt tokens over \(p.admissions) admissions); blocks saved \(p.blocksSaved)\n"
            out += "  mean concurrent sequences: \(f(p.meanConcurrentWithCaching)) with caching vs \(f(p.meanConcurrentWithoutCaching)) without (\(f(p.concurrencyRatio, 2))×)\n"
        }
        if let s = speed {
            out += "\n[speed] one core\n"
            out += "  pool allocate+release:            \(f(s.poolPairsPerSecond / 1e6, 1)) M pairs/s\n"
            out += "  admit(16 tokens)+release:         \(f(s.sequencePairsPerSecond / 1e6, 2)) M pairs/s\n"
            out += "  admit 2,000-token prompt, cached: \(f(s.admit2000CachedMicroseconds, 2)) µs (124 prefix hits)\n"
            out += "  admit 2,000-token prompt, miss:   \(f(s.admit2000UncachedMicroseconds, 2)) µs (125 blocks allocated and registered)\n"
            out += "  admit 2,000 tokens, length only:  \(f(s.admit2000LengthOnlyMicroseconds, 2)) µs\n"
        }
        if let a = attention {
            out += "\n[decode attention] B=\(a.batch), context \(a.context), Hq=\(a.queryHeads), Hkv=\(a.kvHeads), D=\(a.headDim), block \(a.blockSize), \(a.threads) threads\n"
            out += "  paged \(f(a.pagedMilliseconds, 2)) ms, contiguous \(f(a.contiguousMilliseconds, 2)) ms → paged/contiguous = \(f(a.ratio, 3))× "
            out += "(\(f(a.pagedGFLOPs, 1)) GFLOP/s; max |diff| \(a.maxAbsDifference))\n"
        }
        return out
    }
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
