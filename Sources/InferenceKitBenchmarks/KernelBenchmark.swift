import CInferenceKitBLAS
import Foundation
import TensorCore
import TensorCoreBLAS

/// Settings of a kernel benchmark run.
public struct KernelBenchmarkConfiguration: Sendable {
    public var workloads: [KernelWorkload]
    public var backends: [BenchmarkBackend]
    /// Untimed runs of each row before timing.
    public var warmups: Int
    /// Timed runs per row (fewer for rows slower than ``slowRowSeconds``, never under 3).
    public var repetitions: Int
    /// A row whose warm-up took longer than this is timed only 3 times.
    public var slowRowSeconds: Double
    /// Rows faster than this are run once untimed right before each timed run (steady state for short calls).
    public var rewarmBelowSeconds: Double
    /// Pause before each timed run of a short row (see ``rewarmBelowSeconds``), in microseconds.
    public var settleMicroseconds: UInt32
    /// Independent key/value caches decode rotates through (≥ 4 × 32 MiB defeats a 32 MiB L3).
    public var decodeCacheCopies: Int
    public var bandwidthThreads: Int
    /// Bytes of the read buffer of the start-of-run bandwidth figure (8× a 32 MiB L3 by default).
    public var bandwidthBytes: Int
    public var quick: Bool
    /// Complete passes over the workloads; rows report the median of the passes' medians, ratios the median ratio.
    public var runs: Int
    /// The command line, recorded in the report.
    public var command: String

    /// The full run (`quick: false`) or the `--quick` subset.
    public init(quick: Bool, backends: [BenchmarkBackend] = BenchmarkBackend.standard, command: String = "inferkit bench kernels") {
        self.quick = quick
        self.workloads = quick ? KernelWorkload.quickSuite : KernelWorkload.fullSuite
        self.backends = backends
        self.warmups = 1
        self.repetitions = quick ? 3 : 7
        self.slowRowSeconds = quick ? 0.5 : 2
        self.decodeCacheCopies = 4
        self.rewarmBelowSeconds = 0.05
        self.settleMicroseconds = 2000
        self.bandwidthThreads = 2
        self.bandwidthBytes = 256 << 20
        self.command = command
        self.runs = 1
    }
}

/// The kernel benchmark: every workload on every available backend, with raw `sgemm` and memory bandwidth
/// baselines measured in the same run, rows of one workload timed interleaved (in shuffled rounds) so that
/// machine noise hits them alike.
public struct KernelBenchmark {
    public var configuration: KernelBenchmarkConfiguration

    public init(configuration: KernelBenchmarkConfiguration) {
        self.configuration = configuration
    }

    /// Runs everything; `progress` receives one line per step (print it to stderr).
    public func run(progress: (String) -> Void = { _ in }) -> KernelBenchmarkReport {
        let started = now()
        let config = configuration
        progress("measuring memory bandwidth (\(config.bandwidthThreads) threads)…")
        let bandwidth = MemoryBandwidth.measure(threads: config.bandwidthThreads, readBytes: config.bandwidthBytes, copyBytes: config.bandwidthBytes / 2, repetitions: config.quick ? 3 : 5)

        // Create each backend once.
        var live: [(BenchmarkBackend, any ComputeBackend, (any DeviceKernelRunner)?)] = []
        var devices: [String: String] = [:]
        for b in config.backends {
            do {
                let backend = try b.provider.make()
                let runner = try b.kernelRunner?(backend)
                live.append((b, backend, runner))
                devices[b.name] = backend.deviceDescription
            } catch {
                devices[b.name] = "unavailable — \(error)"
            }
        }

        var runResults: [[KernelResult]] = []
        var runRatios: [[KernelRatio]] = []
        let runs = max(1, config.runs)
        for run in 0..<runs {
            var results: [KernelResult] = []
            var ratios: [KernelRatio] = []
            for (index, w) in config.workloads.enumerated() {
                let prefix = runs > 1 ? "run \(run + 1)/\(runs) " : ""
                progress("\(prefix)[\(index + 1)/\(config.workloads.count)] \(w.label)…")
                let rows = measure(w, live, bandwidth: bandwidth)
                results += rows
                ratios += Self.ratios(for: w, rows, bandwidth: bandwidth)
            }
            runResults.append(results)
            runRatios.append(ratios)
        }
        let results = Self.merge(runResults)
        let ratios = Self.merge(runRatios)
        let blasConfig = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        return KernelBenchmarkReport(
            command: config.command, date: ISO8601DateFormatter().string(from: Date()), quick: config.quick,
            machine: .current(blas: "\(blasConfig.trimmingCharacters(in: .whitespaces)), \(openblas_get_num_threads()) threads"),
            backends: devices, bandwidth: bandwidth, results: results, ratios: ratios, runs: runs, totalSeconds: now() - started)
    }

