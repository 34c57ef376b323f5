import Foundation
import KVPaging
import KVPagingOpenCL
import TensorCore
import TensorCoreOpenCL

/// `inferkit bench kvpaging --only opencl`: OpenCL paged decode attention over device-resident paged K/V
/// vs `OpenCLBackend.attention` on device-resident contiguous `[B, Hkv, T, D]` tensors, same device, same
/// data, same run.
struct KVPagingOpenCLReport: Codable, Sendable {
    var device: String
    var batch: Int, context: Int, queryHeads: Int, kvHeads: Int, headDim: Int, blockSize: Int
    var repetitions: Int
    /// Medians of the device time between markers around one call (includes the per-call upload of
    /// block tables and lengths for the paged kernel).
    var pagedMilliseconds: Double
    var contiguousMilliseconds: Double
    /// paged / contiguous (issue goal ≤ 1.25).
    var ratio: Double
    /// Medians of host wall time per call including waiting for the device.
    var pagedWallMilliseconds: Double
    var contiguousWallMilliseconds: Double
    /// K and V bytes each kernel reads, over the paged median time.
    var pagedKVGigabytesPerSecond: Double
    var maxAbsDifference: Float
    var contiguousKernel: String

    var table: String {
        func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
        var out = "OpenCL paged vs contiguous decode attention on \(device)\n"
        out += "  B=\(batch), context \(context), Hq=\(queryHeads), Hkv=\(kvHeads), D=\(headDim), block \(blockSize), median of \(repetitions)\n"
        out += "  device time: paged \(f(pagedMilliseconds)) ms, contiguous (\(contiguousKernel)) \(f(contiguousMilliseconds)) ms → paged/contiguous = \(f(ratio, 3))×\n"
        out += "  wall time:   paged \(f(pagedWallMilliseconds)) ms, contiguous \(f(contiguousWallMilliseconds)) ms\n"
        out += "  paged K/V read rate \(f(pagedKVGigabytesPerSecond, 1)) GB/s; max |paged − contiguous| = \(maxAbsDifference)\n"
        return out
    }
}

enum KVPagingOpenCLBench {
    /// Runs the comparison and prints it (table, or JSON with `json`).
    static func printReport(repetitions: Int, quick: Bool, json: Bool) throws {
        let report = try run(repetitions: repetitions, quick: quick)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }

    static func run(repetitions: Int, quick: Bool) throws -> KVPagingOpenCLReport {
        let (b, ctx, hq, hk, d, bs) = (16, quick ? 512 : 2_048, 32, 8, 128, 16)
        let backend = try OpenCLBackend(configuration: .init(device: .fromEnvironment(ProcessInfo.processInfo.environment)))
        let paged = try OpenCLPagedAttention(backend: backend)
        let blocksPerSeq = ctx / bs
        let storage = try OpenCLPagedKVStorage(backend: backend, numBlocks: b * blocksPerSeq, blockSize: bs, kvHeads: hk, headDim: d)
        // Random, non-contiguous block tables (a fragmented pool after hours of serving).
        var rng = SplitMix64(seed: 7)
        var blocks = Array(0..<(b * blocksPerSeq))
        blocks.shuffle(using: &rng)
        let tables = (0..<b).map { Array(blocks[($0 * blocksPerSeq)..<(($0 + 1) * blocksPerSeq)]) }
        // Contiguous K/V [B, Hkv, T, D]; the same values written into the paged storage per sequence
        // through the device slot mapping.
        let key = Tensor.random(shape: [b, hk, ctx, d], seed: 1)
        let value = Tensor.random(shape: [b, hk, ctx, d], seed: 2)
        for s in 0..<b {
            let slots = (0..<ctx).map { KVSlot(block: tables[s][$0 / bs], offset: $0 % bs) }
            func rows(_ t: Tensor) -> Tensor {     // [Hkv, T, D] of sequence s → [T, Hkv, D]
                t.withUnsafeBufferPointer { src in
                    Tensor(shape: [ctx, hk, d]) { out in
                        for p in 0..<ctx {
                            for h in 0..<hk {
                                for x in 0..<d { out[(p * hk + h) * d + x] = src[((s * hk + h) * ctx + p) * d + x] }
                            }
                        }
                    }
                }
            }
            try storage.write(key: rows(key), value: rows(value), at: slots)
        }
        let keyDevice = try backend.upload(key), valueDevice = try backend.upload(value)
        let query = Tensor.random(shape: [b, hq, d], seed: 3)
        let queryPaged = try backend.upload(query)
        let queryContiguous = try backend.upload(query.reshaped([b, hq, 1, d]))
        let batch = PagedAttentionBatch.decode(blockTables: tables, contextLengths: Array(repeating: ctx, count: b))
        let scale = 1 / Float(d).squareRoot()

        var pagedOut: OpenCLTensor? = nil, contiguousOut: OpenCLTensor? = nil
        var pt: [Double] = [], ct: [Double] = [], pw: [Double] = [], cw: [Double] = []
        // Interleaved so machine noise hits both alike; the first round (program build, warm-up) is dropped.
        for r in 0..<(repetitions + 1) {
            let clock = ContinuousClock()
            var wall = clock.now
            let tp = try backend.deviceTime { pagedOut = try paged.attention(query: queryPaged, storage: storage, batch: batch, scale: scale) }
            let wp = clock.now - wall
            wall = clock.now
            let tc = try backend.deviceTime {
                contiguousOut = try backend.attention(query: queryContiguous, key: keyDevice, value: valueDevice, causal: false, scale: scale)
            }
            let wc = clock.now - wall
            if r > 0 {
                pt.append(tp.benchSeconds); ct.append(tc.benchSeconds); pw.append(wp.benchSeconds); cw.append(wc.benchSeconds)
            }
        }
        let p = try backend.download(try unwrap(pagedOut)).scalars
        let c = try backend.download(try unwrap(contiguousOut)).scalars
        let diff = zip(p, c).map { abs($0 - $1) }.max() ?? 0
        let mp = middle(pt), mc = middle(ct)
        let kvBytes = 2.0 * Double(b * hk * ctx * d * MemoryLayout<Float>.stride)
        return KVPagingOpenCLReport(
            device: backend.device.description, batch: b, context: ctx, queryHeads: hq, kvHeads: hk, headDim: d, blockSize: bs,
            repetitions: repetitions, pagedMilliseconds: mp * 1e3, contiguousMilliseconds: mc * 1e3, ratio: mp / mc,
            pagedWallMilliseconds: middle(pw) * 1e3, contiguousWallMilliseconds: middle(cw) * 1e3,
            pagedKVGigabytesPerSecond: kvBytes / mp / 1e9, maxAbsDifference: diff,
            contiguousKernel: backend.attentionVariant.rawValue)
    }

    private static func unwrap(_ t: OpenCLTensor?) throws -> OpenCLTensor {
        guard let t else { throw TensorError(.invalidArgument, "benchmark produced no output (zero repetitions?)") }
        return t
    }

    private static func middle(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

private extension Duration {
    var benchSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
