import ArgumentParser
import CInferenceKitBLAS
import CInferenceKitQuantKernels
import Dispatch
import Foundation
import Quantization
import QuantizationOpenCL
import TensorCore

// MARK: - Shared output helpers

enum QuantCLI {
    /// `--isa NAME`: selects a kernel path for the process (noting on stderr when the CPU lacks it).
    static func selectISA(_ name: String?) throws {
        guard let name else { return }
        guard let wanted = ISA.allCases.first(where: { $0.name == name }) else { throw ValidationError("--isa \(name): choose avx512-vnni, avx2 or scalar") }
        let got = ISA.select(wanted)
        if got != wanted { FileHandle.standardError.write(Data("note: \(name) is not supported here; using \(got.name)\n".utf8)) }
    }

    static func printJSON(_ object: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    /// Turns a library error into a one-line CLI error (stderr, non-zero exit, no usage text).
    static func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as QuantizationError { throw QuantCLIError(message: e.description) }
    }
}

struct QuantCLIError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

// MARK: - inferkit gguf inspect

/// `inferkit gguf …` — GGUF file tools.
struct GGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Inspect GGUF model files.",
        subcommands: [GGUFInspect.self]
    )
}

/// `inferkit gguf inspect FILE [--json]`.
struct GGUFInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a GGUF file's metadata and tensor table (memory-mapped; nothing is decoded)."
    )

    @Argument(help: "The GGUF file.") var file: String
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        let f = try QuantCLI.wrap { try GGUFFile(contentsOf: file) }
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for t in f.tensors { byType[t.typeName, default: (0, 0)].count += 1; byType[t.typeName]!.bytes += t.byteCount ?? 0 }
        let params = f.tensors.reduce(0) { $0 + $1.elementCount }
        if json {
            try QuantCLI.printJSON([
                "file": file, "version": Int(f.version), "alignment": f.alignment, "data_offset": f.dataOffset,
                "parameters": params,
                "metadata": f.metadataEntries.map { ["key": $0.key, "type": $0.value.type.description, "value": $0.value.jsonObject] },
                "tensors": f.tensors.map {
                    ["name": $0.name, "type": $0.typeName, "dimensions": $0.dimensions, "offset": $0.offset, "bytes": $0.byteCount as Any? ?? NSNull()]
                },
            ])
            return
        }
        print("\(file): GGUF v\(f.version), alignment \(f.alignment), \(f.metadataEntries.count) metadata keys, \(f.tensors.count) tensors, \(params) parameters")
        print("\nMetadata")
        let kw = min(48, f.metadataEntries.map(\.key.count).max() ?? 0)
        for (k, v) in f.metadataEntries {
            print("  " + QuantCLI.pad(k, kw) + "  " + QuantCLI.pad(v.type.description, 4) + "  " + v.description)
        }
        print("\nTensors (dimensions in GGUF order, contiguous first)")
        let nw = min(48, max(4, f.tensors.map(\.name.count).max() ?? 0))
        print("  " + QuantCLI.pad("name", nw) + "  " + QuantCLI.pad("type", 7) + QuantCLI.pad("dimensions", 24) + QuantCLI.lpad("offset", 14) + QuantCLI.lpad("bytes", 14))
        for t in f.tensors {
            print("  " + QuantCLI.pad(t.name, nw) + "  " + QuantCLI.pad(t.typeName, 7) + QuantCLI.pad(t.dimensions.map(String.init).joined(separator: " × "), 24)
                + QuantCLI.lpad("\(t.offset)", 14) + QuantCLI.lpad(t.byteCount.map(String.init) ?? "?", 14))
        }
        print("\nBy type: " + byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count) tensors, \($0.value.bytes) bytes" }.joined(separator: "; "))
    }
}

// MARK: - inferkit quantize

