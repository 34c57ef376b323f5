import CInferenceKitOpenCL
import Foundation
import Synchronization
import TensorCore

/// A ``ComputeBackend`` running OpenCL kernels on one device: a GPU from NVIDIA, AMD or Intel, or a CPU
/// through PoCL.
///
/// ```swift
/// let cl = try OpenCLBackend(device: .gpu)          // or .cpu, .named("RTX"), .automatic
/// let a = try cl.upload(Tensor.random(shape: [512, 512], seed: 1))
/// let b = try cl.upload(Tensor.random(shape: [512, 512], seed: 2))
/// let c = try cl.download(cl.matmul(a, b, transposeA: false, transposeB: false))
/// ```
///
/// The ``ComputeBackend`` methods on ``Tensor`` upload their operands, run and download the result. The
/// methods on ``OpenCLTensor`` keep data on the device so that chains of ops (and benchmarks) pay no transfers;
/// they return once the work is queued — call ``finish()`` (or ``download(_:)``) to wait for it.
///
/// The program is built from embedded source once per device and process and shared by every backend for
/// that device. Matmul runs one of two kernels, chosen by device type (see ``MatmulKernelVariant``).
///
/// `Sendable` (checked, not `@unchecked`): a final class whose stored properties are immutable `Sendable`
/// values; the OpenCL command queue and kernels live in a `Mutex` inside the shared device runtime, and every
/// enqueue happens while holding it.
public final class OpenCLBackend: ComputeBackend {
    /// The two matmul kernels.
    public enum MatmulKernelVariant: String, Sendable, Hashable, CaseIterable {
        /// Work-groups of 16×16 work-items stage 16-deep slices of 64×64 tiles of `a` and `b` in local
        /// memory; each work-item accumulates a 4×4 block in registers. The GPU kernel; on CPU devices it
        /// runs at a few percent of OpenBLAS, so it is never chosen there automatically.
        case tiledLocalMemory = "tiled-local-memory"
        /// Each work-item computes an 8×32 block with sixteen `float16` accumulators, reading 8 values of `a`
        /// and 32 of `b` per step of `k` from packed panels (`a` directly when its layout already matches).
        /// The CPU kernel (PoCL): wide vector FMAs and no barriers. Products with at most 8 rows of `a`
        /// (decode steps) use few-row kernels of the same family that stream `b` in place.
        case registerBlockedVector = "register-blocked-vector"
    }

    /// The two attention kernels.
    public enum AttentionKernelVariant: String, Sendable, Hashable, CaseIterable {
        /// One work-item per query row walks the keys in blocks of 32 with an online softmax; work-groups of
        /// 32 rows on GPUs read each key together, and accumulate in a `[D, rows]` scratch so neighbouring
        /// work-items touch neighbouring addresses. With few rows (decode) each row's keys are split into
        /// ranges processed in parallel and merged by a second kernel.
        case rowwise = "rowwise-online-softmax"
        /// One work-item per block of 8 rows of one KV head (the rows run over the query heads sharing it and
        /// their positions): scores for 16 keys at a time from 16-wide dot products, online softmax per row,
        /// and the `P·V` update 16 dimensions at a time in eight `float16` registers — matmul-like register
        /// blocking for CPU devices.
        case registerBlockedVector = "register-blocked-vector"
    }

    /// Settings of an ``OpenCLBackend``.
    public struct Configuration: Sendable, Hashable {
        /// Which device to use. Default: ``OpenCLDeviceSelector/automatic`` (first GPU, else any device).
        public var device: OpenCLDeviceSelector
        /// Force one matmul kernel; `nil` (the default) chooses by device type — tiled on GPUs and
        /// accelerators, register-blocked on CPUs.
        public var matmulKernel: MatmulKernelVariant?
        /// Force one attention kernel; `nil` (the default) chooses by device type — register-blocked on CPUs,
        /// row-wise elsewhere.
        public var attentionKernel: AttentionKernelVariant?

        public init(device: OpenCLDeviceSelector = .automatic, matmulKernel: MatmulKernelVariant? = nil, attentionKernel: AttentionKernelVariant? = nil) {
            self.device = device
            self.matmulKernel = matmulKernel
            self.attentionKernel = attentionKernel
        }
    }

    /// The device this backend runs on.
    public let device: OpenCLDeviceInfo
    public let configuration: Configuration
    let runtime: OpenCLDeviceRuntime

