import CInferenceKitOpenCL
import Foundation
import KVPaging
import Synchronization
import TensorCore

/// Paged attention as an OpenCL kernel (any ICD: PoCL on CPUs, NVIDIA/AMD/Intel GPUs).
///
/// One work-item computes one (query row, query head): it walks the row's
/// sequence block table position by position with an online softmax, reading
/// K/V rows from `[numBlocks, blockSize, Hkv, D]` storage. Results match
/// `ReferencePagedAttention` (KVPaging) within Float32 tolerance.
///
/// Limits of this first version: the host-side `PagedKVStorage` (KVPaging) is uploaded
/// on every call (a device-resident paged cache is not implemented), the
/// kernel is the straightforward one-item-per-head form (no tiling, no local
/// memory), and `D` must be ≤ 256. It is a correctness-first device path, not
/// a tuned one; no performance figures are claimed for it.
public final class OpenCLPagedAttention: PagedAttentionKernel {
    public var name: String { "opencl" }
    /// The device the kernel runs on, e.g. `"pthread-AMD EPYC (Portable Computing Language)"`.
    public let deviceDescription: String
    /// Largest head dimension the kernel accepts.
    public static let maxHeadDim = 256

    /// OpenCL handles used under the lock: `clSetKernelArg` on a shared kernel is not thread-safe.
    private struct Session: ~Copyable {
        let context: cl_context
        let queue: cl_command_queue
        let program: cl_program
        let kernel: cl_kernel

        deinit {
            clReleaseKernel(kernel)
            clReleaseProgram(program)
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
        }
    }

    private let session: Mutex<Session>

    /// Creates the kernel on the first GPU found, else on the first OpenCL device of any type.
    public init(preferGPU: Bool = true) throws(KVPagingError) {
        let (device, description) = try Self.pickDevice(preferGPU: preferGPU)
        var err: cl_int = 0
        var dev: cl_device_id? = device
        guard let context = clCreateContext(nil, 1, &dev, nil, nil, &err), err == CL_SUCCESS else {
            throw Self.failure(err, "clCreateContext")
        }
        guard let queue = clCreateCommandQueue(context, device, 0, &err), err == CL_SUCCESS else {
            clReleaseContext(context)
            throw Self.failure(err, "clCreateCommandQueue")
        }
        let program: cl_program? = Self.source.withCString { src in
            var ptr: UnsafePointer<CChar>? = src
            var length = strlen(src)
            return clCreateProgramWithSource(context, 1, &ptr, &length, &err)
        }
        guard let program, err == CL_SUCCESS else {
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw Self.failure(err, "clCreateProgramWithSource")
        }
        let status = clBuildProgram(program, 1, &dev, "-cl-std=CL1.2 -DMAX_D=\(Self.maxHeadDim)", nil, nil)
        guard status == CL_SUCCESS else {
            let log = Self.buildLog(program, device)
            clReleaseProgram(program)
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw KVPagingError(.deviceFailure, "building the paged-attention OpenCL kernel failed (status \(status)); build log:\n\(log)")
        }
        guard let kernel = clCreateKernel(program, "paged_attention", &err), err == CL_SUCCESS else {
            clReleaseProgram(program)
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw Self.failure(err, "clCreateKernel")
        }
        session = Mutex(Session(context: context, queue: queue, program: program, kernel: kernel))
        deviceDescription = description
    }

