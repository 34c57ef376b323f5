import Foundation
import CInferenceKitOpenCL
import Synchronization
import TensorCore

/// A kernel argument.
enum KernelArgument {
    case buffer(cl_mem)
    case int(Int32)
    case long(Int64)
    case float(Float)
    /// `__local` memory of this many bytes (`clSetKernelArg` with a null value).
    case local(Int)
}

/// Identifies an extra program in a device's cache: its source (compared in full, so two sources never
/// share an entry), a 64-bit FNV-1a hash of it (for messages) and the build options.
struct ProgramKey: Hashable, Sendable {
    let source: String
    let sourceHash: UInt64
    let options: String
}

/// A built extra program and its kernels, owned by a ``DeviceSession``.
struct BuiltProgram {
    let program: cl_program
    let kernels: [String: cl_kernel]
}

/// The OpenCL objects of one device: context, in-order profiling queue, the built program and its kernels.
///
/// A `~Copyable` value owned by exactly one `Mutex` (in ``OpenCLDeviceRuntime``): every use — setting
/// kernel arguments, enqueueing, reading back — happens inside that lock, which is what OpenCL requires
/// (`clSetKernelArg` on a shared `cl_kernel` is not thread-safe). Its deinit releases everything.
struct DeviceSession: ~Copyable {
    let device: cl_device_id
    let context: cl_context
    let queue: cl_command_queue
    let program: cl_program
    let kernels: [String: cl_kernel]
    /// Whether the tiled GPU matmul can run with its required work-group size on this device.
    let tiledMatmulUsable: Bool
    /// `CL_DEVICE_MAX_WORK_GROUP_SIZE`; launches shrink their local sizes to fit it.
    let maxWorkGroupSize: Int
    /// Programs built from other modules' embedded sources, by source and options (see ``OpenCLProgram``).
    var programs: [ProgramKey: BuiltProgram] = [:]