    // MARK: - Repeated runs

    /// Rows of several runs → one row each: the median of the runs' medians.
    static func merge(_ runs: [[KernelResult]]) -> [KernelResult] {
        guard var merged = runs.first, runs.count > 1 else { return runs.first ?? [] }
        for i in merged.indices {
            let same = runs.compactMap { rows in
                rows.first { $0.workload == merged[i].workload && $0.backend == merged[i].backend && $0.mode == merged[i].mode }
            }
            let medians = same.compactMap(\.medianSeconds)
            guard let median = TimingSamples(seconds: medians).median else { continue }
            var r = merged[i]
            r.medianSeconds = median
            r.minSeconds = same.compactMap(\.minSeconds).min()
            r.maxSeconds = same.compactMap(\.maxSeconds).max()
            r.repetitions = same.map(\.repetitions).reduce(0, +)
            r.runMedians = medians
            r.gflops = r.flopsPerCall > 0 ? r.flopsPerCall / median / 1e9 : nil
            r.gbps = r.bytesPerCall / median / 1e9
            r.kvGBps = r.kvBytesPerCall > 0 ? r.kvBytesPerCall / median / 1e9 : nil
            merged[i] = r
        }
        return merged
    }

    /// Ratios of several runs → the median per ratio, with every run's value kept.
    static func merge(_ runs: [[KernelRatio]]) -> [KernelRatio] {
        guard var merged = runs.first, runs.count > 1 else { return runs.first ?? [] }
        for i in merged.indices {
            let values = runs.compactMap { $0.first { $0.name == merged[i].name }?.value }
            merged[i].value = TimingSamples(seconds: values).median ?? merged[i].value
            merged[i].runs = values
        }
        return merged
    }

    // MARK: - Measuring one workload

    /// A row to time: its metadata and a closure running the workload once on input set `i`.
    private struct Candidate {
        var result: KernelResult
        var run: (Int) throws -> Void
        var samples = TimingSamples()
        var target = 0
        var warmSeconds = Double.infinity
        var failed: String?
        /// FLOPs and bytes of one call when they differ from the workload's (the same-FLOPs GEMM baseline).
        var flops: Double?
        var bytes: Double?
    }