/// `inferkit quantize IN.gguf OUT.gguf --type q8_0|q4_0|q4_1 [--report]` — the llama-quantize workflow.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a GGUF model: rank-2 F32/F16 tensors become Q8_0/Q4_0/Q4_1, everything else is copied.",
        discussion: """
            Metadata is preserved; general.file_type and general.quantization_version are set as llama.cpp does \
            (7 = Q8_0, 2 = Q4_0, 3 = Q4_1; version 2). Tensors whose row length is not a multiple of 32 are copied \
            unchanged. The output is written one tensor at a time.
            """
    )

    @Argument(help: "Input GGUF file (F32/F16 weights).") var input: String
    @Argument(help: "Output GGUF file.") var output: String
    @Option(help: "Target type: q8_0, q4_0 or q4_1.") var type: String
    @Flag(help: "Print the per-tensor error table (RMSE, max |error|, SQNR, cosine).") var report = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        let format = try QuantCLI.wrap { try QuantizationFormat(parsing: type) }
        guard let ggml = format.ggmlType else {
            throw ValidationError("--type \(type): GGUF stores q8_0, q4_0 or q4_1; INT8/INT4 group formats have no GGUF type")
        }
        let fileType: UInt32 = format == .q8_0 ? 7 : format == .q4_0 ? 2 : 3
        let inURL = URL(fileURLWithPath: input).resolvingSymlinksInPath().standardizedFileURL
        let outURL = URL(fileURLWithPath: output).resolvingSymlinksInPath().standardizedFileURL
        guard inURL.path != outURL.path else {
            throw QuantCLIError(message: "OUT must differ from IN (\(input)); the input is memory-mapped while the output is written")
        }
        let src = try QuantCLI.wrap { try GGUFFile(contentsOf: input) }
        var w = GGUFWriter()
        for (k, v) in src.metadataEntries { w.setMetadata(k, v) }
        w.setMetadata("general.quantization_version", .uint32(2))
        w.setMetadata("general.file_type", .uint32(fileType))
        let reports = ReportSink()
        var quantized = 0, copied = 0
        for t in src.tensors {
            guard let size = t.byteCount else {
                throw QuantCLIError(message: "tensor '\(t.name)' has \(t.typeName), which this tool cannot copy; only F32, F16, Q8_0, Q4_0, Q4_1 inputs are supported")
            }
            let convertible = (t.type == .f32 || t.type == .f16) && t.dimensions.count == 2 && t.dimensions[0] % 32 == 0 && t.dimensions[0] > 0
            if convertible {
                quantized += 1
                let rows = t.dimensions[1], cols = t.dimensions[0]
                try QuantCLI.wrap {
                    try w.addTensor(name: t.name, typeID: ggml.rawValue, dimensions: t.dimensions, byteCount: format.byteCount(rows: rows, columns: cols)) {
                        let x = try src.tensor(named: t.name)
                        let q = try QuantizedMatrix.quantize(x, as: format, name: t.name)
                        if report || json { reports.append(try q.errorReport(against: x, name: t.name)) }
                        FileHandle.standardError.write(Data("quantized \(t.name) [\(rows), \(cols)] → \(format)\n".utf8))
                        return q.bytes
                    }
                }
            } else {
                copied += 1
                try QuantCLI.wrap {
                    try w.addTensor(name: t.name, typeID: t.typeID, dimensions: t.dimensions, byteCount: size) { try src.tensorBytes(t) }
                }
            }
        }
        try QuantCLI.wrap { try w.write(to: output) }
        let inBytes = (try? FileManager.default.attributesOfItem(atPath: input)[.size] as? Int) ?? 0
        let outBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        if json {
            try QuantCLI.printJSON([
                "input": input, "output": output, "type": format.name, "quantized": quantized, "copied": copied,
                "input_bytes": inBytes, "output_bytes": outBytes,
                "tensors": reports.all.map {
                    ["name": $0.name, "rmse": $0.rmse, "max_abs_error": $0.maxAbsError, "sqnr_db": $0.sqnrDB.isFinite ? $0.sqnrDB : 999, "cosine": $0.cosineSimilarity]
                },
            ])
            return
        }
        print("\(output): \(quantized) tensors quantized to \(format.name), \(copied) copied; \(inBytes) → \(outBytes) bytes")
        if report {
            let nw = min(48, max(6, reports.all.map(\.name.count).max() ?? 0))
            print(QuantCLI.pad("tensor", nw) + QuantCLI.lpad("RMSE", 12) + QuantCLI.lpad("max|err|", 12) + QuantCLI.lpad("SQNR dB", 10) + QuantCLI.lpad("cosine", 12))
            for r in reports.all {
                print(QuantCLI.pad(r.name, nw) + QuantCLI.lpad(String(format: "%.3e", r.rmse), 12) + QuantCLI.lpad(String(format: "%.3e", r.maxAbsError), 12)
                    + QuantCLI.lpad(String(format: "%.2f", r.sqnrDB), 10) + QuantCLI.lpad(String(format: "%.6f", r.cosineSimilarity), 12))
            }
        }
    }
}

