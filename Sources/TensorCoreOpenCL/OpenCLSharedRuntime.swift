import CInferenceKitOpenCL
import TensorCore

// The runtime that modules built on TensorCoreOpenCL (KVPagingOpenCL, QuantizationOpenCL) share, at
// `package` access: one context, queue and program cache per device, buffers from raw bytes, kernel
// launches with status-named errors. Those modules import TensorCoreOpenCL only, never the C shim.

/// An untyped device buffer: quantized weight blocks, `Int32` block tables, slot mappings.
///
/// `@unchecked Sendable` for the same reasons as ``OpenCLTensor``: immutable stored properties,
/// `clReleaseMemObject` is thread-safe, and the contents are only touched by commands enqueued under the
/// owning device's session lock on an in-order queue.
package final class OpenCLBuffer: @unchecked Sendable, CustomStringConvertible {
    /// Size in bytes.
    package let byteCount: Int
    let buffer: cl_mem
    let runtime: OpenCLDeviceRuntime

    init(byteCount: Int, buffer: cl_mem, runtime: OpenCLDeviceRuntime) {
        self.byteCount = byteCount
        self.buffer = buffer
        self.runtime = runtime
    }

    deinit { clReleaseMemObject(buffer) }

    package var description: String { "OpenCLBuffer(\(byteCount) bytes, device: \(runtime.info.name))" }
}

/// A program built from another module's embedded OpenCL C source, cached per device, source and options.
///
/// The value is a key: the `cl_program` and its kernels live in the device session (behind its lock) and
/// are built once per process, device, source and options however many values name them.
package struct OpenCLProgram: Sendable, Hashable, CustomStringConvertible {
    /// Names the program in errors, e.g. `"KVPagingOpenCL paged attention"`.
    package let label: String
    /// The kernels created after the build; ``OpenCLBackend/enqueue(_:kernel:arguments:global:local:)`` takes one of these.
    package let kernelNames: [String]
    /// 64-bit FNV-1a hash of the source (messages and logs; the cache compares the full source).
    package var sourceHash: UInt64 { key.sourceHash }
    package var options: String { key.options }
    let key: ProgramKey
    let deviceHandle: UInt

    package var description: String {
        "OpenCLProgram(\(label), source hash \(String(key.sourceHash, radix: 16)), options: \"\(key.options)\")"
    }

    /// FNV-1a over the UTF-8 bytes of `text`.
    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}

/// One argument of a kernel launched through ``OpenCLBackend/enqueue(_:kernel:arguments:global:local:)``.
package enum OpenCLKernelArgument: Sendable {
    case tensor(OpenCLTensor)
    case buffer(OpenCLBuffer)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    /// `__local` memory of this many bytes.
    case local(bytes: Int)
}

/// Carries a non-`Sendable` value (a caller's pointer or closure, or a result made from session handles)
/// across the session lock's closure boundary.
///
/// `@unchecked Sendable`: `Mutex.withLock` runs its closure synchronously on the calling thread, so the
/// value never crosses a task or thread; it is created and consumed within one call of this module.
struct LockScoped<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension OpenCLBackend {
    // MARK: Programs and launches

    /// Builds (once per device, source and options) the program of `source` and creates `kernels`.
    ///
    /// - Throws: ``TensorError/Code/deviceFailure`` with `label`, the options and the compiler's build log
    ///   when the source does not compile, or naming the kernel that does not exist.
    package func program(source: String, options: String = "", kernels: [String], label: String) throws -> OpenCLProgram {
        let key = ProgramKey(source: source, sourceHash: OpenCLProgram.fnv1a(source), options: options)
        _ = try runtime.session.withLock { s in try s.program(key, kernelNames: kernels, label: label) }
        return OpenCLProgram(label: label, kernelNames: kernels, key: key, deviceHandle: device.handle)
    }

