import CInferenceKitOpenCL
import Foundation
import Quantization
import TensorCore

/// OpenCL kernels for every `QuantizationFormat` (Q8_0, Q4_0, Q4_1, INT8 per channel, INT4 grouped), computing `y = x · Wᵀ` on any OpenCL device
/// (PoCL on CPUs, NVIDIA/AMD/Intel GPUs).
///
/// The weights stay in their format's byte layout on the device; each work-item computes one output
/// `(token, row)` by dequantizing blocks on the fly against Float32 activations, so the result equals
/// dequantize-then-matmul up to Float32 summation order. This module is separate from `Quantization`
/// so that using quantized formats never links OpenCL.
///
/// `@unchecked Sendable`: the OpenCL objects are created in `init` and never replaced; every use of
/// the command queue happens under `lock`.
public final class OpenCLQuantizedRuntime: @unchecked Sendable {
    /// Device name and platform, e.g. `pthread-skylake-avx512-AMD EPYC (Portable Computing Language)`.
    public let deviceDescription: String
    /// True for a GPU or accelerator, false for a CPU device such as PoCL.
    public let isGPU: Bool
    let context: cl_context
    let queue: cl_command_queue
    let program: cl_program
    let device: cl_device_id
    let lock = NSLock()

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

    /// Creates a context on the first GPU, or else the first OpenCL device of any kind.
    public init() throws {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else {
            throw QuantizationError(.deviceUnavailable, "no OpenCL platform found; install an ICD such as pocl-opencl-icd (CPU) or a GPU driver")
        }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try Self.check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var chosen: (cl_platform_id, cl_device_id, Bool)?
        for gpuPass in [true, false] where chosen == nil {
            for p in platforms.compactMap({ $0 }) {
                var dev: cl_device_id?
                var n: cl_uint = 0
                let type = gpuPass ? cl_device_type(CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR) : cl_device_type(CL_DEVICE_TYPE_ALL)
                if clGetDeviceIDs(p, type, 1, &dev, &n) == CL_SUCCESS, n > 0, let dev {
                    chosen = (p, dev, gpuPass)
                    break
                }
            }
        }
        guard let (platform, dev, gpu) = chosen else {
            throw QuantizationError(.deviceUnavailable, "OpenCL platforms exist but expose no device")
        }
        device = dev
        isGPU = gpu
        deviceDescription = Self.string(dev, cl_device_info(CL_DEVICE_NAME)) + " (" + Self.platformName(platform) + ")"
        var err: cl_int = 0
        var d: cl_device_id? = dev
        guard let ctx = clCreateContext(nil, 1, &d, nil, nil, &err), err == CL_SUCCESS else {
            throw QuantizationError(.deviceFailure, "clCreateContext failed", underlying: "status \(err)")
        }
        context = ctx
        guard let q = clCreateCommandQueue(ctx, dev, 0, &err), err == CL_SUCCESS else {
            clReleaseContext(ctx)
            throw QuantizationError(.deviceFailure, "clCreateCommandQueue failed", underlying: "status \(err)")
        }
        queue = q
        let prog: cl_program? = Self.source.withCString { src in
            var p: UnsafePointer<CChar>? = src
            return clCreateProgramWithSource(ctx, 1, &p, nil, &err)
        }
        guard let prog, err == CL_SUCCESS else {
            clReleaseCommandQueue(q); clReleaseContext(ctx)
            throw QuantizationError(.deviceFailure, "clCreateProgramWithSource failed", underlying: "status \(err)")
        }
        let status = clBuildProgram(prog, 1, &d, "-cl-std=CL1.2", nil, nil)
        guard status == CL_SUCCESS else {
            var size = 0
            clGetProgramBuildInfo(prog, dev, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
            var log = [CChar](repeating: 0, count: size + 1)
            clGetProgramBuildInfo(prog, dev, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
            clReleaseProgram(prog); clReleaseCommandQueue(q); clReleaseContext(ctx)
            throw QuantizationError(.deviceFailure, "building the quantized kernels failed", underlying: cString(log))
        }
        program = prog
    }

    deinit {
        clReleaseProgram(program)
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    static func check(_ status: cl_int, _ call: String) throws {
        guard status == CL_SUCCESS else { throw QuantizationError(.deviceFailure, "\(call) failed", underlying: "OpenCL status \(status)") }
    }

    static func string(_ dev: cl_device_id, _ what: cl_device_info) -> String {
        var size = 0
        clGetDeviceInfo(dev, what, 0, nil, &size)
        var buf = [CChar](repeating: 0, count: size + 1)
        clGetDeviceInfo(dev, what, size, &buf, nil)
        return cString(buf)
    }

    static func platformName(_ p: cl_platform_id) -> String {
        var size = 0
        clGetPlatformInfo(p, cl_platform_info(CL_PLATFORM_NAME), 0, nil, &size)
        var buf = [CChar](repeating: 0, count: size + 1)
        clGetPlatformInfo(p, cl_platform_info(CL_PLATFORM_NAME), size, &buf, nil)
        return cString(buf)
    }

    /// Uploads a quantized matrix (any format).
    public func makeLinear(_ matrix: QuantizedMatrix) throws -> OpenCLQuantizedLinear {
        try OpenCLQuantizedLinear(runtime: self, matrix: matrix)
    }
}

/// A quantized weight matrix `[N, K]` resident on an OpenCL device.
///
/// `@unchecked Sendable`: the buffer is written once in `init`; kernel launches go through the
/// runtime's lock.
public final class OpenCLQuantizedLinear: LinearWeights, @unchecked Sendable {
    public let runtime: OpenCLQuantizedRuntime
    public let format: QuantizationFormat
    public let outputFeatures: Int
    public let inputFeatures: Int
    let buffer: cl_mem
    let kernel: cl_kernel

    init(runtime: OpenCLQuantizedRuntime, matrix: QuantizedMatrix) throws {
        self.runtime = runtime
        format = matrix.format
        outputFeatures = matrix.rows
        inputFeatures = matrix.columns
        var err: cl_int = 0
        let buf = matrix.bytes.withUnsafeBytes { p in
            clCreateBuffer(runtime.context, cl_mem_flags(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR), p.count, UnsafeMutableRawPointer(mutating: p.baseAddress), &err)
        }
        guard let buf, err == CL_SUCCESS else {
            throw QuantizationError(.deviceFailure, "allocating \(matrix.bytes.count) bytes of weights on \(runtime.deviceDescription) failed", underlying: "status \(err)")
        }
        buffer = buf
        let name: String
        switch matrix.format {
        case .q8_0: name = "matvec_q8_0"
        case .q4_0, .q4_1: name = "matvec_q4"
        case .int8PerChannel: name = "matvec_int8"
        case .int4Grouped: name = "matvec_int4"
        }
        guard let k = clCreateKernel(runtime.program, name, &err), err == CL_SUCCESS else {
            clReleaseMemObject(buf)
            throw QuantizationError(.deviceFailure, "clCreateKernel failed", underlying: "status \(err)")
        }
        kernel = k
    }

    deinit {
        clReleaseKernel(kernel)
        clReleaseMemObject(buffer)
    }

    public func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor { try apply(x) }

    /// `x` `[..., K]` → `[..., N]`.
    public func apply(_ x: Tensor) throws -> Tensor {
        let k = inputFeatures, n = outputFeatures
        guard x.rank >= 1, x.shape[x.rank - 1] == k, x.elementCount > 0 else {
            throw QuantizationError(.invalidShape, "linear layer input has shape \(x.shape); its last dimension must be K = \(k)")
        }
        if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError(.nonFinite, "linear layer input holds \(x.scalars[i]) at flat index \(i); replace NaN/Inf values before calling")
        }
        let tokens = x.elementCount / k
        let outShape = Shape(Array(x.shape.dimensions.dropLast()) + [n])
        runtime.lock.lock()
        defer { runtime.lock.unlock() }
        var err: cl_int = 0
        let xb = x.withUnsafeBufferPointer { p in
            clCreateBuffer(runtime.context, cl_mem_flags(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR), p.count * 4, UnsafeMutableRawPointer(mutating: p.baseAddress), &err)
        }
        guard let xb, err == CL_SUCCESS else { throw QuantizationError(.deviceFailure, "clCreateBuffer (activations) failed", underlying: "status \(err)") }
        defer { clReleaseMemObject(xb) }
        guard let yb = clCreateBuffer(runtime.context, cl_mem_flags(CL_MEM_WRITE_ONLY), tokens * n * 4, nil, &err), err == CL_SUCCESS else {
            throw QuantizationError(.deviceFailure, "clCreateBuffer (output) failed", underlying: "status \(err)")
        }
        defer { clReleaseMemObject(yb) }
        var wbuf: cl_mem? = buffer, xbuf: cl_mem? = xb, ybuf: cl_mem? = yb
        var nn = cl_int(n), kk = cl_int(k), tt = cl_int(tokens), withMin = cl_int(format == .q4_1 ? 1 : 0)
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 0, MemoryLayout<cl_mem>.size, &wbuf), "clSetKernelArg")
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 1, MemoryLayout<cl_mem>.size, &xbuf), "clSetKernelArg")
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 2, MemoryLayout<cl_mem>.size, &ybuf), "clSetKernelArg")
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 3, 4, &nn), "clSetKernelArg")
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 4, 4, &kk), "clSetKernelArg")
        try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 5, 4, &tt), "clSetKernelArg")
        switch format {
        case .q4_0, .q4_1:
            try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 6, 4, &withMin), "clSetKernelArg")
        case let .int4Grouped(g, sym):
            var group = cl_int(g), symmetric = cl_int(sym ? 1 : 0)
            try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 6, 4, &group), "clSetKernelArg")
            try OpenCLQuantizedRuntime.check(clSetKernelArg(kernel, 7, 4, &symmetric), "clSetKernelArg")
        default:
            break
        }
        var global = [(n + 63) / 64 * 64, tokens]
        try OpenCLQuantizedRuntime.check(clEnqueueNDRangeKernel(runtime.queue, kernel, 2, nil, &global, nil, 0, nil, nil), "clEnqueueNDRangeKernel")
        return try Tensor(shape: outShape) { out in
            try OpenCLQuantizedRuntime.check(
                clEnqueueReadBuffer(runtime.queue, yb, cl_bool(CL_TRUE), 0, tokens * n * 4, out.baseAddress, 0, nil, nil), "clEnqueueReadBuffer")
        }
    }
}

/// A Swift string from a NUL-terminated C buffer.
func cString(_ buf: [CChar]) -> String {
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