    init(device: cl_device_id, options: String, tileEdge: Int, maxWorkGroupSize: Int) throws {
        var err: cl_int = 0
        var dev: cl_device_id? = device
        guard let context = clCreateContext(nil, 1, &dev, nil, nil, &err), err == CL_SUCCESS else {
            throw OpenCLStatus.error(err, "clCreateContext", "creating a context")
        }
        guard let queue = clCreateCommandQueue(context, device, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &err), err == CL_SUCCESS else {
            clReleaseContext(context)
            throw OpenCLStatus.error(err, "clCreateCommandQueue", "creating the command queue")
        }
        let program: cl_program
        do {
            program = try Self.build(context: context, device: device, options: options)
        } catch {
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw error
        }
        var kernels: [String: cl_kernel] = [:]
        for name in KernelSource.kernelNames {
            guard let k = clCreateKernel(program, name, &err), err == CL_SUCCESS else {
                for k in kernels.values { clReleaseKernel(k) }
                clReleaseProgram(program)
                clReleaseCommandQueue(queue)
                clReleaseContext(context)
                throw OpenCLStatus.error(err, "clCreateKernel", "creating kernel \(name)")
            }
            kernels[name] = k
        }
        // The tiled kernel declares reqd_work_group_size(tileEdge, tileEdge, 1); a device may still refuse it
        // (registers, local memory), in which case the vector kernel is used instead.
        var wg = 0
        let tiled = kernels["matmul_tiled"]
        let wgStatus = clGetKernelWorkGroupInfo(tiled, device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE), MemoryLayout<Int>.size, &wg, nil)
        self.tiledMatmulUsable = wgStatus == CL_SUCCESS && wg >= tileEdge * tileEdge
        self.maxWorkGroupSize = max(1, maxWorkGroupSize)
        self.device = device
        self.context = context
        self.queue = queue
        self.program = program
        self.kernels = kernels
    }

    private static func build(context: cl_context, device: cl_device_id, options: String) throws -> cl_program {
        try build(context: context, device: device, source: KernelSource.source, options: options, label: "TensorCoreOpenCL kernels")
    }

    static func build(context: cl_context, device: cl_device_id, source: String, options: String, label: String) throws -> cl_program {
        var err: cl_int = 0
        let program: cl_program? = source.withCString { src in
            var ptr: UnsafePointer<CChar>? = src
            var length = strlen(src)
            return clCreateProgramWithSource(context, 1, &ptr, &length, &err)
        }
        guard let program, err == CL_SUCCESS else {
            throw OpenCLStatus.error(err, "clCreateProgramWithSource", "loading the source of \(label)")
        }
        var dev: cl_device_id? = device
        let status = clBuildProgram(program, 1, &dev, options, nil, nil)
        if status != CL_SUCCESS {
            let log = buildLog(program, device)
            clReleaseProgram(program)
            let base = OpenCLStatus.error(status, "clBuildProgram")
            throw TensorError(.deviceFailure, "building \(label) failed (options: \(options.isEmpty ? "none" : options)); build log:\n\(log)", underlying: base.underlying)
        }
        return program
    }

    private static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS, size > 0 else {
            return "(no build log available)"
        }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS else {
            return "(no build log available)"
        }
        let log = cString(bytes)
        return log.isEmpty ? "(empty build log)" : log
    }

    deinit {
        for built in programs.values {
            for k in built.kernels.values { clReleaseKernel(k) }
            clReleaseProgram(built.program)
        }
        for k in kernels.values { clReleaseKernel(k) }
        clReleaseProgram(program)
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    // MARK: Buffers

    /// A new device buffer of `count` floats (at least one, so empty tensors still have a handle).
    func makeBuffer(count: Int) throws -> cl_mem {
        try makeBuffer(bytes: count * MemoryLayout<Float>.stride)
    }

    /// A new device buffer of `bytes` bytes (at least four, so empty buffers still have a handle).
    func makeBuffer(bytes requested: Int) throws -> cl_mem {
        var err: cl_int = 0
        let bytes = max(requested, 4)
        guard let mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &err), err == CL_SUCCESS else {
            throw OpenCLStatus.error(err, "clCreateBuffer", "allocating \(bytes) bytes")
        }
        return mem
    }

    /// Blocking write of `values` into `mem`.
    func write(_ values: UnsafeBufferPointer<Float>, to mem: cl_mem) throws {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try OpenCLStatus.check(
            clEnqueueWriteBuffer(queue, mem, cl_bool(CL_TRUE), 0, values.count * MemoryLayout<Float>.stride, base, 0, nil, nil),
            "clEnqueueWriteBuffer", "uploading \(values.count) floats")
    }

    /// Blocking read of `mem` into `values` (waits for every queued kernel first: the queue is in order).
    func read(_ mem: cl_mem, into values: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try OpenCLStatus.check(
            clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), 0, values.count * MemoryLayout<Float>.stride, base, 0, nil, nil),
            "clEnqueueReadBuffer", "downloading \(values.count) floats")
    }

    /// Blocking write of raw bytes into `mem` at `offset`.
    func write(bytes: UnsafeRawBufferPointer, to mem: cl_mem, offset: Int) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try OpenCLStatus.check(
            clEnqueueWriteBuffer(queue, mem, cl_bool(CL_TRUE), offset, bytes.count, base, 0, nil, nil),
            "clEnqueueWriteBuffer", "uploading \(bytes.count) bytes at offset \(offset)")
    }

    /// Blocking read of raw bytes of `mem` from `offset`.
    func read(_ mem: cl_mem, offset: Int, into bytes: UnsafeMutableRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try OpenCLStatus.check(
            clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), offset, bytes.count, base, 0, nil, nil),
            "clEnqueueReadBuffer", "downloading \(bytes.count) bytes at offset \(offset)")
    }

    /// Enqueues a fill of `bytes` bytes of `mem` from `offset` with zeros.
    func zero(_ mem: cl_mem, offset: Int, bytes: Int) throws {
        guard bytes > 0 else { return }
        var zero: UInt32 = 0
        try OpenCLStatus.check(
            clEnqueueFillBuffer(queue, mem, &zero, MemoryLayout<UInt32>.size, offset, bytes, 0, nil, nil),
            "clEnqueueFillBuffer", "zeroing \(bytes) bytes")
    }

    /// Enqueues a device-side copy of `bytes` bytes.
    func copy(from source: cl_mem, offset sourceOffset: Int, to destination: cl_mem, offset destinationOffset: Int, bytes: Int) throws {
        guard bytes > 0 else { return }
        try OpenCLStatus.check(
            clEnqueueCopyBuffer(queue, source, destination, sourceOffset, destinationOffset, bytes, 0, nil, nil),
            "clEnqueueCopyBuffer", "copying \(bytes) bytes")
    }

    /// The kernels of the extra program `key`, building it on first use (`label` names it in errors).
    mutating func program(_ key: ProgramKey, kernelNames: [String], label: String) throws -> BuiltProgram {
        // A cached program gains any kernels a later request names; a new one is cached once it builds.
        let cached = programs[key]
        if let cached, kernelNames.allSatisfy({ cached.kernels[$0] != nil }) { return cached }
        let program: cl_program
        if let cached {
            program = cached.program
        } else {
            program = try Self.build(context: context, device: device, source: key.source, options: key.options,
                                     label: "\(label) (source hash \(String(key.sourceHash, radix: 16)))")
        }
        var kernels = cached?.kernels ?? [:]
        var created: [cl_kernel] = []
        var err: cl_int = 0
        for name in kernelNames where kernels[name] == nil {
            guard let k = clCreateKernel(program, name, &err), err == CL_SUCCESS else {
                for k in created { clReleaseKernel(k) }
                if cached == nil { clReleaseProgram(program) }
                throw OpenCLStatus.error(err, "clCreateKernel", "creating kernel \(name) of \(label)")
            }
            kernels[name] = k
            created.append(k)
        }
        let built = BuiltProgram(program: program, kernels: kernels)
        programs[key] = built
        return built
    }

    /// Enqueues a marker and returns its event (the caller releases it).
    func marker() throws -> cl_event {
        var event: cl_event?
        try OpenCLStatus.check(clEnqueueMarkerWithWaitList(queue, 0, nil, &event), "clEnqueueMarkerWithWaitList", "enqueueing a timing marker")
        guard let event else { throw TensorError(.deviceFailure, "clEnqueueMarkerWithWaitList returned no event") }
        return event
    }

    /// `CL_PROFILING_COMMAND_END` of a completed event, in device nanoseconds.
    static func endTime(_ event: cl_event) throws -> UInt64 {
        var t: cl_ulong = 0
        try OpenCLStatus.check(
            clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), MemoryLayout<cl_ulong>.size, &t, nil),
            "clGetEventProfilingInfo", "reading a profiling timestamp")
        return t
    }

    func finish() throws {
        try OpenCLStatus.check(clFinish(queue), "clFinish", "waiting for queued kernels")
    }

    // MARK: Launch

    /// Kernels compiled with `reqd_work_group_size`, whose local size must not change.
    private func kernelHasRequiredSize(_ name: String) -> Bool { name == "matmul_tiled" }

    /// Enqueues a 1-D kernel over `count` work-items rounded up to a multiple of `local` (the kernel
    /// ignores the excess). A fixed local size means PoCL specialises each kernel once.
    func launch1D(_ name: String, _ arguments: [KernelArgument], count: Int, local: Int = 64) throws {
        let global = (count + local - 1) / local * local
        try launch(name, arguments, global: [global], local: [local])
    }

    /// Sets the arguments of kernel `name` and enqueues it over `global` (with optional `local`) work-items.
    func launch(_ name: String, _ arguments: [KernelArgument], global: [Int], local: [Int]? = nil) throws {
        guard let kernel = kernels[name] else {
            throw TensorError(.deviceFailure, "internal: kernel \(name) was not built")
        }
        try launch(kernel, name, arguments, global: global, local: local, fixedLocal: kernelHasRequiredSize(name))
    }

    /// Sets the arguments of `kernel` and enqueues it; `fixedLocal` keeps `local` even past the device limit
    /// (kernels compiled with `reqd_work_group_size`).
    func launch(_ kernel: cl_kernel, _ name: String, _ arguments: [KernelArgument], global: [Int], local: [Int]?, fixedLocal: Bool) throws {
        if global.contains(0) { return }
        for (index, argument) in arguments.enumerated() {
            let status: cl_int
            switch argument {
            case .buffer(let mem):
                var m: cl_mem? = mem
                status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<cl_mem?>.size, &m)
            case .int(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<Int32>.size, &x)
            case .long(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<Int64>.size, &x)
            case .float(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<Float>.size, &x)
            case .local(let bytes):
                status = clSetKernelArg(kernel, cl_uint(index), max(bytes, 1), nil)
            }
            try OpenCLStatus.check(status, "clSetKernelArg", "setting argument \(index) of kernel \(name)")
        }
        // Fixed local sizes are powers of two and globals are multiples of them, so halving the largest
        // dimension until the group fits keeps the global size a multiple (tiny devices only).
        var local = local
        if var l = local, !fixedLocal {
            while l.reduce(1, *) > maxWorkGroupSize, let i = l.indices.max(by: { l[$0] < l[$1] }), l[i] > 1 { l[i] /= 2 }
            local = l
        }
        let status: cl_int
        if let local {
            status = clEnqueueNDRangeKernel(queue, kernel, cl_uint(global.count), nil, global, local, 0, nil, nil)
        } else {
            status = clEnqueueNDRangeKernel(queue, kernel, cl_uint(global.count), nil, global, nil, 0, nil, nil)
        }
        try OpenCLStatus.check(status, "clEnqueueNDRangeKernel", "running kernel \(name) over \(global)\(local.map { " in groups of \($0)" } ?? "")")
    }
}