    /// Sets the arguments of `kernel` of `program` and enqueues it over `global` work-items in groups of
    /// `local` (shrunk to the device's work-group limit; `nil` lets the driver choose). Returns once queued.
    ///
    /// - Throws: ``TensorError/Code/deviceFailure`` naming the OpenCL status, the call and the kernel;
    ///   ``TensorError/Code/invalidArgument`` when a tensor or buffer lives on another device or the
    ///   program was built for another device.
    package func enqueue(_ program: OpenCLProgram, kernel: String, arguments: [OpenCLKernelArgument], global: [Int], local: [Int]? = nil) throws {
        guard program.deviceHandle == device.handle else {
            throw TensorError(.invalidArgument, "\(program.label) was built for another OpenCL device than \(device.name); build it with this backend")
        }
        guard program.kernelNames.contains(kernel) else {
            throw TensorError(.invalidArgument, "\(program.label) has no kernel \(kernel); it was built with \(program.kernelNames)")
        }
        for (index, argument) in arguments.enumerated() {
            switch argument {
            case .tensor(let t): try checkOwned(t, kernel, "argument \(index)")
            case .buffer(let b): try checkOwned(b, kernel, "argument \(index)")
            case .int32, .int64, .float, .local: break
            }
        }
        try runtime.session.withLock { s in
            // Built inside the lock from Sendable values: the raw handles never leave this region.
            let raw: [KernelArgument] = arguments.map { argument in
                switch argument {
                case .tensor(let t): .buffer(t.buffer)
                case .buffer(let b): .buffer(b.buffer)
                case .int32(let v): .int(v)
                case .int64(let v): .long(v)
                case .float(let v): .float(v)
                case .local(let bytes): .local(bytes)
                }
            }
            let built = try s.program(program.key, kernelNames: program.kernelNames, label: program.label)
            guard let k = built.kernels[kernel] else {
                throw TensorError(.deviceFailure, "internal: kernel \(kernel) of \(program.label) was not created")
            }
            // The tensors and buffers stay alive (they are in `arguments`) until the launch is queued;
            // OpenCL keeps the memory objects alive for queued commands after that.
            try withExtendedLifetime(arguments) {
                try s.launch(k, kernel, raw, global: global, local: local, fixedLocal: false)
            }
        }
    }

    /// Runs `body` with the device's context, command queue and device while holding the session lock —
    /// the escape hatch for OpenCL calls this module does not wrap. Do not keep the handles past `body`.
    package func withDeviceQueue<R>(_ body: (_ context: cl_context, _ queue: cl_command_queue, _ device: cl_device_id) throws -> R) throws -> R {
        try withoutActuallyEscaping(body) { escapable in
            let call = LockScoped(escapable)
            let result = runtime.session.withLock { s in LockScoped(Result { try call.value(s.context, s.queue, s.device) }) }
            return try result.value.get()
        }
    }

    // MARK: Buffers and tensors

    /// A new device tensor of `shape`, zero-filled (the fill is queued).
    package func makeTensor(shape: Shape) throws -> OpenCLTensor {
        try checkIndexable(shape.elementCount, "a tensor of shape \(shape)")
        return try runtime.session.withLock { s in
            let t = try newTensor(shape, s)
            try s.zero(t.buffer, offset: 0, bytes: shape.elementCount * MemoryLayout<Float>.stride)
            return t
        }
    }

    /// A device tensor of `shape` holding `bytes` (exactly `shape.elementCount` Float32 values, row-major).
    package func makeTensor(shape: Shape, bytes: UnsafeRawBufferPointer) throws -> OpenCLTensor {
        guard bytes.count == shape.elementCount * MemoryLayout<Float>.stride else {
            throw TensorError(.shapeMismatch, "makeTensor: \(bytes.count) bytes do not hold the \(shape.elementCount) Float32 values of shape \(shape)")
        }
        try checkIndexable(shape.elementCount, "a tensor of shape \(shape)")
        let source = LockScoped(bytes)
        return try runtime.session.withLock { s in
            let t = try newTensor(shape, s)
            try s.write(bytes: source.value, to: t.buffer, offset: 0)
            return t
        }
    }

    /// A device buffer of `byteCount` zero bytes.
    package func makeBuffer(byteCount: Int) throws -> OpenCLBuffer {
        try checkBufferBytes(byteCount)
        return try runtime.session.withLock { s in
            let b = OpenCLBuffer(byteCount: byteCount, buffer: try s.makeBuffer(bytes: byteCount), runtime: runtime)
            try s.zero(b.buffer, offset: 0, bytes: byteCount / 4 * 4)
            return b
        }
    }

    /// A device buffer holding a copy of `bytes` (blocking upload).
    package func makeBuffer(bytes: UnsafeRawBufferPointer) throws -> OpenCLBuffer {
        try checkBufferBytes(bytes.count)
        let source = LockScoped(bytes)
        return try runtime.session.withLock { s in
            let b = OpenCLBuffer(byteCount: source.value.count, buffer: try s.makeBuffer(bytes: source.value.count), runtime: runtime)
            try s.write(bytes: source.value, to: b.buffer, offset: 0)
            return b
        }
    }

    /// A device buffer holding a copy of `values` (`Int32` tables, quantized blocks, …).
    package func makeBuffer<T: BitwiseCopyable>(_ values: [T]) throws -> OpenCLBuffer {
        try values.withUnsafeBytes { try makeBuffer(bytes: $0) }
    }

