import CInferenceKitOpenCL
import Testing
import TensorCore
@testable import TensorCoreOpenCL

private let sharedRuntimeBackend: OpenCLBackend? = try? OpenCLBackend()

/// The `package` runtime that KVPagingOpenCL and QuantizationOpenCL build on: extra programs, raw buffers,
/// launches, partial writes and device copies. Expected values are derived by hand in each test.
@Suite("OpenCL shared runtime", .serialized, .enabled(if: sharedRuntimeBackend != nil, "no OpenCL device on this machine"))
struct OpenCLSharedRuntimeTests {
    /// y[i] = x[index[i]] * a + b: a gather through an Int32 table plus a scalar affine map.
    static let source = """
    __kernel void gather_affine(__global const float* x, __global const int* index, __global float* y, float a, float b, int n) {
        int i = get_global_id(0);
        if (i < n) y[i] = x[index[i]] * a + b;
    }
    __kernel void sum_local(__global const float* x, __global float* y, __local float* scratch, int n) {
        int i = get_local_id(0);
        scratch[i] = i < n ? x[i] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (i == 0) { float s = 0.0f; for (int j = 0; j < (int)get_local_size(0); j++) s += scratch[j]; y[0] = s; }
    }
    """

    @Test func extraProgramRunsWithRawBuffersAndScalars() throws {
        let cl = try #require(sharedRuntimeBackend)
        let program = try cl.program(source: Self.source, options: "-cl-mad-enable", kernels: ["gather_affine", "sum_local"], label: "test program")
        // The cache compares the source: a second request gives an equal key without rebuilding.
        #expect(try cl.program(source: Self.source, options: "-cl-mad-enable", kernels: ["gather_affine", "sum_local"], label: "again") .sourceHash == program.sourceHash)
        let xs: [Float] = (0..<37).map { Float($0) * 0.5 }     // x[i] = i/2
        let x = try xs.withUnsafeBytes { try cl.makeTensor(shape: [37], bytes: $0) }
        let index: [Int32] = (0..<19).map { Int32(($0 * 7) % 37) }
        let table = try cl.makeBuffer(index)
        #expect(try cl.read(table, as: Int32.self) == index)
        let y = try cl.makeTensor(shape: [19])
        try cl.enqueue(program, kernel: "gather_affine", arguments: [.tensor(x), .buffer(table), .tensor(y), .float(3), .float(-1), .int32(19)], global: [32], local: [16])
        let got = try cl.download(y).scalars
        // y[i] = (index[i] / 2) * 3 - 1, exact in Float32 (halves times 3 stay representable).
        #expect(got == index.map { Float($0) / 2 * 3 - 1 })

        // Local memory: 16 work-items sum x[0..<16] = (0 + … + 15) / 2 = 60.
        let s = try cl.makeTensor(shape: [1])
        try cl.enqueue(program, kernel: "sum_local", arguments: [.tensor(x), .tensor(s), .local(bytes: 16 * 4), .int32(16)], global: [16], local: [16])
        #expect(try cl.download(s).scalars == [60])
    }

    @Test func partialWritesCopiesAndReshapes() throws {
        let cl = try #require(sharedRuntimeBackend)
        let t = try cl.makeTensor(shape: [4, 5])
        #expect(try cl.download(t).scalars == [Float](repeating: 0, count: 20))   // zero-filled
        let row: [Float] = [1, 2, 3, 4, 5]
        try row.withUnsafeBufferPointer { try cl.write($0, to: t, elementOffset: 10) }   // row 2
        try cl.copyElements(from: t, at: 10, to: t, at: 0, count: 5)                     // row 2 → row 0
        let v = try cl.reshaped(t, to: [20])
        var expected = [Float](repeating: 0, count: 20)
        expected.replaceSubrange(0..<5, with: row)
        expected.replaceSubrange(10..<15, with: row)
        #expect(try cl.download(v).scalars == expected)
        #expect(try cl.download(t).shape == [4, 5])

        let error = #expect(throws: TensorError.self) { try row.withUnsafeBufferPointer { try cl.write($0, to: t, elementOffset: 17) } }
        #expect(error?.code == .invalidArgument)
        #expect(throws: TensorError.self) { try cl.copyElements(from: t, at: 0, to: t, at: 3, count: 5) }   // overlap
        #expect(throws: TensorError.self) { _ = try cl.reshaped(t, to: [3, 7]) }
    }

    @Test func buildFailureCarriesTheLogAndLabel() throws {
        let cl = try #require(sharedRuntimeBackend)
        let error = #expect(throws: TensorError.self) {
            _ = try cl.program(source: "__kernel void broken(__global float* x) { x[0] = undeclared_name; }", kernels: ["broken"], label: "broken test program")
        }
        #expect(error?.code == .deviceFailure)
        #expect(error?.message.contains("broken test program") == true)
        #expect(error?.message.contains("build log") == true)
        #expect(error?.underlying?.contains("CL_BUILD_PROGRAM_FAILURE") == true)

        let missing = #expect(throws: TensorError.self) {
            _ = try cl.program(source: Self.source, kernels: ["no_such_kernel"], label: "missing kernel")
        }
        #expect(missing?.underlying?.contains("CL_INVALID_KERNEL_NAME") == true)

        let program = try cl.program(source: Self.source, kernels: ["gather_affine"], label: "test program")
        let unknown = #expect(throws: TensorError.self) {
            try cl.enqueue(program, kernel: "sum_local", arguments: [], global: [1])
        }
        #expect(unknown?.code == .invalidArgument)
        // A launch with a missing argument fails with the OpenCL status name.
        let launch = #expect(throws: TensorError.self) {
            try cl.enqueue(program, kernel: "gather_affine", arguments: [.int32(1)], global: [1])
        }
        #expect(launch?.underlying?.hasPrefix("clSetKernelArg") == true || launch?.underlying?.hasPrefix("clEnqueueNDRangeKernel") == true)
    }

    /// The escape hatch hands out the backend's own queue: it was created with profiling enabled, on
    /// the backend's device.
    @Test func withDeviceQueueGivesTheSharedQueue() throws {
        let cl = try #require(sharedRuntimeBackend)
        let (properties, sameDevice) = try cl.withDeviceQueue { _, queue, device in
            var p: cl_command_queue_properties = 0
            var d: cl_device_id?
            try OpenCLStatus.check(clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_PROPERTIES), MemoryLayout<cl_command_queue_properties>.size, &p, nil), "clGetCommandQueueInfo")
            try OpenCLStatus.check(clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_DEVICE), MemoryLayout<cl_device_id?>.size, &d, nil), "clGetCommandQueueInfo")
            return (p, d == device)
        }
        #expect(properties & cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) != 0)
        #expect(sameDevice)
    }
}