    private func measure(_ w: KernelWorkload, _ live: [(BenchmarkBackend, any ComputeBackend, (any DeviceKernelRunner)?)],
                         bandwidth: MemoryBandwidth) -> [KernelResult] {
        let config = configuration
        let inputs = Self.makeInputs(w, copies: w.kind == .decodeAttention ? config.decodeCacheCopies : 1)
        var candidates: [Candidate] = []
        var skipped: [KernelResult] = []
        func row(_ backend: String, _ mode: MeasurementMode, variant: String? = nil, note: String? = nil) -> KernelResult {
            KernelResult(workload: w.label, kind: w.kind, backend: backend, mode: mode, variant: variant, medianSeconds: nil,
                         minSeconds: nil, maxSeconds: nil, repetitions: 0, runMedians: nil, gflops: nil, gbps: nil, kvGBps: nil,
                         flopsPerCall: w.flops, bytesPerCall: w.bytes, kvBytesPerCall: w.kvBytes, note: note)
        }

        for (b, backend, runner) in live {
            if let kinds = b.kinds, !kinds.contains(w.kind) { continue }
            if let limit = b.flopLimit, w.flops > limit {
                skipped.append(row(b.name, .endToEnd, note: String(format: "skipped: the %@ backend runs only calls ≤ %.1f GFLOP (this one is %.1f)", b.name, limit / 1e9, w.flops / 1e9)))
                continue
            }
            let variant = runner?.variant(for: w)
            candidates.append(Candidate(result: row(b.name, .endToEnd, variant: variant), run: Self.endToEnd(w, backend, inputs)))
            if let runner {
                do {
                    let prepared = try runner.prepare(w, inputs: inputs)
                    candidates.append(Candidate(result: row("\(b.name) (kernel-only)", .kernelOnly, variant: variant), run: prepared.run))
                } catch {
                    skipped.append(row("\(b.name) (kernel-only)", .kernelOnly, note: "failed: \(error)"))
                }
            }
        }
        // Baselines on the same buffers.
        switch w.kind {
        case .matmul:
            candidates.append(Candidate(result: row("sgemm (raw)", .baseline, variant: "cblas_sgemm, same buffers"),
                                        run: Self.rawSgemm(inputs.sets[0][0], inputs.sets[0][1], m: w.m, n: w.n, k: w.k, transposeB: w.transposeB)))
        case .prefillAttention:
            // One square GEMM with the attention's FLOPs (n rounded to 16).
            let edge: Double = (pow(w.flops / 2, 1.0 / 3) / 16).rounded()
            let n = max(16, Int(edge) * 16)
            let gemmFlops = 2 * Double(n) * Double(n) * Double(n)
            let a = Tensor.random(shape: [n, n], seed: 11), b = Tensor.random(shape: [n, n], seed: 12)
            let note = String(format: "%.1f GFLOP vs attention %.1f", gemmFlops / 1e9, w.flops / 1e9)
            var c = Candidate(result: row("sgemm \(n)³ (same FLOPs)", .baseline, variant: note),
                              run: Self.rawSgemm(a, b, m: n, n: n, k: n, transposeB: false))
            c.flops = gemmFlops
            c.bytes = 12 * Double(n) * Double(n)
            candidates.append(c)
        case .decodeAttention:
            // Memory read bandwidth, timed in the same rounds as the kernels (the machine may be shared): each
            // run reads as many bytes as decode's K/V, from as many rotating buffers as decode has caches.
            let copies = max(1, config.decodeCacheCopies)
            let probe = MemoryReadProbe(bytes: Int(w.kvBytes), chunks: copies, threads: config.bandwidthThreads)
            var c = Candidate(result: row("memory read (\(config.bandwidthThreads) threads)", .baseline,
                                          variant: "sum of \(Int(w.kvBytes) >> 20) MiB, rotating over \(copies) buffers"),
                              run: { i in probe.run(i) })
            c.flops = 0
            c.bytes = w.kvBytes
            candidates.append(c)
        }

        // Warm up, then choose repetitions from the warm-up time.
        for i in candidates.indices {
            do {
                var warm = 0.0
                for r in 0..<max(1, config.warmups) { warm = try timeOnce { try candidates[i].run(r) } }
                candidates[i].target = warm > config.slowRowSeconds ? 3 : config.repetitions
                candidates[i].warmSeconds = warm
            } catch {
                candidates[i].failed = "failed: \(error)"
            }
        }
        // Rounds: every row once per round, in a freshly shuffled order, so that drift on a shared machine hits
        // every row alike and no row always follows the same neighbour. A row that runs in under
        // ``KernelBenchmarkConfiguration/rewarmBelowSeconds`` is first run once untimed in its slot: short calls
        // would otherwise measure how long the previous row's threads (OpenBLAS's pool, PoCL's workers) take to
        // wake up or spin down rather than the kernel itself.
        var round = 0
        var rng = SplitMix64(seed: 0x5EED)
        while candidates.contains(where: { $0.failed == nil && $0.samples.seconds.count < $0.target }) {
            var order = Array(candidates.indices)
            order.shuffle(using: &rng)
            for i in order where candidates[i].failed == nil && candidates[i].samples.seconds.count < candidates[i].target {
                do {
                    // The untimed run uses input set `round + 2`, so decode's timed run still reads a cache
                    // that three other caches (96 MiB) have passed through since it was last touched.
                    if candidates[i].warmSeconds < config.rewarmBelowSeconds {
                        try candidates[i].run(round + 2)
                        // Yield briefly: on a shared machine the scheduler then starts the timed call with a fresh
                        // slice instead of preempting it part-way (short calls otherwise measure our CPU share).
                        if config.settleMicroseconds > 0 { usleep(config.settleMicroseconds) }
                    }
                    let t = try timeOnce { try candidates[i].run(round) }
                    candidates[i].samples.seconds.append(t)
                } catch {
                    candidates[i].failed = "failed: \(error)"
                }
            }
            round += 1
        }

        var rows: [KernelResult] = []
        for c in candidates {
            var r = c.result
            if let failure = c.failed {
                r.note = failure
            } else if let median = c.samples.median {
                r.medianSeconds = median
                r.minSeconds = c.samples.minimum
                r.maxSeconds = c.samples.maximum
                r.repetitions = c.samples.seconds.count
                r.flopsPerCall = c.flops ?? w.flops
                r.bytesPerCall = c.bytes ?? w.bytes
                r.kvBytesPerCall = c.flops == nil ? w.kvBytes : 0
                r.gflops = r.flopsPerCall > 0 ? r.flopsPerCall / median / 1e9 : nil
                r.gbps = r.bytesPerCall / median / 1e9
                r.kvGBps = r.kvBytesPerCall > 0 ? r.kvBytesPerCall / median / 1e9 : nil
            }
            rows.append(r)
        }
        return rows + skipped
    }