    public func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor {
        let hq = try batch.validate(query: query.shape, storage: storage, scale: scale)
        let d = storage.headDim
        guard d <= Self.maxHeadDim else {
            throw KVPagingError(.unsupported, "OpenCL paged attention supports head dimensions ≤ \(Self.maxHeadDim); D is \(d). Use CPUPagedAttention")
        }
        guard query.isFinite else { throw KVPagingError(.nonFinite, "paged attention: query holds NaN/Inf") }
        // Flattened block tables and per-row descriptors.
        var tables: [Int32] = []
        var tableStart: [Int32] = []
        var rowSeq: [Int32] = []
        var rowVisible: [Int32] = []
        for s in 0..<batch.sequenceCount {
            tableStart.append(Int32(tables.count))
            let need = (batch.contextLengths[s] + storage.blockSize - 1) / storage.blockSize
            tables.append(contentsOf: batch.blockTables[s].prefix(need).map { Int32($0) })
            for t in 0..<batch.queryLengths[s] {
                rowSeq.append(Int32(s))
                rowVisible.append(Int32(batch.contextLengths[s] - batch.queryLengths[s] + t + 1))
            }
        }
        let rows = rowSeq.count
        let outCount = rows * hq * d
        return try session.withLock { (s: inout Session) throws(KVPagingError) -> Tensor in
            var buffers: [cl_mem] = []
            defer { for b in buffers { clReleaseMemObject(b) } }
            func upload<T>(_ array: [T]) throws(KVPagingError) -> cl_mem {
                var err: cl_int = 0
                let bytes = max(1, array.count) * MemoryLayout<T>.stride
                let mem = array.withUnsafeBytes { raw in
                    clCreateBuffer(s.context, cl_mem_flags(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR), bytes,
                                   array.isEmpty ? nil : UnsafeMutableRawPointer(mutating: raw.baseAddress), &err)
                }
                guard let mem, err == CL_SUCCESS else { throw Self.failure(err, "clCreateBuffer (\(bytes) bytes)") }
                buffers.append(mem)
                return mem
            }
            let qBuf = try upload(query.scalars)
            let kBuf = try upload(storage.keys)
            let vBuf = try upload(storage.values)
            let tBuf = try upload(tables)
            let tsBuf = try upload(tableStart)
            let rsBuf = try upload(rowSeq)
            let rvBuf = try upload(rowVisible)
            var err: cl_int = 0
            guard let outBuf = clCreateBuffer(s.context, cl_mem_flags(CL_MEM_WRITE_ONLY), outCount * 4, nil, &err), err == CL_SUCCESS else {
                throw Self.failure(err, "clCreateBuffer (output)")
            }
            buffers.append(outBuf)
            var args: [cl_mem?] = [qBuf, kBuf, vBuf, tBuf, tsBuf, rsBuf, rvBuf, outBuf]
            for i in 0..<args.count {
                let st = clSetKernelArg(s.kernel, cl_uint(i), MemoryLayout<cl_mem>.size, &args[i])
                guard st == CL_SUCCESS else { throw Self.failure(st, "clSetKernelArg \(i)") }
            }
            var ints: [cl_int] = [cl_int(hq), cl_int(storage.kvHeads), cl_int(d), cl_int(storage.blockSize)]
            for i in 0..<ints.count {
                let st = clSetKernelArg(s.kernel, cl_uint(args.count + i), MemoryLayout<cl_int>.size, &ints[i])
                guard st == CL_SUCCESS else { throw Self.failure(st, "clSetKernelArg \(args.count + i)") }
            }
            var sc = scale
            let st = clSetKernelArg(s.kernel, cl_uint(args.count + ints.count), MemoryLayout<Float>.size, &sc)
            guard st == CL_SUCCESS else { throw Self.failure(st, "clSetKernelArg scale") }
            var global: [Int] = [rows, hq]
            let run = clEnqueueNDRangeKernel(s.queue, s.kernel, 2, nil, &global, nil, 0, nil, nil)
            guard run == CL_SUCCESS else { throw Self.failure(run, "clEnqueueNDRangeKernel") }
            var out = [Float](repeating: 0, count: outCount)
            let read = out.withUnsafeMutableBytes { raw in
                clEnqueueReadBuffer(s.queue, outBuf, cl_bool(CL_TRUE), 0, outCount * 4, raw.baseAddress, 0, nil, nil)
            }
            guard read == CL_SUCCESS else { throw Self.failure(read, "clEnqueueReadBuffer") }
            do {
                return try Tensor(shape: query.shape, scalars: out)
            } catch {
                throw KVPagingError(.shapeMismatch, "paged attention: \(error)")
            }
        }
    }

    // MARK: Device discovery