    /// Opens `configuration.device`, building the kernels for it on first use in this process.
    ///
    /// - Throws: ``TensorError/Code/backendUnavailable`` when no OpenCL driver or no matching device exists
    ///   (the message says what to install); ``TensorError/Code/deviceFailure`` with the build log when the
    ///   kernels do not compile.
    public init(configuration: Configuration = Configuration()) throws {
        let devices = try OpenCLDeviceInfo.all()
        let info = try configuration.device.select(from: devices)
        self.device = info
        self.configuration = configuration
        self.runtime = try OpenCLDeviceRuntime.shared(for: info)
    }

    /// Opens a device chosen by `device`, with the matmul kernel chosen by device type unless `matmulKernel` is given.
    public convenience init(device: OpenCLDeviceSelector, matmulKernel: MatmulKernelVariant? = nil) throws {
        try self.init(configuration: Configuration(device: device, matmulKernel: matmulKernel))
    }

    /// Every OpenCL device on this machine (throws `backendUnavailable` when there is none).
    public static func devices() throws -> [OpenCLDeviceInfo] {
        try OpenCLDeviceInfo.all()
    }

    /// Provider for ``BackendRegistry``: the device named by `INFERENCEKIT_OPENCL_DEVICE`, else the first GPU, else any device.
    public static let provider = BackendProvider(
        name: "opencl",
        summary: "OpenCL kernels on any ICD device (PoCL on CPUs, NVIDIA/AMD/Intel GPUs)"
    ) {
        try OpenCLBackend(configuration: Configuration(device: .fromEnvironment(ProcessInfo.processInfo.environment)))
    }

    public var name: String { "opencl" }
    public var deviceDescription: String { "OpenCL \(device.description)" }

    // MARK: - Device-resident tensors

    /// Copies `tensor` into a new device buffer (blocking).
    public func upload(_ tensor: Tensor) throws -> OpenCLTensor {
        try checkIndexable(tensor.elementCount, "upload of \(tensor.shape)")
        try checkAllocation(tensor.elementCount, "upload of \(tensor.shape)")
        return try runtime.session.withLock { s in
            let result = OpenCLTensor(shape: tensor.shape, buffer: try s.makeBuffer(count: tensor.elementCount), runtime: runtime)
            try tensor.withUnsafeBufferPointer { try s.write($0, to: result.buffer) }
            return result
        }
    }

    /// Waits for every queued kernel and copies `tensor` back to the host.
    public func download(_ tensor: OpenCLTensor) throws -> Tensor {
        try checkOwned(tensor, "download", "tensor")
        return try runtime.session.withLock { s in
            try Tensor(shape: tensor.shape) { out in try s.read(tensor.buffer, into: out) }
        }
    }

    /// Blocks until every queued kernel on this device has finished.
    public func finish() throws {
        try runtime.session.withLock { s in try s.finish() }
    }

    /// Runs `body`, waits for the device, and returns the device time between the first and the last
    /// command `body` enqueued, from the profiling clock of the queue.
    ///
    /// Markers are enqueued before and after `body`; the result is the difference of their completion
    /// timestamps, so it excludes host-side overhead before the first kernel but includes any device idle
    /// time while `body` is still enqueueing. Work that other tasks enqueue on the same device meanwhile is
    /// counted too — time on a quiet device.
    public func deviceTime(_ body: () throws -> Void) throws -> Duration {
        let start = try runtime.session.withLock { s in try s.marker() }
        defer { clReleaseEvent(start) }
        try body()
        let end = try runtime.session.withLock { s in try s.marker() }
        defer { clReleaseEvent(end) }
        try finish()
        let t0 = try DeviceSession.endTime(start), t1 = try DeviceSession.endTime(end)
        return .nanoseconds(Int64(t1 >= t0 ? t1 - t0 : 0))
    }

    /// The kernel ``matmul(_:_:transposeA:transposeB:)`` runs for `geometry` on this backend.
    public func matmulVariant(for geometry: MatmulGeometry) -> MatmulKernelVariant {
        if let forced = configuration.matmulKernel {
            return forced == .tiledLocalMemory && !runtime.tiledMatmulUsable ? .registerBlockedVector : forced
        }
        switch device.kind {
        case .gpu, .accelerator: return runtime.tiledMatmulUsable ? .tiledLocalMemory : .registerBlockedVector
        case .cpu, .other: return .registerBlockedVector
        }
    }

    /// The kernel ``attention(query:key:value:causal:scale:)`` runs on this backend.
    public var attentionVariant: AttentionKernelVariant {
        if let forced = configuration.attentionKernel { return forced }
        return device.kind == .cpu ? .registerBlockedVector : .rowwise
    }

