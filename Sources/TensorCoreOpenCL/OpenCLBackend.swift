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
        /// runs at about 1% of OpenBLAS, so it is never chosen there automatically.
        case tiledLocalMemory = "tiled-local-memory"
        /// Each work-item computes an 8×16 block with eight `float16` accumulators, reading 8 values of `a`
        /// and 16 of `b` per step of `k` from packed panels (or the operands directly when their layout
        /// already matches). The CPU kernel (PoCL): wide vector FMAs and no barriers.
        case registerBlockedVector = "register-blocked-vector"
    }

    /// Settings of an ``OpenCLBackend``.
    public struct Configuration: Sendable, Hashable {
        /// Which device to use. Default: ``OpenCLDeviceSelector/automatic`` (first GPU, else any device).
        public var device: OpenCLDeviceSelector
        /// Force one matmul kernel; `nil` (the default) chooses by device type — tiled on GPUs and
        /// accelerators, register-blocked on CPUs.
        public var matmulKernel: MatmulKernelVariant?

        public init(device: OpenCLDeviceSelector = .automatic, matmulKernel: MatmulKernelVariant? = nil) {
            self.device = device
            self.matmulKernel = matmulKernel
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
        return try runtime.session.withLock { s in
            let mem = try s.makeBuffer(count: tensor.elementCount)
            let result = OpenCLTensor(shape: tensor.shape, buffer: mem, runtime: runtime)
            try tensor.withUnsafeBufferPointer { try s.write($0, to: mem) }
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

    /// A human description of the matmul kernel (and its packing steps) used for `geometry`.
    ///
    /// For example `register-blocked-vector 8x16 float16 (pack a, b direct)` or
    /// `tiled-local-memory 64x64 tile, 16x16 work-group`.
    public func matmulKernelVariant(for geometry: MatmulGeometry) -> String {
        switch matmulVariant(for: geometry) {
        case .tiledLocalMemory:
            let edge = runtime.tileEdge
            return "tiled-local-memory \(edge * 4)x\(edge * 4) tile, \(edge)x\(edge) work-group"
        case .registerBlockedVector:
            let plan = VectorMatmulPlan(geometry)
            return "register-blocked-vector 8x16 float16 (\(plan.packA ? "pack a" : "a direct"), \(plan.packB ? "pack b" : "b direct"))"
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
        OpenCLTensor(shape: shape, buffer: try s.makeBuffer(count: shape.elementCount), runtime: runtime)
    }
}

/// How the register-blocked matmul reads its operands for one geometry.
struct VectorMatmulPlan {
    let mPanels: Int
    let nPanels: Int
    /// `a` must be packed unless it is transposed (`[K, M]` rows are then contiguous along M) and M is a multiple of 8.
    let packA: Bool
    /// `b` must be packed unless it is `[K, N]` with N a multiple of 16.
    let packB: Bool

    init(_ g: MatmulGeometry) {
        mPanels = (g.m + KernelSource.vectorRows - 1) / KernelSource.vectorRows
        nPanels = (g.n + KernelSource.vectorColumns - 1) / KernelSource.vectorColumns
        packA = !(g.transposeA && g.m % KernelSource.vectorRows == 0)
        packB = !(!g.transposeB && g.n % KernelSource.vectorColumns == 0)
    }
}
