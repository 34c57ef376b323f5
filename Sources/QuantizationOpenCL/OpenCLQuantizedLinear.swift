import Foundation
import Quantization
import TensorCore
import TensorCoreOpenCL

/// OpenCL kernels for every `QuantizationFormat` (Q8_0, Q4_0, Q4_1, INT8 per channel, INT4 grouped), computing `y = x · Wᵀ` on any OpenCL device
/// (PoCL on CPUs, NVIDIA/AMD/Intel GPUs).
///
/// The weights stay in their format's byte layout on the device; each work-item computes one output
/// `(token, row)` by dequantizing blocks on the fly against Float32 activations, so the result equals
/// dequantize-then-matmul up to Float32 summation order. This module is separate from `Quantization`
/// so that using quantized formats never links OpenCL.
///
/// Built on TensorCoreOpenCL's shared runtime: the device's context, command queue and program cache are
/// those of an `OpenCLBackend`, so quantized layers and Float32 ops (attention, norms) share one queue and
/// can chain device-resident `OpenCLTensor`s; the kernels build once per process and device, and OpenCL
/// failures carry the status name and the failing call.
///
/// `Sendable`: its stored properties are immutable `Sendable` values (the backend serialises every
/// enqueue behind its device lock).
public final class OpenCLQuantizedRuntime: Sendable {
    /// Device name, type and platform, e.g. `pthread-skylake-avx512-AMD EPYC [cpu, …]`.
    public let deviceDescription: String
    /// True for a GPU or accelerator, false for a CPU device such as PoCL.
    public let isGPU: Bool
    /// The backend (device, queue, program cache) the kernels run on.
    public let backend: OpenCLBackend
    let program: OpenCLProgram

    static let label = "QuantizationOpenCL quantized matvec kernels"
    static let kernels = ["matvec_q8_0", "matvec_q4", "matvec_int8", "matvec_int4"]

