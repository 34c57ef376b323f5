import Foundation

/// How a row was measured.
public enum MeasurementMode: String, Sendable, Codable, Hashable {
    /// Through the backend's ``TensorCore/ComputeBackend`` API: host tensors in, host tensor out (transfers included).
    case endToEnd = "end-to-end"
    /// Device-resident operands, timed until the device is idle (no transfers).
    case kernelOnly = "kernel-only"
    /// A baseline measured in the same run (raw `cblas_sgemm`).
    case baseline
}

/// One measured (or skipped) row: a workload on a backend in one mode.
public struct KernelResult: Sendable, Codable, Hashable {
    public var workload: String
    public var kind: KernelWorkload.Kind
    /// Row label: the backend name, or the baseline's name.
    public var backend: String
    public var mode: MeasurementMode
    /// The kernel variant that ran, when known.
    public var variant: String?
    /// Median seconds per call; `nil` when skipped or failed (see ``note``).
    public var medianSeconds: Double?
    public var minSeconds: Double?
    public var maxSeconds: Double?
    /// Timed runs (summed over passes).
    public var repetitions: Int
    /// With several passes (`--runs`): each pass's median.
    public var runMedians: [Double]?
    public var gflops: Double?
    /// Effective bandwidth: operand and result bytes (see ``KernelWorkload/bytes``) per second.
    public var gbps: Double?
    /// Key/value cache bytes per second (attention rows).
    public var kvGBps: Double?
    /// FLOPs, operand + result bytes and key/value bytes of one call.
    public var flopsPerCall: Double
    public var bytesPerCall: Double
    public var kvBytesPerCall: Double
    /// Why the row was skipped or failed.
    public var note: String?
}

/// A ratio the issue sets a bar for (or one worth reading next to it).
public struct KernelRatio: Sendable, Codable, Hashable {
    public var name: String
    public var workload: String
    public var value: Double
    /// The bar, when the issue sets one for this case.
    public var bar: Double?
    /// With several passes (`--runs`): each pass's value (``value`` is their median).
    public var runs: [Double]?
    public var meetsBar: Bool? { bar.map { value >= $0 } }
}

/// Where the benchmark ran.
public struct MachineDescription: Sendable, Codable, Hashable {
    public var cpu: String
    public var cores: Int
    public var memoryGiB: Double
    public var blas: String

    static func current(blas: String) -> MachineDescription {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        let model = line?.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return MachineDescription(cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                                  memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30), blas: blas)
    }
}

/// Everything one run of the kernel benchmark measured.
public struct KernelBenchmarkReport: Sendable, Codable {
    public var command: String
    public var date: String
    public var quick: Bool
    public var machine: MachineDescription
    /// Backend name → device description (or why it is unavailable).
    public var backends: [String: String]
    public var bandwidth: MemoryBandwidth
    public var results: [KernelResult]
    public var ratios: [KernelRatio]
    /// Complete passes over the workloads.
    public var runs: Int
    public var totalSeconds: Double

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

// MARK: - Table

extension KernelBenchmarkReport {
    /// The human-readable table.
    public func table() -> String {
        var out = ""
        out += "InferenceKit kernel benchmark\(quick ? " (--quick)" : "")\n"
        out += "machine: \(machine.cpu), \(machine.cores) cores, \(String(format: "%.0f", machine.memoryGiB)) GiB; \(machine.blas)\n"
        for name in backends.keys.sorted() { out += "backend \(name): \(backends[name] ?? "")\n" }
        out += String(format: "memory bandwidth (%d threads, %d MiB buffers): read %.1f GB/s, copy (read+write) %.1f GB/s\n",
                      bandwidth.threads, bandwidth.readBufferBytes >> 20, bandwidth.readGBps, bandwidth.copyGBps)
        out += runs > 1
            ? "times are medians over \(runs) passes of each pass's median; GB/s counts operands in + result out once.\n"
            : "times are medians of the repetitions shown; GB/s counts operands in + result out once.\n"
        var seen: [String] = []
        for r in results where !seen.contains(r.workload) { seen.append(r.workload) }
        for w in seen {
            let rows = results.filter { $0.workload == w }
            out += "\n\(w)\n"
            out += pad("backend", 30) + pad("mode", 12) + lpad("median ms", 11) + lpad("GFLOP/s", 10) + lpad("GB/s", 9) + lpad("K/V GB/s", 10) + lpad("reps", 6) + "  variant / note\n"
            for r in rows {
                out += pad(r.backend, 30) + pad(r.mode.rawValue, 12)
                out += lpad(r.medianSeconds.map { fmt($0 * 1000) } ?? "—", 11)
                out += lpad(r.gflops.map(fmt) ?? "—", 10) + lpad(r.gbps.map(fmt) ?? "—", 9) + lpad(r.kvGBps.map(fmt) ?? "", 10)
                out += lpad(r.medianSeconds == nil ? "" : "\(r.repetitions)", 6)
                let extra = [r.variant, r.note].compactMap { $0 }.joined(separator: "; ")
                out += extra.isEmpty ? "\n" : "  \(extra)\n"
            }
        }
        if !ratios.isEmpty {
            out += "\nratios (same run)\n"
            for r in ratios {
                let verdict = r.meetsBar.map { $0 ? "meets bar ≥ \(fmt(r.bar ?? 0))" : "BELOW bar \(fmt(r.bar ?? 0))" } ?? ""
                let spread = r.runs.map { "  (passes: " + $0.map { String(format: "%.2f", $0) }.joined(separator: ", ") + ")" } ?? ""
                out += "  " + pad(r.name, 64) + lpad(String(format: "%.3f", r.value), 8) + "  \(verdict)\(spread)\n"
            }
        }
        out += String(format: "\ntotal %.1f s\n", totalSeconds)
        return out
    }
}

func fmt(_ x: Double) -> String {
    if x >= 100 { return String(format: "%.0f", x) }
    if x >= 10 { return String(format: "%.1f", x) }
    if x >= 0.1 { return String(format: "%.2f", x) }
    return String(format: "%.3g", x)
}

private func pad(_ s: String, _ n: Int) -> String {
    s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
}

private func lpad(_ s: String, _ n: Int) -> String {
    s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s
}