    /// A human description of the matmul kernel (and its packing steps) used for `geometry`.
    ///
    /// For example `register-blocked-vector 8x32 float16 (pack a, pack b)` or
    /// `tiled-local-memory 64x64 tile, 16x16 work-group`.
    public func matmulKernelVariant(for geometry: MatmulGeometry) -> String {
        switch matmulVariant(for: geometry) {
        case .tiledLocalMemory:
            let edge = runtime.tileEdge
            return "tiled-local-memory \(edge * 4)x\(edge * 4) tile, \(edge)x\(edge) work-group"
        case .registerBlockedVector:
            let plan = VectorMatmulPlan(geometry)
            switch plan.fewRows {
            case .transposedB: return "register-blocked-vector few-row (b [N, K] rows, 4 per work-item)"
            case .plainB: return "register-blocked-vector few-row (b [K, N], 256 columns x 128 k per work-item)"
            case nil: return "register-blocked-vector 8x32 float16 (\(plan.packA ? "pack a" : "a direct"), pack b)"
            }
        }
    }

    // MARK: Validation helpers

    func checkOwned(_ t: OpenCLTensor, _ op: String, _ name: String) throws {
        guard t.runtime === runtime else {
            throw TensorError(.invalidArgument, "\(op): \(name) \(t.shape) lives on OpenCL device \(t.runtime.info.name), not on this backend's device \(device.name); download and upload it to move it")
        }
    }

    /// Kernels index with 32-bit integers; reject tensors beyond that rather than overflow.
    func checkIndexable(_ count: Int, _ what: String) throws {
        guard count <= Int(Int32.max) else {
            throw TensorError(.invalidArgument, "\(what) has \(count) elements; the OpenCL backend indexes buffers with 32-bit integers (at most \(Int32.max) elements per tensor) — split the work")
        }
    }

    func newTensor(_ shape: Shape, _ s: borrowing DeviceSession) throws -> OpenCLTensor {
        try checkAllocation(shape.elementCount, "a buffer of shape \(shape)")
        return OpenCLTensor(shape: shape, buffer: try s.makeBuffer(count: shape.elementCount), runtime: runtime)
    }

    /// Rejects a buffer larger than `CL_DEVICE_MAX_MEM_ALLOC_SIZE` up front, with the limit in the message.
    func checkAllocation(_ count: Int, _ what: String) throws {
        let bytes = UInt64(count) * UInt64(MemoryLayout<Float>.stride)
        guard bytes <= device.maxAllocationBytes else {
            throw TensorError(.outOfMemory, "\(what) needs \(bytes) bytes, more than the largest single allocation \(device.name) allows (\(device.maxAllocationBytes) bytes, CL_DEVICE_MAX_MEM_ALLOC_SIZE); split the work into smaller tensors")
        }
    }
}

/// How the register-blocked matmul reads its operands for one geometry.
struct VectorMatmulPlan {
    /// The few-row kernels, for products with at most 8 rows of `a` (decode steps): they stream `b` in place.
    enum FewRows {
        /// `b` is `[N, K]`: dot products of rows (`matmul_rows_bt`).
        case transposedB
        /// `b` is `[K, N]` with N a multiple of 16: split-k column sweeps (`matmul_rows_bn` + reduce).
        case plainB
    }

    let mPanels: Int
    let nPanels: Int
    /// `a` must be packed unless it is transposed (`[K, M]` rows are then contiguous along M) and M is a multiple of 8.
    let packA: Bool
    /// Set when a few-row kernel replaces the blocked one.
    let fewRows: FewRows?
    /// Rows of `a` per product, and products, as the few-row kernels see them: a shared 2-D `b` lets the
    /// batch fold into the rows (`[B, M, K]` is `[B·M, K]` in memory).
    let rows: Int
    let products: Int

    init(_ g: MatmulGeometry) {
        mPanels = (g.m + KernelSource.vectorRows - 1) / KernelSource.vectorRows
        nPanels = (g.n + KernelSource.vectorColumns - 1) / KernelSource.vectorColumns
        packA = !(g.transposeA && g.m % KernelSource.vectorRows == 0)
        (rows, products) = g.sharedB ? (g.batch * g.m, 1) : (g.m, g.batch)
        if g.transposeA || rows > KernelSource.fewRowsMax {
            fewRows = nil
        } else if g.transposeB {
            fewRows = .transposedB
        } else if g.n % 16 == 0 {
            fewRows = .plainB
        } else {
            fewRows = nil
        }
    }
}