    /// Blocking write of `bytes` into `buffer` at byte `offset`.
    package func write(_ bytes: UnsafeRawBufferPointer, to buffer: OpenCLBuffer, offset: Int = 0) throws {
        try checkOwned(buffer, "write", "buffer")
        try checkRange(offset, bytes.count, buffer.byteCount, "write into \(buffer)")
        let source = LockScoped(bytes)
        try runtime.session.withLock { s in try s.write(bytes: source.value, to: buffer.buffer, offset: offset) }
    }

    /// Blocking write of `values` into `tensor` starting at element `offset` (a partial upload).
    package func write(_ values: UnsafeBufferPointer<Float>, to tensor: OpenCLTensor, elementOffset offset: Int = 0) throws {
        try checkOwned(tensor, "write", "tensor")
        try checkRange(offset, values.count, tensor.elementCount, "write into \(tensor) (elements)")
        let source = LockScoped(UnsafeRawBufferPointer(values))
        try runtime.session.withLock { s in
            try s.write(bytes: source.value, to: tensor.buffer, offset: offset * MemoryLayout<Float>.stride)
        }
    }

    /// Waits for queued work and reads `buffer` back as `T` values (its byte count must be a multiple of `T`'s stride).
    package func read<T: BitwiseCopyable>(_ buffer: OpenCLBuffer, as type: T.Type = T.self) throws -> [T] {
        try checkOwned(buffer, "read", "buffer")
        let stride = MemoryLayout<T>.stride
        guard buffer.byteCount % stride == 0 else {
            throw TensorError(.invalidArgument, "read: \(buffer.byteCount) bytes are not a whole number of \(T.self) (\(stride) bytes each)")
        }
        let count = buffer.byteCount / stride
        return try runtime.session.withLock { s in
            try [T](unsafeUninitializedCapacity: count) { out, initialized in
                try s.read(buffer.buffer, offset: 0, into: UnsafeMutableRawBufferPointer(out))
                initialized = count
            }
        }
    }

    /// Queues a device-side copy of `count` elements from `source[sourceOffset…]` to `destination[destinationOffset…]`.
    package func copyElements(from source: OpenCLTensor, at sourceOffset: Int, to destination: OpenCLTensor, at destinationOffset: Int, count: Int) throws {
        try checkOwned(source, "copyElements", "source")
        try checkOwned(destination, "copyElements", "destination")
        try checkRange(sourceOffset, count, source.elementCount, "copy from \(source)")
        try checkRange(destinationOffset, count, destination.elementCount, "copy into \(destination)")
        if source === destination, sourceOffset < destinationOffset + count, destinationOffset < sourceOffset + count {
            throw TensorError(.invalidArgument, "copyElements: ranges \(sourceOffset)..<\(sourceOffset + count) and \(destinationOffset)..<\(destinationOffset + count) of one tensor overlap")
        }
        let f = MemoryLayout<Float>.stride
        try runtime.session.withLock { s in
            try s.copy(from: source.buffer, offset: sourceOffset * f, to: destination.buffer, offset: destinationOffset * f, bytes: count * f)
        }
    }

    /// The same device buffer seen with another shape of the same element count (no copy).
    package func reshaped(_ tensor: OpenCLTensor, to shape: Shape) throws -> OpenCLTensor {
        try checkOwned(tensor, "reshape", "tensor")
        guard shape.elementCount == tensor.elementCount else {
            throw TensorError(.shapeMismatch, "reshape: \(tensor.shape) has \(tensor.elementCount) elements, \(shape) has \(shape.elementCount)")
        }
        try OpenCLStatus.check(clRetainMemObject(tensor.buffer), "clRetainMemObject", "sharing a buffer for a reshape")
        return OpenCLTensor(shape: shape, buffer: tensor.buffer, runtime: runtime)
    }

    /// Whether `tensor` lives on this backend's device.
    package func owns(_ tensor: OpenCLTensor) -> Bool { tensor.runtime === runtime }

    // MARK: Checks

    func checkOwned(_ b: OpenCLBuffer, _ op: String, _ name: String) throws {
        guard b.runtime === runtime else {
            throw TensorError(.invalidArgument, "\(op): \(name) (\(b.byteCount) bytes) lives on OpenCL device \(b.runtime.info.name), not on this backend's device \(device.name)")
        }
    }

    private func checkBufferBytes(_ bytes: Int) throws {
        guard bytes >= 0, UInt64(bytes) <= device.maxAllocationBytes else {
            throw TensorError(.outOfMemory, "a buffer of \(bytes) bytes exceeds the largest single allocation \(device.name) allows (\(device.maxAllocationBytes) bytes, CL_DEVICE_MAX_MEM_ALLOC_SIZE); split the data")
        }
    }

    private func checkRange(_ offset: Int, _ count: Int, _ size: Int, _ what: String) throws {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw TensorError(.invalidArgument, "\(what): range \(offset)..<\(offset + count) is outside 0..<\(size)")
        }
    }
}