/// Collects reports from the writer's producer closures (called serially on this thread).
final class ReportSink: @unchecked Sendable {  // used from one thread only: GGUFWriter.write calls producers in order
    var all: [QuantizationErrorReport] = []
    func append(_ r: QuantizationErrorReport) { all.append(r) }
}

// MARK: - inferkit bench quant

/// `inferkit bench quant` — quantized GEMV/GEMM against measured read bandwidth and OpenBLAS Float32.
struct BenchQuant: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quant",
        abstract: "Benchmark quantized decode GEMV and prefill GEMM against memory bandwidth and OpenBLAS (build with -c release).",
        discussion: """
            Decode: y = W·x for W [N, K], weights streamed from memory by rotating over enough distinct copies that \
            their total exceeds --footprint-mb (several times a 32 MB L3). Weight GB/s counts the format's bytes \
            (scales included) and is compared with the read bandwidth measured in the same run (all threads \
            summing a buffer of the same footprint). Prefill: [M, K] × [N, K]ᵀ against cblas_sgemm. Medians of --reps.
            """
    )

    @Option(help: "Threads for every kernel, OpenBLAS and the bandwidth probe.") var threads = 2
    @Option(help: "Total MB of distinct weights each decode case rotates over.") var footprintMb = 256
    @Option(help: "Repetitions (the median is reported).") var reps = 7
    @Option(help: "Kernel path: avx512-vnni, avx2 or scalar (default: best detected).") var isa: String?
    @Option(help: "Formats for decode (comma separated).") var formats = "q8_0,q4_0,q4_1,int8,int4-g32,int4-g128-asym"
    @Flag(help: "Small sizes for a smoke run (1024², prefill 64×1024×1024, 64 MB).") var quick = false
    @Flag(inversion: .prefixedNo, help: "Also time the OpenCL q8_0/q4_0 kernels on the first OpenCL device (PoCL on a CPU).") var opencl = true
    @Flag(help: "Print JSON.") var json = false

    /// Zero, negative or absurd sizes would otherwise trap (`Int32(_:)`, a negative allocation, the median of no runs).
    func validate() throws {
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads \(threads): use 1 … 1024") }
        guard footprintMb >= 1, footprintMb <= 1 << 20 else { throw ValidationError("--footprint-mb \(footprintMb): use 1 … 1,048,576 MB") }
        guard reps >= 1, reps <= 100_000 else { throw ValidationError("--reps \(reps): use 1 … 100,000") }
    }

    func run() throws {
        try QuantCLI.selectISA(isa)
        let fmts = try formats.split(separator: ",").map { name in try QuantCLI.wrap { try QuantizationFormat(parsing: String(name)) } }
        openblas_set_num_threads(Int32(threads))
        let footprint = (quick ? min(footprintMb, 64) : footprintMb) << 20
        let shapes = quick ? [(1024, 1024)] : [(4096, 4096), (4096, 14336)]
        let gemm = quick ? (64, 1024, 1024) : (512, 4096, 4096)

        var clRuntime: OpenCLQuantizedRuntime?
        if opencl {
            do { clRuntime = try OpenCLQuantizedRuntime() } catch { log("OpenCL rows skipped: \(error)") }
        }
        var results: [[String: Any]] = []
        let bw = Self.readBandwidth(bytes: footprint, threads: threads, reps: reps).median
        log("read bandwidth (\(threads) threads, \(footprint >> 20) MB): \(String(format: "%.1f", bw)) GB/s")
        var lines: [String] = []
        lines.append("Decode GEMV, \(threads) threads, weights rotated over ≥ \(footprint >> 20) MB; kernel path \(ISA.active.name)"
            + (clRuntime.map { "; OpenCL device \($0.deviceDescription) (its own threads)" } ?? ""))
        lines.append("Each row: read bandwidth measured just before the case (same footprint, threads; faster of a plain and a prefetching read); medians of \(reps) (best in brackets).")
        lines.append("cpu columns: bytes per CPU-second per thread (process CPU time ÷ threads) for kernel and probe — a proxy robust to time-slicing on a loaded machine.")
        lines.append(QuantCLI.pad("shape [N, K]", 14) + QuantCLI.pad("weights", 16) + QuantCLI.lpad("bits/w", 7) + QuantCLI.lpad("µs", 8)
            + QuantCLI.lpad("GB/s", 7) + QuantCLI.lpad("(best)", 8) + QuantCLI.lpad("read BW", 9) + QuantCLI.lpad("% of BW", 9) + QuantCLI.lpad("vs F32", 8)
            + QuantCLI.lpad("cpu GB/s", 10) + QuantCLI.lpad("cpu BW", 8) + QuantCLI.lpad("cpu %", 7))
        func row(_ shape: String, _ name: String, _ bits: Double, _ t: (median: Double, best: Double), _ bytes: Int, _ caseBW: Double, _ f32: Double,
                 cpu: (kernelUS: Double, probeGBs: Double)? = nil) -> [String: Any] {
            let gbs = Double(bytes) / t.median / 1e3, best = Double(bytes) / t.best / 1e3
            lines.append(QuantCLI.pad(shape, 14) + QuantCLI.pad(name, 16) + QuantCLI.lpad(String(format: "%.2f", bits), 7) + QuantCLI.lpad(String(format: "%.0f", t.median), 8)
                + QuantCLI.lpad(String(format: "%.1f", gbs), 7) + QuantCLI.lpad(String(format: "(%.1f)", best), 8) + QuantCLI.lpad(String(format: "%.1f", caseBW), 9)
                + QuantCLI.lpad(String(format: "%.0f%%", 100 * gbs / caseBW), 9) + QuantCLI.lpad(String(format: "%.2f×", f32 / t.median), 8)
                + (cpu.map { c in
                    QuantCLI.lpad(String(format: "%.1f", Double(bytes) / c.kernelUS / 1e3), 10) + QuantCLI.lpad(String(format: "%.1f", c.probeGBs), 8)
                        + QuantCLI.lpad(String(format: "%.0f%%", 100 * Double(bytes) / c.kernelUS / 1e3 / c.probeGBs), 7)
                } ?? ""))
            log("GEMV \(shape) \(name): \(String(format: "%.0f", t.median)) µs, \(String(format: "%.1f", gbs)) GB/s of \(String(format: "%.1f", caseBW))")
            var r: [String: Any] = ["kind": "gemv", "shape": shape, "weights": name, "us": t.median, "best_us": t.best, "gbps": gbs, "read_bandwidth_gbps": caseBW,
                    "fraction_of_bandwidth": gbs / caseBW, "speedup_vs_f32": f32 / t.median]
            if let cpu {
                r["cpu_us_per_thread"] = cpu.kernelUS
                r["cpu_fraction_of_bandwidth"] = Double(bytes) / cpu.kernelUS / 1e3 / cpu.probeGBs
            }
            return r
        }
        for (n, k) in shapes {
            let shape = "\(n)×\(k)"
            let bwF = Self.readBandwidth(bytes: footprint, threads: threads, reps: 3).median
            let f32 = Self.blasGEMV(n: n, k: k, footprint: footprint, reps: reps)
            results.append(row(shape, "f32 (OpenBLAS)", 32, (f32.median, f32.best), n * k * 4, bwF, f32.median))
            let w = Tensor.random(shape: [n, k], seed: 42, distribution: .normal(mean: 0, standardDeviation: 0.02))
            for f in fmts {
                let qm = try QuantCLI.wrap { try QuantizedMatrix.quantize(w, as: f) }
                let probe = Self.readBandwidth(bytes: footprint, threads: threads, reps: 3)
                let t = try Self.quantGEMV(qm, footprint: footprint, reps: reps, threads: threads)
                results.append(row(shape, f.name, qm.bitsPerWeight, (t.median, t.best), qm.bytes.count, probe.median, f32.median,
                                   cpu: (t.cpu, probe.cpu)))
            }
            if let rt = clRuntime {
                for f in [QuantizationFormat.q8_0, .q4_0] {
                    let qm = try QuantCLI.wrap { try QuantizedMatrix.quantize(w, as: f) }
                    let caseBW = Self.readBandwidth(bytes: footprint, threads: threads, reps: 3).median
                    let t = try Self.openCLGEMV(rt, qm, footprint: footprint, reps: reps)
                    results.append(row(shape, "opencl " + f.name, qm.bitsPerWeight, t, qm.bytes.count, caseBW, f32.median))
                }
            }
        }
        let (m, n, k) = gemm
        let flops = 2.0 * Double(m * n * k)
        let sg = Self.blasGEMM(m: m, n: n, k: k, reps: reps).median
        log("GEMM \(m)×\(n)×\(k) F32 OpenBLAS: \(String(format: "%.1f", flops / sg / 1e3)) GFLOP/s")
        lines.append("")
        lines.append("Prefill GEMM [\(m), \(k)] × [\(n), \(k)]ᵀ, \(threads) threads")
        lines.append(QuantCLI.pad("weights", 16) + QuantCLI.lpad("ms", 10) + QuantCLI.lpad("GFLOP/s", 10) + QuantCLI.lpad("vs F32", 8))
        lines.append(QuantCLI.pad("f32 (OpenBLAS)", 16) + QuantCLI.lpad(String(format: "%.1f", sg / 1e3), 10) + QuantCLI.lpad(String(format: "%.1f", flops / sg / 1e3), 10) + QuantCLI.lpad("1.00×", 8))
        results.append(["kind": "gemm", "m": m, "n": n, "k": k, "weights": "f32-openblas", "ms": sg / 1e3, "gflops": flops / sg / 1e3])
        let w = Tensor.random(shape: [n, k], seed: 7, distribution: .normal(mean: 0, standardDeviation: 0.02))
        let x = Tensor.random(shape: [m, k], seed: 8)
        for f in [QuantizationFormat.q8_0, .q4_0, .int8PerChannel, .int4Grouped(groupSize: 32, symmetric: true)] {
            let lin = QuantizedLinear(try QuantCLI.wrap { try QuantizedMatrix.quantize(w, as: f) })
            _ = try lin.apply(x, threads: threads)
            var times: [Double] = []
            for _ in 0..<reps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try lin.apply(x, threads: threads)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
            }
            let us = Self.median(times)
            log("GEMM \(f): \(String(format: "%.1f", flops / us / 1e3)) GFLOP/s")
            lines.append(QuantCLI.pad(f.name, 16) + QuantCLI.lpad(String(format: "%.1f", us / 1e3), 10) + QuantCLI.lpad(String(format: "%.1f", flops / us / 1e3), 10)
                + QuantCLI.lpad(String(format: "%.2f×", sg / us), 8))
            results.append(["kind": "gemm", "m": m, "n": n, "k": k, "weights": f.name, "ms": us / 1e3, "gflops": flops / us / 1e3, "speedup_vs_f32": sg / us])
        }
        if let rt = clRuntime {
            // The same product on the OpenCL device (2 × 8 output tiles per work-item on CPU devices;
            // upload of x and read-back of y included).
            let mcl = m
            let xcl = x
            let flopsCL = 2.0 * Double(mcl * n * k)
            lines.append("(OpenCL rows: the same \(mcl)-token product, upload and read-back included)")
            for f in [QuantizationFormat.q8_0, .q4_0] {
                let lin = try QuantCLI.wrap { try rt.makeLinear(QuantizedMatrix.quantize(w, as: f)) }
                _ = try lin.apply(xcl)
                var times: [Double] = []
                for _ in 0..<max(1, min(reps, 3)) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = try lin.apply(xcl)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
                }
                let us = Self.median(times)
                let gf = flopsCL / us / 1e3, gfF32 = flops / sg / 1e3
                lines.append(QuantCLI.pad("opencl " + f.name, 16) + QuantCLI.lpad(String(format: "%.1f", us / 1e3), 10) + QuantCLI.lpad(String(format: "%.1f", gf), 10)
                    + QuantCLI.lpad(String(format: "%.2f×", gf / gfF32), 8))
                results.append(["kind": "gemm", "m": mcl, "n": n, "k": k, "weights": "opencl " + f.name, "ms": us / 1e3, "gflops": gf, "speedup_vs_f32": gf / gfF32])
            }
        }
        if json {
            try QuantCLI.printJSON(["threads": threads, "isa": ISA.active.name, "read_bandwidth_gbps": bw, "footprint_mb": footprint >> 20, "results": results])
        } else {
            print(lines.joined(separator: "\n"))
        }
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// GB/s of `threads` threads each summing its part of a `bytes` buffer (median of `reps`).
    /// Each repetition reads the buffer twice, plainly and with the kernels' non-temporal prefetch,
    /// and keeps the faster, so the baseline is the best read rate we know how to get.
    static func readBandwidth(bytes: Int, threads: Int, reps: Int) -> (median: Double, best: Double, cpu: Double) {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        defer { buf.deallocate() }
        buf.initializeMemory(as: UInt8.self, repeating: 1)
        let base = SendableRaw(buf.baseAddress!)
        var times: [Double] = [], cpu: [Double] = []
        for _ in 0..<(reps + 1) {
            var best = (time: Double.infinity, cpu: 0.0)
            for prefetching in [false, true] {
                let t0 = DispatchTime.now().uptimeNanoseconds, c0 = processCPUSeconds()
                DispatchQueue.concurrentPerform(iterations: threads) { i in
                    let lo = bytes * i / threads / 64 * 64, hi = bytes * (i + 1) / threads / 64 * 64
                    _ = prefetching ? ikq_read_bandwidth_probe_prefetching(base.p + lo, hi - lo) : ikq_read_bandwidth_probe(base.p + lo, hi - lo)
                }
                let t = Double(DispatchTime.now().uptimeNanoseconds - t0)
                if t < best.time { best = (t, (processCPUSeconds() - c0) * 1e9 / Double(threads)) }
            }
            times.append(best.time)
            cpu.append(best.cpu)
        }
        let t = Array(times.dropFirst())
        return (Double(bytes) / median(t), Double(bytes) / (t.min() ?? 1), Double(bytes) / median(Array(cpu.dropFirst())))
    }

    /// µs per Float32 OpenBLAS sgemv, rotating over distinct copies.
    static func blasGEMV(n: Int, k: Int, footprint: Int, reps: Int) -> (median: Double, best: Double) {
        let copies = max(2, (footprint + n * k * 4 - 1) / (n * k * 4))
        let mats = (0..<copies).map { c in [Float](unsafeUninitializedCapacity: n * k) { b, count in
            for i in 0..<(n * k) { b[i] = Float((i &* 31 &+ c) % 97) * 1e-3 - 0.048 }
            count = n * k
        } }
        let x = [Float](repeating: 0.5, count: k)
        var y = [Float](repeating: 0, count: n)
        var times: [Double] = []
        for _ in 0..<(reps + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for a in mats { cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, a, Int32(k), x, 1, 0, &y, 1) }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3 / Double(copies))
        }
        let t = Array(times.dropFirst())
        return (median(t), t.min() ?? 0)
    }

    /// µs per quantized GEMV (activation quantization included), rotating over distinct copies.
    static func quantGEMV(_ qm: QuantizedMatrix, footprint: Int, reps: Int, threads: Int) throws -> (median: Double, best: Double, cpu: Double) {
        let first = QuantizedLinear(qm)
        let copies = max(2, (footprint + qm.bytes.count - 1) / qm.bytes.count)
        let lins = [first] + (1..<copies).map { _ in first.duplicated() }
        let x = Tensor.random(shape: [1, qm.columns], seed: 5)
        var times: [Double] = [], cpu: [Double] = []
        for _ in 0..<(reps + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds, c0 = processCPUSeconds()
            for l in lins { _ = try l.apply(x, threads: threads) }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3 / Double(copies))
            cpu.append((processCPUSeconds() - c0) * 1e6 / Double(threads) / Double(copies))
        }
        let t = Array(times.dropFirst())
        return (median(t), t.min() ?? 0, median(Array(cpu.dropFirst())))
    }

    /// µs per OpenCL GEMV (upload of x and read-back of y included), rotating over distinct device copies.
    static func openCLGEMV(_ rt: OpenCLQuantizedRuntime, _ qm: QuantizedMatrix, footprint: Int, reps: Int) throws -> (median: Double, best: Double) {
        let copies = max(2, (footprint + qm.bytes.count - 1) / qm.bytes.count)
        let lins = try (0..<copies).map { _ in try QuantCLI.wrap { try rt.makeLinear(qm) } }
        let x = Tensor.random(shape: [1, qm.columns], seed: 5)
        var times: [Double] = []
        for _ in 0..<(reps + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for l in lins { _ = try QuantCLI.wrap { try l.apply(x) } }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3 / Double(copies))
        }
        let t = Array(times.dropFirst())
        return (median(t), t.min() ?? 0)
    }

    /// µs per Float32 OpenBLAS sgemm [m, k] × [n, k]ᵀ.
    static func blasGEMM(m: Int, n: Int, k: Int, reps: Int) -> (median: Double, best: Double) {
        let a = Tensor.random(shape: [m, k], seed: 1).scalars, b = Tensor.random(shape: [n, k], seed: 2).scalars
        var c = [Float](repeating: 0, count: m * n)
        var times: [Double] = []
        for _ in 0..<(reps + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
        }
        let t = Array(times.dropFirst())
        return (median(t), t.min() ?? 0)
    }
}

/// CPU seconds used by this process (all threads).
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A raw pointer read by the bandwidth probe's threads (read-only, disjoint ranges).
struct SendableRaw: @unchecked Sendable {
    let p: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { self.p = p }
}