    static let source = """
    __kernel void matvec_q8_0(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T) {
        const int n = get_global_id(0), t = get_global_id(1);
        if (n >= N || t >= T) return;
        const int nb = K / 32;
        __global const uchar *row = w + (size_t)n * nb * 34;
        __global const float *xr = x + (size_t)t * K;
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            __global const uchar *blk = row + b * 34;
            const float d = vload_half(0, (__global const half *)blk);
            __global const char *qs = (__global const char *)(blk + 2);
            __global const float *xb = xr + b * 32;
            float s = 0.0f;
            for (int j = 0; j < 32; j += 4) s += dot(convert_float4(vload4(0, qs + j)), vload4(0, xb + j));
            acc += d * s;
        }
        y[(size_t)t * N + n] = acc;
    }

    __kernel void matvec_q4(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T, int withMin) {
        const int n = get_global_id(0), t = get_global_id(1);
        if (n >= N || t >= T) return;
        const int nb = K / 32, bytes = withMin ? 20 : 18, qoff = withMin ? 4 : 2;
        __global const uchar *row = w + (size_t)n * nb * bytes;
        __global const float *xr = x + (size_t)t * K;
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            __global const uchar *blk = row + b * bytes;
            const float d = vload_half(0, (__global const half *)blk);
            __global const float *xb = xr + b * 32;
            float s = 0.0f, sx = 0.0f;
            for (int j = 0; j < 16; j += 4) {
                const uchar4 v = vload4(0, blk + qoff + j);
                const float4 x0 = vload4(0, xb + j), x1 = vload4(0, xb + 16 + j);
                s += dot(convert_float4(v & (uchar4)(0x0F)), x0) + dot(convert_float4(v >> (uchar4)(4)), x1);
                sx += dot(x0, (float4)(1.0f)) + dot(x1, (float4)(1.0f));
            }
            // Q4_0: w = d·(u − 8); Q4_1: w = d·u + m.
            const float m = withMin ? vload_half(1, (__global const half *)blk) : -8.0f * d;
            acc += d * s + m * sx;
        }
        y[(size_t)t * N + n] = acc;
    }

    // INT8 per channel, planar: N Float32 scales, then N × K int8 codes.
    __kernel void matvec_int8(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T) {
        const int n = get_global_id(0), t = get_global_id(1);
        if (n >= N || t >= T) return;
        const float scale = ((__global const float *)w)[n];
        __global const char *row = (__global const char *)(w + (size_t)N * 4 + (size_t)n * K);
        __global const float *xr = x + (size_t)t * K;
        float s = 0.0f;
        for (int k = 0; k < K; k += 4) s += dot(convert_float4(vload4(0, row + k)), vload4(0, xr + k));
        y[(size_t)t * N + n] = scale * s;
    }

    // INT4 grouped, planar: N × K/G Float16 scales, [N × K/G uint8 zero points], N × K/2 code bytes
    // packed per 32-weight sub-block like Q4_0. Symmetric groups use zero point 8.
    __kernel void matvec_int4(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T, int G, int symmetric) {
        const int n = get_global_id(0), t = get_global_id(1);
        if (n >= N || t >= T) return;
        const int groups = K / G;
        const size_t zerosOffset = (size_t)N * groups * 2;
        const size_t codesOffset = zerosOffset + (symmetric ? 0 : (size_t)N * groups);
        __global const float *xr = x + (size_t)t * K;
        float acc = 0.0f;
        for (int g = 0; g < groups; g++) {
            const size_t gi = (size_t)n * groups + g;
            const float scale = vload_half(gi, (__global const half *)w);
            const float z = symmetric ? 8.0f : (float)w[zerosOffset + gi];
            float s = 0.0f, sx = 0.0f;
            for (int sb = 0; sb < G / 32; sb++) {
                const int k0 = g * G + sb * 32;
                __global const uchar *c = w + codesOffset + ((size_t)n * K + k0) / 2;
                __global const float *xb = xr + k0;
                for (int j = 0; j < 16; j += 4) {
                    const uchar4 v = vload4(0, c + j);
                    const float4 x0 = vload4(0, xb + j), x1 = vload4(0, xb + 16 + j);
                    s += dot(convert_float4(v & (uchar4)(0x0F)), x0) + dot(convert_float4(v >> (uchar4)(4)), x1);
                    sx += dot(x0, (float4)(1.0f)) + dot(x1, (float4)(1.0f));
                }
            }
            acc += scale * (s - z * sx);
        }
        y[(size_t)t * N + n] = acc;
    }
    """

    /// Runs on `backend`'s device, building the quantized kernels there on first use in the process.
    ///
    /// - Throws: `deviceFailure` with the build log when the kernels do not compile.
    public init(backend: OpenCLBackend) throws {
        self.backend = backend
        isGPU = backend.device.kind == .gpu || backend.device.kind == .accelerator
        deviceDescription = backend.device.description
        program = try Self.device("building the quantized kernels on \(backend.device.name)") {
            try backend.program(source: Self.source, options: "-cl-std=CL1.2", kernels: Self.kernels, label: Self.label)
        }
    }

    /// Runs on the first GPU (or accelerator), else the first OpenCL device of any kind.
    ///
    /// - Throws: `deviceUnavailable` when no OpenCL driver or device exists (the message says what to
    ///   install); `deviceFailure` when the kernels do not build.
    public convenience init() throws {
        let backend = try Self.device("opening an OpenCL device") { () throws -> OpenCLBackend in
            let devices = try OpenCLBackend.devices()
            let gpu = devices.first { $0.kind == .gpu || $0.kind == .accelerator }
            return try OpenCLBackend(device: gpu.map { .named($0.name) } ?? .automatic)
        }
        try self.init(backend: backend)
    }

    /// Uploads a quantized matrix (any format).
    public func makeLinear(_ matrix: QuantizedMatrix) throws -> OpenCLQuantizedLinear {
        try OpenCLQuantizedLinear(runtime: self, matrix: matrix)
    }

    /// Runs OpenCL work, turning TensorCore's errors into `QuantizationError` with `what` and the cause.
    static func device<R>(_ what: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as TensorError {
            let code: QuantizationError.Code = error.code == .backendUnavailable ? .deviceUnavailable : .deviceFailure
            throw QuantizationError(code, "\(what): \(error.message)", underlying: error.underlying)
        }
    }
}

