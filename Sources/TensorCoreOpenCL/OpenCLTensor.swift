import CInferenceKitOpenCL
import TensorCore

/// A tensor resident in an OpenCL device buffer: a shape and a `cl_mem` of `Float32`, row-major.
///
/// Create one with ``OpenCLBackend/upload(_:)`` or as the result of a device-resident op, read it back
/// with ``OpenCLBackend/download(_:)``. Chaining device-resident ops avoids host transfers, which is how
/// kernels are timed on their own. The buffer is released when the last reference goes away; work already
/// queued that uses it still completes (OpenCL defers deletion until enqueued commands finish).
///
/// `@unchecked Sendable`: every stored property is immutable; `clReleaseMemObject` is thread-safe by the
/// OpenCL specification; the buffer's contents are only read or written by commands enqueued while holding
/// the owning device's session lock, on an in-order queue, so no two threads touch them unordered.
public final class OpenCLTensor: @unchecked Sendable, CustomStringConvertible {
    /// The dimensions, outermost first.
    public let shape: Shape
    let buffer: cl_mem
    /// Keeps the device's context alive while the buffer exists and identifies the owning device.
    let runtime: OpenCLDeviceRuntime

    init(shape: Shape, buffer: cl_mem, runtime: OpenCLDeviceRuntime) {
        self.shape = shape
        self.buffer = buffer
        self.runtime = runtime
    }

    deinit { clReleaseMemObject(buffer) }

    /// Number of elements.
    public var elementCount: Int { shape.elementCount }
    public var rank: Int { shape.rank }

    /// The device the buffer lives on.
    public var device: OpenCLDeviceInfo { runtime.info }

    public var description: String { "OpenCLTensor(shape: \(shape), device: \(runtime.info.name))" }
}
