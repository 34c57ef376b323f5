import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TensorCore
@testable import InferenceKitBenchmarks

@Suite("Kernel benchmark harness")
struct KernelBenchmarkTests {
    @Test("median of odd and even sample counts")
    func median() {
        // Sorted [1, 2, 9] → middle 2; sorted [1, 2, 3, 10] → (2 + 3) / 2 = 2.5.
        #expect(TimingSamples(seconds: [9, 1, 2]).median == 2)
        #expect(TimingSamples(seconds: [10, 3, 1, 2]).median == 2.5)
        #expect(TimingSamples().median == nil)
    }

    @Test("FLOPs and bytes of the workloads")
    func workloadCounts() {
        // 2·M·N·K and 4 bytes × (M·K + K·N + M·N).
        let mm = KernelWorkload.matmul(m: 2, n: 3, k: 4)
        #expect(mm.flops == 48)
        #expect(mm.bytes == 4 * (8 + 12 + 6))
        // Decode, Hq = 32, Hkv = 8, Tk = 4096, D = 128: every key visible, 4·Hq·Tk·D FLOPs,
        // K/V = 2 · 8 · 4096 · 128 · 4 bytes = 32 MiB.
        let d = KernelWorkload.decode(keys: 4096)
        #expect(d.flops == 4 * 32 * 4096 * 128)
        #expect(d.kvBytes == 32 * 1024 * 1024)
        // Causal prefill of T tokens has T(T+1)/2 visible pairs per head.
        let p = KernelWorkload.prefill(batch: 1, queryHeads: 2, kvHeads: 1, length: 5, headDim: 3)
        #expect(p.flops == 4 * 2 * 15 * 3)
    }

    func result(_ backend: String, _ mode: MeasurementMode, workload: KernelWorkload, seconds: Double?) -> KernelResult {
        KernelResult(workload: workload.label, kind: workload.kind, backend: backend, mode: mode, variant: nil,
                     medianSeconds: seconds, minSeconds: seconds, maxSeconds: seconds, repetitions: 3, runMedians: nil,
                     gflops: seconds.map { workload.flops / $0 / 1e9 }, gbps: seconds.map { workload.bytes / $0 / 1e9 },
                     kvGBps: seconds.map { workload.kvBytes / $0 / 1e9 }, flopsPerCall: workload.flops,
                     bytesPerCall: workload.bytes, kvBytesPerCall: workload.kvBytes, note: nil)
    }

    @Test("matmul ratio: API over raw sgemm, bar from n ≥ 512 only")
    func matmulRatios() {
        let big = KernelWorkload.matmul(m: 512, n: 512, k: 512)
        let rows = [result("blas", .endToEnd, workload: big, seconds: 2), result("sgemm (raw)", .baseline, workload: big, seconds: 1.9)]
        let ratios = KernelBenchmark.ratios(for: big, rows, bandwidth: bandwidth)
        // Same FLOPs, so the GFLOP/s ratio is the inverse time ratio 1.9 / 2 = 0.95: exactly on the bar.
        #expect(ratios.count == 1)
        #expect(abs(ratios[0].value - 0.95) < 1e-12)
        #expect(ratios[0].bar == 0.95)
        let small = KernelWorkload.matmul(m: 256, n: 256, k: 256)
        let smallRatios = KernelBenchmark.ratios(for: small, [result("blas", .endToEnd, workload: small, seconds: 2),
                                                              result("sgemm (raw)", .baseline, workload: small, seconds: 1)], bandwidth: bandwidth)
        #expect(smallRatios.first?.bar == nil)
        #expect(smallRatios.first?.meetsBar == nil)
    }

    let bandwidth = MemoryBandwidth(readGBps: 20, copyGBps: 30, threads: 2, readBufferBytes: 1 << 20, copyBufferBytes: 1 << 20)

    @Test("decode ratio against the read-bandwidth baseline of the same rounds and the start-of-run figure")
    func decodeRatios() {
        let w = KernelWorkload.decode(keys: 4096)
        var baseline = result("memory read (2 threads)", .baseline, workload: w, seconds: nil)
        baseline.gbps = 40
        let rows = [result("blas", .endToEnd, workload: w, seconds: w.kvBytes / 16e9), baseline]
        let ratios = KernelBenchmark.ratios(for: w, rows, bandwidth: bandwidth)
        // 16 GB/s of K/V over 40 GB/s measured in the same rounds = 0.4 (below 0.5); over the start figure 20 → 0.8.
        #expect(ratios.map(\.value).map { ($0 * 1000).rounded() / 1000 } == [0.4, 0.8])
        #expect(ratios.map(\.meetsBar) == [false, true])
    }

    @Test("several passes merge to the median of the pass medians")
    func mergePasses() {
        let w = KernelWorkload.matmul(m: 4, n: 4, k: 4)
        let passes = [[result("blas", .endToEnd, workload: w, seconds: 3)], [result("blas", .endToEnd, workload: w, seconds: 1)],
                      [result("blas", .endToEnd, workload: w, seconds: 2)]]
        let merged = KernelBenchmark.merge(passes)
        #expect(merged.count == 1)
        #expect(merged[0].medianSeconds == 2)
        #expect(merged[0].runMedians == [3, 1, 2])
        #expect(merged[0].repetitions == 9)
        #expect(merged[0].gflops == w.flops / 2 / 1e9)
    }

    /// A tiny end-to-end run on the reference backend: every part of the report is produced and well formed.
    @Test("a small run produces rows, a skip note, a table, JSON and well-formed SVG")
    func smallRun() throws {
        var config = KernelBenchmarkConfiguration(quick: true, backends: [BenchmarkBackend(provider: ReferenceBackend.provider, flopLimit: 1e5)])
        config.workloads = [.matmul(m: 9, n: 7, k: 5), .matmul(m: 64, n: 64, k: 64), .decode(queryHeads: 4, kvHeads: 2, keys: 33, headDim: 8)]
        config.repetitions = 3
        config.bandwidthBytes = 1 << 20
        let report = KernelBenchmark(configuration: config).run()
        // 9×7×5: reference + raw sgemm; 64³ (0.5 MFLOP > limit): skip note + raw sgemm; decode: reference + read baseline.
        #expect(report.results.count == 6)
        let skipped = report.results.first { $0.workload == "matmul 64³" && $0.backend == "reference" }
        #expect(skipped?.medianSeconds == nil && skipped?.note?.contains("skipped") == true)
        #expect(report.results.filter { $0.medianSeconds != nil }.allSatisfy { $0.repetitions == 3 })
        #expect(report.table().contains("matmul 9×5×7"))
        let decoded = try JSONDecoder().decode(KernelBenchmarkReport.self, from: report.jsonData())
        #expect(decoded.results == report.results)
        let parser = XMLParser(data: Data(report.svg().utf8))
        #expect(parser.parse(), "SVG is not well-formed XML")
    }
}