    static func makeInputs(_ w: KernelWorkload, copies: Int) -> KernelInputs {
        switch w.kind {
        case .matmul:
            return KernelInputs(sets: [[Tensor.random(shape: w.aShape, seed: 1), Tensor.random(shape: w.bShape, seed: 2)]])
        case .prefillAttention, .decodeAttention:
            let q = Tensor.random(shape: w.queryShape, seed: 3)
            var sets: [[Tensor]] = []
            for c in 0..<max(1, copies) {
                let seed = UInt64(10 + 2 * c)
                let k = Tensor.random(shape: w.kvShape, seed: seed)
                let v = Tensor.random(shape: w.kvShape, seed: seed + 1)
                sets.append([q, k, v])
            }
            return KernelInputs(sets: sets)
        }
    }

    static func endToEnd(_ w: KernelWorkload, _ backend: any ComputeBackend, _ inputs: KernelInputs) -> (Int) throws -> Void {
        switch w.kind {
        case .matmul:
            return { i in
                let s = inputs.sets[i % inputs.sets.count]
                _ = try backend.matmul(s[0], s[1], transposeA: false, transposeB: w.transposeB)
            }
        case .prefillAttention, .decodeAttention:
            let scale = 1 / Float(w.headDim).squareRoot()
            return { i in
                let s = inputs.sets[i % inputs.sets.count]
                _ = try backend.attention(query: s[0], key: s[1], value: s[2], causal: w.causal, scale: scale)
            }
        }
    }

    /// `cblas_sgemm` on the tensors' own buffers into a preallocated result.
    static func rawSgemm(_ a: Tensor, _ b: Tensor, m: Int, n: Int, k: Int, transposeB: Bool) -> (Int) throws -> Void {
        let c = ResultBuffer(count: m * n)
        return { _ in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                                1, ap.baseAddress, Int32(k), bp.baseAddress, Int32(transposeB ? k : n), 0, c.pointer, Int32(n))
                }
            }
        }
    }

    // MARK: - Ratios

    static func ratios(for w: KernelWorkload, _ rows: [KernelResult], bandwidth: MemoryBandwidth) -> [KernelRatio] {
        var out: [KernelRatio] = []
        let measured = rows.filter { $0.medianSeconds != nil && $0.mode != .baseline }
        switch w.kind {
        case .matmul:
            guard let raw = rows.first(where: { $0.backend == "sgemm (raw)" })?.gflops else { return [] }
            for r in measured where r.backend != "reference" {
                guard let g = r.gflops else { continue }
                var bar: Double?
                if r.backend == "blas" && w.smallestDimension >= 512 { bar = 0.95 }
                if r.mode == .kernelOnly && w.m == w.n && w.n == w.k && (1024...2048).contains(w.m) { bar = 0.25 }
                out.append(KernelRatio(name: "\(r.backend) / raw sgemm — \(w.label)", workload: w.label, value: g / raw, bar: bar))
            }
        case .prefillAttention:
            guard let gemm = rows.first(where: { $0.mode == .baseline })?.gflops else { return [] }
            for r in measured where r.backend != "reference" {
                guard let g = r.gflops else { continue }
                let bar: Double? = r.backend == "blas" && w.queryLength >= 2048 ? 0.5 : nil
                out.append(KernelRatio(name: "\(r.backend) attention / sgemm same FLOPs — \(w.label)", workload: w.label, value: g / gemm, bar: bar))
            }
        case .decodeAttention:
            // The read bandwidth timed in the same rounds; the start-of-run figure if that row failed.
            let read = rows.first(where: { $0.mode == .baseline })?.gbps ?? bandwidth.readGBps
            for r in measured where r.backend != "reference" {
                guard let kv = r.kvGBps else { continue }
                let bar: Double? = r.backend == "blas" ? 0.5 : nil
                out.append(KernelRatio(name: "\(r.backend) K/V GB/s / read bandwidth, same rounds — \(w.label)", workload: w.label,
                                       value: kv / read, bar: bar))
                out.append(KernelRatio(name: "\(r.backend) K/V GB/s / read bandwidth, \(bandwidth.readBufferBytes >> 20) MiB at start — \(w.label)",
                                       workload: w.label, value: kv / bandwidth.readGBps, bar: bar))
            }
        }
        return out
    }
}

/// A result buffer reused by every call of a raw-`sgemm` row.
///
/// `@unchecked Sendable` is not needed: it is only used on the benchmark's own thread.
final class ResultBuffer {
    let pointer: UnsafeMutablePointer<Float>
    init(count: Int) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    deinit { pointer.deallocate() }
}
