import CInferenceKitCPUKernels
import Dispatch
import Synchronization
import TensorCore

/// Instruction-set path of the decode-attention kernel (`CInferenceKitCPUKernels`).
package enum DecodeKernelPath: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case scalar = 0
    case avx2 = 1
    case avx512 = 2

    /// The best path this CPU supports.
    package static var detected: DecodeKernelPath { DecodeKernelPath(rawValue: ikc_detected_isa()) ?? .scalar }

    package var description: String {
        switch self {
        case .scalar: "scalar"
        case .avx2: "AVX2+FMA"
        case .avx512: "AVX-512F"
        }
    }
}

/// How one decode-shaped attention call is cut into tasks.
///
/// A task is one (batch, KV head, key range) triple. All `R = G·Tq` query rows that read the KV
/// head go through the kernel together, so K and V are streamed once per head, not once per query
/// head. When there are fewer heads than workers can share evenly, the keys are split into ranges
/// whose partial results (running max, sum and unnormalised output per row) are merged afterwards.
struct DecodePlan: Sendable {
    let geometry: AttentionGeometry
    /// Key ranges per (batch, KV head).
    let splits: Int

    var rows: Int { geometry.groupSize * geometry.queryLength }
    var heads: Int { geometry.batch * geometry.kvHeads }
    var taskCount: Int { heads * splits }

    /// Keys below which a range is not worth its own task.
    static let minimumKeysPerSplit = 512

    init(_ g: AttentionGeometry, workers: Int, splits requested: Int? = nil) {
        geometry = g
        if let requested {
            splits = max(1, min(requested, g.keyLength))
        } else {
            let heads = g.batch * g.kvHeads
            if workers <= 1 || heads % workers == 0 {
                splits = 1
            } else {
                // About four tasks per worker evens out the ranges; never ranges shorter than the minimum.
                let wanted = (4 * workers + heads - 1) / heads
                splits = max(1, min(wanted, g.keyLength / Self.minimumKeysPerSplit))
            }
        }
    }

    /// Keys [begin, end) of range `split`.
    func keyRange(_ split: Int) -> (begin: Int, end: Int) {
        let n = geometry.keyLength
        return (n * split / splits, n * (split + 1) / splits)
    }
}

extension BLASBackend {
    /// The largest `G·Tq` (query rows per KV head) that takes the decode kernel instead of the GEMM path.
    ///
    /// Below it the two GEMMs per key block are too thin to run near peak and the kernel, which reads
    /// K and V once at memory speed, wins; above it the arithmetic per key grows with the rows and the
    /// GEMMs' higher FLOP rate wins. See `Documentation/benchmarks/kernels.md` ("Decode attention kernel").
    package static let decodeMaxRowsPerKVHead = 16
    /// The largest query length that takes the decode kernel.
    package static let decodeMaxQueryLength = 8

    /// Whether `g` is decode-shaped (few query rows per KV head).
    static func usesDecodeKernel(_ g: AttentionGeometry) -> Bool {
        g.queryLength <= decodeMaxQueryLength && g.groupSize * g.queryLength <= decodeMaxRowsPerKVHead
    }