/// One device's session plus what the backend needs to know about it; shared by every backend
/// instance for that device so the program is built once per process and device.
///
/// `Sendable` without `@unchecked`: its stored properties are immutable `Sendable` values and a
/// `Mutex` that owns the OpenCL session.
final class OpenCLDeviceRuntime: Sendable {
    let info: OpenCLDeviceInfo
    /// Work-group edge of the tiled matmul (16 → 16×16 work-items, 8 on devices limited below 256).
    let tileEdge: Int
    let buildOptions: String
    let tiledMatmulUsable: Bool
    let session: Mutex<DeviceSession>

    private init(info: OpenCLDeviceInfo) throws {
        guard let device = info.deviceID else {
            throw TensorError(.backendUnavailable, "the OpenCL device handle of \(info.name) is invalid")
        }
        self.info = info
        self.tileEdge = info.maxWorkGroupSize >= 256 ? 16 : 8
        self.buildOptions = "-cl-mad-enable -D TILE_RTS=\(tileEdge) -D TILE_WPT=4"
        let session = try DeviceSession(device: device, options: buildOptions, tileEdge: tileEdge, maxWorkGroupSize: info.maxWorkGroupSize)
        self.tiledMatmulUsable = session.tiledMatmulUsable
        self.session = Mutex(session)
    }

    /// Process-wide cache: one runtime (context, queue, built program) per device.
    private static let cache = Mutex<[UInt: OpenCLDeviceRuntime]>([:])

    /// The runtime of `info`'s device, building the program on first use.
    static func shared(for info: OpenCLDeviceInfo) throws -> OpenCLDeviceRuntime {
        try cache.withLock { cache in
            if let existing = cache[info.handle] { return existing }
            let runtime = try OpenCLDeviceRuntime(info: info)
            cache[info.handle] = runtime
            return runtime
        }
    }
}