    private static func pickDevice(preferGPU: Bool) throws(KVPagingError) -> (cl_device_id, String) {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else {
            throw KVPagingError(.deviceUnavailable, "no OpenCL platform found; install an ICD such as pocl-opencl-icd (CPU) or a GPU vendor's driver")
        }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        guard clGetPlatformIDs(count, &platforms, nil) == CL_SUCCESS else {
            throw KVPagingError(.deviceUnavailable, "clGetPlatformIDs failed")
        }
        var fallback: (cl_device_id, String)?
        for case let platform? in platforms {
            var n: cl_uint = 0
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n) == CL_SUCCESS, n > 0 else { continue }
            var devices = [cl_device_id?](repeating: nil, count: Int(n))
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &devices, nil) == CL_SUCCESS else { continue }
            for case let device? in devices {
                var type: cl_device_type = 0
                clGetDeviceInfo(device, cl_device_info(CL_DEVICE_TYPE), MemoryLayout<cl_device_type>.size, &type, nil)
                let desc = "\(info(device, CL_DEVICE_NAME)) (\(platformName(platform)))"
                if preferGPU && (type & cl_device_type(CL_DEVICE_TYPE_GPU)) != 0 { return (device, desc) }
                if fallback == nil { fallback = (device, desc) }
            }
        }
        guard let fallback else {
            throw KVPagingError(.deviceUnavailable, "OpenCL platforms exist but expose no device")
        }
        return fallback
    }

    private static func info(_ device: cl_device_id, _ param: Int32) -> String {
        var size = 0
        guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil) == CL_SUCCESS else { return "?" }
        return string(bytes)
    }

    private static func platformName(_ platform: cl_platform_id) -> String {
        var size = 0
        guard clGetPlatformInfo(platform, cl_platform_info(CL_PLATFORM_NAME), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetPlatformInfo(platform, cl_platform_info(CL_PLATFORM_NAME), size, &bytes, nil) == CL_SUCCESS else { return "?" }
        return string(bytes)
    }

    private static func string(_ bytes: [CChar]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS, size > 0 else {
            return "(no build log)"
        }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS else {
            return "(no build log)"
        }
        return string(bytes)
    }

    private static func failure(_ status: cl_int, _ call: String) -> KVPagingError {
        KVPagingError(.deviceFailure, "\(call) failed with OpenCL status \(status)")
    }

    // MARK: Kernel source

    static let source = """
    __kernel void paged_attention(
        __global const float* q,          /* [N, Hq, D] */
        __global const float* k,          /* [numBlocks, blockSize, Hkv, D] */
        __global const float* v,
        __global const int* tables,       /* concatenated block tables */
        __global const int* tableStart,   /* first entry of each sequence's table */
        __global const int* rowSeq,       /* sequence of each query row */
        __global const int* rowVisible,   /* keys visible to each query row (causal) */
        __global float* out,              /* [N, Hq, D] */
        int hq, int hk, int d, int blockSize, float scale)
    {
        const int n = get_global_id(0);
        const int h = get_global_id(1);
        const int s = rowSeq[n];
        const int visible = rowVisible[n];
        const int kvh = h / (hq / hk);
        __global const float* qv = q + ((long)n * hq + h) * d;
        __global const int* table = tables + tableStart[s];
        float acc[MAX_D];
        for (int x = 0; x < d; ++x) acc[x] = 0.0f;
        float m = -INFINITY;
        float l = 0.0f;
        for (int p = 0; p < visible; ++p) {
            const long base = (((long)table[p / blockSize] * blockSize + p % blockSize) * hk + kvh) * d;
            float score = 0.0f;
            for (int x = 0; x < d; ++x) score = fma(qv[x], k[base + x], score);
            score *= scale;
            const float mNew = fmax(m, score);
            const float correction = exp(m - mNew);
            const float e = exp(score - mNew);
            l = l * correction + e;
            for (int x = 0; x < d; ++x) acc[x] = fma(e, v[base + x], acc[x] * correction);
            m = mNew;
        }
        __global float* o = out + ((long)n * hq + h) * d;
        const float inv = 1.0f / l;
        for (int x = 0; x < d; ++x) o[x] = acc[x] * inv;
    }
    """
}
