import TensorCore
import TensorCoreBLAS
import TensorCoreOpenCL

/// A backend under benchmark: rows come from its ``ComputeBackend`` API (end to end, host tensors in and out),
/// plus optionally a kernel-only runner for device backends (operands resident on the device, timed until the
/// device is idle, no transfers).
public struct BenchmarkBackend: Sendable {
    public let provider: BackendProvider
    /// Calls above this many FLOPs are skipped (and the table says so); `nil` runs everything.
    public let flopLimit: Double?
    /// Creates the kernel-only runner for a backend made by `provider`, when the backend has device-resident tensors.
    public let kernelRunner: (@Sendable (any ComputeBackend) throws -> (any DeviceKernelRunner)?)?
    /// Only these kinds of workload (`nil`: all).
    public let kinds: Set<KernelWorkload.Kind>?

    public init(provider: BackendProvider, flopLimit: Double? = nil, kinds: Set<KernelWorkload.Kind>? = nil,
                kernelRunner: (@Sendable (any ComputeBackend) throws -> (any DeviceKernelRunner)?)? = nil) {
        self.provider = provider
        self.flopLimit = flopLimit
        self.kinds = kinds
        self.kernelRunner = kernelRunner
    }

    public var name: String { provider.name }

    /// Every backend InferenceKit ships: BLAS, OpenCL (end to end and kernel-only), and the reference backend
    /// on small problems only (≤ 0.2 GFLOP per call; in Float64 it would take minutes on the big shapes).
    /// `blas-blasthreads` is the BLAS backend with attention blocks run one after another on OpenBLAS's own
    /// threads, the alternative to its default (blocks in parallel, one OpenBLAS thread each).
    public static let standard: [BenchmarkBackend] = [
        BenchmarkBackend(provider: BLASBackend.provider),
        BenchmarkBackend(provider: BackendProvider(name: "blas-blasthreads", summary: "BLASBackend, attention blocks sequential on OpenBLAS threads") {
            try BLASBackend(configuration: .init(attentionThreading: .blasThreads))
        }, kinds: [.prefillAttention, .decodeAttention]),
        BenchmarkBackend(provider: OpenCLBackend.provider) { backend in
            (backend as? OpenCLBackend).map { OpenCLKernelRunner(backend: $0) }
        },
        BenchmarkBackend(provider: ReferenceBackend.provider, flopLimit: 2e8),
    ]
}

/// Runs workloads on a device with the operands already resident there.
public protocol DeviceKernelRunner: Sendable {
    /// Uploads `inputs` and returns a closure that runs the workload once on input set `i % sets` and waits
    /// for the device to finish (so its duration is kernel time only).
    func prepare(_ workload: KernelWorkload, inputs: KernelInputs) throws -> PreparedKernel
    /// Which kernel variant runs `workload` on this device, when the backend can say.
    func variant(for workload: KernelWorkload) -> String?
}

/// A workload ready to time on a device.
public struct PreparedKernel {
    public let run: (Int) throws -> Void
    public init(run: @escaping (Int) throws -> Void) { self.run = run }
}

/// Host operands of one workload: one or more independent sets (decode rotates through several key/value
/// caches so that each repetition reads from memory, not from the last-level cache).
public struct KernelInputs: Sendable {
    /// Matmul: `[a, b]`; attention: `[query, key, value]`, per set.
    public let sets: [[Tensor]]
}

/// ``DeviceKernelRunner`` for ``OpenCLBackend``: device-resident tensors, timed with `finish()`.
public struct OpenCLKernelRunner: DeviceKernelRunner {
    public let backend: OpenCLBackend

    public init(backend: OpenCLBackend) { self.backend = backend }

    public func prepare(_ workload: KernelWorkload, inputs: KernelInputs) throws -> PreparedKernel {
        let cl = backend
        let resident = try inputs.sets.map { set in try set.map { try cl.upload($0) } }
        try cl.finish()
        switch workload.kind {
        case .matmul:
            return PreparedKernel { i in
                let s = resident[i % resident.count]
                _ = try cl.matmul(s[0], s[1], transposeA: false, transposeB: workload.transposeB)
                try cl.finish()
            }
        case .prefillAttention, .decodeAttention:
            let scale = 1 / Float(workload.headDim).squareRoot()
            return PreparedKernel { i in
                let s = resident[i % resident.count]
                _ = try cl.attention(query: s[0], key: s[1], value: s[2], causal: workload.causal, scale: scale)
                try cl.finish()
            }
        }
    }

    public func variant(for workload: KernelWorkload) -> String? {
        switch workload.kind {
        case .matmul:
            guard let g = try? MatmulGeometry(workload.aShape, workload.bShape, transposeA: false, transposeB: workload.transposeB) else { return nil }
            return backend.matmulKernelVariant(for: g)
        case .prefillAttention, .decodeAttention:
            return "attention \(backend.attentionVariant.rawValue)"
        }
    }
}