/// A quantized weight matrix `[N, K]` resident on an OpenCL device, in its format's byte layout.
///
/// `Sendable`: its stored properties are immutable `Sendable` values; the weight buffer is written once
/// in `init` and kernel launches go through the backend's device lock.
public final class OpenCLQuantizedLinear: LinearWeights, Sendable {
    public let runtime: OpenCLQuantizedRuntime
    public let format: QuantizationFormat
    public let outputFeatures: Int
    public let inputFeatures: Int
    let weights: OpenCLBuffer
    let kernel: String

    init(runtime: OpenCLQuantizedRuntime, matrix: QuantizedMatrix) throws {
        self.runtime = runtime
        format = matrix.format
        outputFeatures = matrix.rows
        inputFeatures = matrix.columns
        weights = try OpenCLQuantizedRuntime.device("uploading \(matrix.bytes.count) bytes of \(matrix.format) weights to \(runtime.backend.device.name)") {
            try runtime.backend.makeBuffer(matrix.bytes)
        }
        switch matrix.format {
        case .q8_0: kernel = "matvec_q8_0"
        case .q4_0, .q4_1: kernel = "matvec_q4"
        case .int8PerChannel: kernel = "matvec_int8"
        case .int4Grouped: kernel = "matvec_int4"
        }
    }

    public func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor { try apply(x) }

    /// `x` `[..., K]` → `[..., N]`.
    public func apply(_ x: Tensor) throws -> Tensor {
        let outShape = try checkInput(x.shape)
        if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError(.nonFinite, "linear layer input holds \(x.scalars[i]) at flat index \(i); replace NaN/Inf values before calling")
        }
        let cl = runtime.backend
        return try OpenCLQuantizedRuntime.device("running \(kernel) on \(cl.device.name)") {
            let y = try launch(try cl.upload(x), outShape)
            return try cl.download(y)
        }
    }

    /// Device-resident `x` `[..., K]` → `[..., N]` on the same device, returned once the kernel is queued
    /// (no NaN/Inf check: that would need a download).
    public func apply(_ x: OpenCLTensor) throws -> OpenCLTensor {
        let outShape = try checkInput(x.shape)
        return try OpenCLQuantizedRuntime.device("running \(kernel) on \(runtime.backend.device.name)") { try launch(x, outShape) }
    }

    private func checkInput(_ shape: Shape) throws -> Shape {
        let k = inputFeatures
        guard shape.rank >= 1, shape[shape.rank - 1] == k, shape.elementCount > 0 else {
            throw QuantizationError(.invalidShape, "linear layer input has shape \(shape); its last dimension must be K = \(k)")
        }
        let tokens = shape.elementCount / k
        guard tokens <= Int(Int32.max), outputFeatures <= Int(Int32.max), tokens.multipliedReportingOverflow(by: outputFeatures).partialValue <= Int(Int32.max) else {
            throw QuantizationError(.invalidShape, "linear layer output of \(tokens) × \(outputFeatures) values is past the 2³¹ − 1 an OpenCL kernel indexes; split the tokens")
        }
        return Shape(Array(shape.dimensions.dropLast()) + [outputFeatures])
    }

    private func launch(_ x: OpenCLTensor, _ outShape: Shape) throws -> OpenCLTensor {
        let cl = runtime.backend
        let n = outputFeatures, k = inputFeatures, tokens = x.elementCount / k
        let y = try cl.makeTensor(shape: outShape)
        var arguments: [OpenCLKernelArgument] = [.buffer(weights), .tensor(x), .tensor(y), .int32(Int32(n)), .int32(Int32(k)), .int32(Int32(tokens))]
        switch format {
        case .q4_0: arguments.append(.int32(0))
        case .q4_1: arguments.append(.int32(1))
        case let .int4Grouped(g, symmetric): arguments += [.int32(Int32(g)), .int32(symmetric ? 1 : 0)]
        case .q8_0, .int8PerChannel: break
        }
        try cl.enqueue(runtime.program, kernel: kernel, arguments: arguments, global: [(n + 63) / 64 * 64, tokens])
        return y
    }
}