    /// Decode-shaped attention through the CPU kernel, whatever the shape.
    ///
    /// Shapes as ``attention(query:key:value:causal:scale:)``: query `[B, Hq, Tq, D]`, key and value
    /// `[B, Hkv, Tk, D]`, result `[B, Hq, Tq, D]`. `splits` fixes the key ranges per head and `path`
    /// the instruction set (clamped to what the CPU supports); both exist so tests can reach every branch.
    package func decodeAttention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float,
                                 splits: Int? = nil, path: DecodeKernelPath? = nil) throws -> Tensor {
        let g = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        if let splits, splits < 1 {
            throw TensorError(.invalidArgument, "BLASBackend.decodeAttention: splits is \(splits); pass 1 or more")
        }
        return runDecodeAttention(g, query, key, value, splits: splits, path: path)
    }

    /// Runs the decode kernel for a validated geometry.
    func runDecodeAttention(_ g: AttentionGeometry, _ query: Tensor, _ key: Tensor, _ value: Tensor,
                            splits: Int? = nil, path: DecodeKernelPath? = nil) -> Tensor {
        let workers = workerCount
        let plan = DecodePlan(g, workers: workers, splits: splits)
        let isa = path?.rawValue ?? ikc_active_isa()
        let rows = plan.rows, d = g.headDim
        // Keys each row sees: all of them, or (causal, end-aligned) position + Tk − Tq + 1.
        let visible: [Int64]? = g.causal
            ? (0..<rows).map { Int64(min(g.keyLength, $0 % g.queryLength + g.causalOffset + 1)) }
            : nil
        var maxima = [Float](repeating: 0, count: plan.taskCount * rows)
        var sums = [Float](repeating: 0, count: plan.taskCount * rows)
        var partial = [Float](repeating: 0, count: plan.taskCount * rows * d)
        return query.withUnsafeBufferPointer { qp in
            key.withUnsafeBufferPointer { kp in
                value.withUnsafeBufferPointer { vp in
                    Tensor(shape: g.outputShape) { out in
                        guard let Q = qp.baseAddress, let K = kp.baseAddress, let V = vp.baseAddress,
                              let O = out.baseAddress else { return }
                        maxima.withUnsafeMutableBufferPointer { mp in
                            sums.withUnsafeMutableBufferPointer { lp in
                                partial.withUnsafeMutableBufferPointer { ap in
                                    guard let M = mp.baseAddress, let L = lp.baseAddress, let A = ap.baseAddress else { return }
                                    let io = DecodePointers(q: SendablePointer(Q), k: SendablePointer(K), v: SendablePointer(V),
                                                            m: SendableMutablePointer(M), l: SendableMutablePointer(L),
                                                            acc: SendableMutablePointer(A))
                                    let run: @Sendable (Int) -> Void = { task in
                                        decodeTask(plan, task, io, visible, isa)
                                    }
                                    // `.blasThreads` means "no parallel blocks"; the kernel has no BLAS call, so it runs on one thread.
                                    if workers > 1 && plan.taskCount > 1 && configuration.attentionThreading == .blocks {
                                        let next = Atomic<Int>(0)
                                        DispatchQueue.concurrentPerform(iterations: min(workers, plan.taskCount)) { _ in
                                            while true {
                                                let task = next.wrappingAdd(1, ordering: .relaxed).oldValue
                                                if task >= plan.taskCount { break }
                                                run(task)
                                            }
                                        }
                                    } else {
                                        for task in 0..<plan.taskCount { run(task) }
                                    }
                                    // Merge each head's key ranges and normalise into [B, Hq, Tq, D]: the group's
                                    // query heads are adjacent, so its R rows are one contiguous [R, D] block.
                                    for head in 0..<plan.heads {
                                        let base = head * plan.splits * rows
                                        ikc_attention_merge(Int64(plan.splits), Int64(rows), Int64(d),
                                                            M + base, L + base, A + base * d, O + head * rows * d)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Operands of one decode call; workers write disjoint slices of the partial buffers.
struct DecodePointers: Sendable {
    let q: SendablePointer
    let k: SendablePointer
    let v: SendablePointer
    let m: SendableMutablePointer
    let l: SendableMutablePointer
    let acc: SendableMutablePointer
}

/// Task `task` = (head, split): the head's R query rows against one key range.
private func decodeTask(_ plan: DecodePlan, _ task: Int, _ p: DecodePointers, _ visible: [Int64]?, _ isa: Int32) {
    let g = plan.geometry
    let head = task / plan.splits, split = task % plan.splits
    let rows = plan.rows, d = g.headDim
    let (begin, end) = plan.keyRange(split)
    // head = b·Hkv + kvHead: its query rows start at (b·Hq + kvHead·G)·Tq = head·R; its keys at head·Tk.
    let q = p.q.pointer + head * rows * d
    let kv = head * g.keyLength * d
    let slot = task * rows
    let call = { (vis: UnsafePointer<Int64>?) in
        ikc_attention_partial_isa(isa, q, p.k.pointer + kv, p.v.pointer + kv, Int64(rows), Int64(d),
                                  Int64(begin), Int64(end), vis, g.scale,
                                  p.m.pointer + slot, p.l.pointer + slot, p.acc.pointer + slot * d)
    }
    if let visible {
        visible.withUnsafeBufferPointer { call($0.baseAddress) }
    } else {
        call(nil)
    }
}
