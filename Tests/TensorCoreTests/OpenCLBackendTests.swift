import CInferenceKitOpenCL
import Foundation
import Testing
import TensorCore
import TensorCoreOpenCL

/// Whether this machine has any OpenCL device (PoCL counts; it is installed by `make deps` and in CI).
private let openCLDevicePresent: Bool = {
    guard let devices = try? OpenCLBackend.devices() else { return false }
    return !devices.isEmpty
}()

/// Normwise relative error: `max|x − ref| / max|ref|` (the max over elements, so one bad element fails).
private func relativeError(_ x: Tensor, _ ref: Tensor) -> Double {
    precondition(x.shape == ref.shape, "shape \(x.shape) vs reference \(ref.shape)")
    var maxDiff = 0.0, maxRef = 0.0
    for (a, b) in zip(x.scalars, ref.scalars) {
        maxDiff = max(maxDiff, abs(Double(a) - Double(b)))
        maxRef = max(maxRef, abs(Double(b)))
    }
    return maxDiff / max(maxRef, 1e-30)
}

/// A fresh seed per call so every run draws new inputs; failures print the seed to reproduce.
private func freshSeed() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

/// OpenCL backend vs ``ReferenceBackend`` (Float64 accumulation).
///
/// Error bounds, normwise relative (see `relativeError`):
/// - matmul: 2e-5 — Float32 accumulation over K ≤ 257 terms of uniform(−1, 1) values gives ~√K·2⁻²⁴ ≈ 1e-6.
/// - attention: 1e-4 — Float32 dot products, exp, and an online softmax over up to 3000 keys.
/// - softmax, rmsNorm, rope, silu, add, mul: 1e-5 — a handful of Float32 roundings per element.
@Suite("OpenCL backend", .serialized, .enabled(if: openCLDevicePresent))
struct OpenCLBackendTests {
    let reference = ReferenceBackend()
    /// The default backend (GPU if present, else the CPU device; matmul kernel by device type).
    let cl: OpenCLBackend
    /// The same device with each matmul and attention kernel forced, so every kernel is tested on PoCL.
    let vector: OpenCLBackend
    let tiled: OpenCLBackend

    init() throws {
        cl = try OpenCLBackend(configuration: .init())
        // `vector` also forces the register-blocked attention kernel and `tiled` the row-wise one.
        vector = try OpenCLBackend(configuration: .init(device: .named(cl.device.name), matmulKernel: .registerBlockedVector, attentionKernel: .registerBlockedVector))
        tiled = try OpenCLBackend(configuration: .init(device: .named(cl.device.name), matmulKernel: .tiledLocalMemory, attentionKernel: .rowwise))
    }

    // MARK: Discovery

    @Test func discoveryListsUsableDevices() throws {
        let devices = try OpenCLBackend.devices()
        #expect(!devices.isEmpty)
        for d in devices {
            #expect(!d.name.isEmpty)
            #expect(d.computeUnits > 0)
            #expect(d.globalMemoryBytes > 0)
            #expect(d.maxWorkGroupSize > 0)
        }
        // The default prefers a GPU when one exists.
        if devices.contains(where: { $0.kind == .gpu }) { #expect(cl.device.kind == .gpu) }
        #expect(cl.name == "opencl")
        #expect(cl.deviceDescription.contains(cl.device.name))
    }

    @Test func selectorsPickByTypeAndName() throws {
        let devices = try OpenCLBackend.devices()
        if let cpu = devices.first(where: { $0.kind == .cpu }) {
            #expect(try OpenCLBackend(device: .cpu).device == cpu)
        }
        let unknown = "no-such-device-\(freshSeed())"
        let error = #expect(throws: TensorError.self) { try OpenCLBackend(device: .named(unknown)) }
        #expect(error?.code == .backendUnavailable)
        #expect(error?.message.contains(devices[0].name) == true)  // it lists what exists
        #expect(OpenCLDeviceSelector.fromEnvironment([:]) == .automatic)
        #expect(OpenCLDeviceSelector.fromEnvironment(["INFERENCEKIT_OPENCL_DEVICE": "GPU"]) == .gpu)
        #expect(OpenCLDeviceSelector.fromEnvironment(["INFERENCEKIT_OPENCL_DEVICE": "cpu"]) == .cpu)
        #expect(OpenCLDeviceSelector.fromEnvironment(["INFERENCEKIT_OPENCL_DEVICE": "pthread"]) == .named("pthread"))
        let registry = BackendRegistry([OpenCLBackend.provider])
        #expect(try registry.backend(named: "opencl").name == "opencl")
    }

    // MARK: Status names and errors

    @Test func statusNamesMatchTheHeaderConstants() {
        // Oracle: the values of the macros in <CL/cl.h>, independent of the name table.
        let pairs: [(Int32, String)] = [
            (CL_SUCCESS, "CL_SUCCESS"), (CL_DEVICE_NOT_FOUND, "CL_DEVICE_NOT_FOUND"),
            (CL_MEM_OBJECT_ALLOCATION_FAILURE, "CL_MEM_OBJECT_ALLOCATION_FAILURE"),
            (CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES"), (CL_OUT_OF_HOST_MEMORY, "CL_OUT_OF_HOST_MEMORY"),
            (CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE"), (CL_MAP_FAILURE, "CL_MAP_FAILURE"),
            (CL_KERNEL_ARG_INFO_NOT_AVAILABLE, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"),
            (CL_INVALID_VALUE, "CL_INVALID_VALUE"), (CL_INVALID_PLATFORM, "CL_INVALID_PLATFORM"),
            (CL_INVALID_CONTEXT, "CL_INVALID_CONTEXT"), (CL_INVALID_MEM_OBJECT, "CL_INVALID_MEM_OBJECT"),
            (CL_INVALID_BUILD_OPTIONS, "CL_INVALID_BUILD_OPTIONS"), (CL_INVALID_KERNEL_NAME, "CL_INVALID_KERNEL_NAME"),
            (CL_INVALID_KERNEL_ARGS, "CL_INVALID_KERNEL_ARGS"), (CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE"),
            (CL_INVALID_GLOBAL_WORK_SIZE, "CL_INVALID_GLOBAL_WORK_SIZE"), (CL_INVALID_BUFFER_SIZE, "CL_INVALID_BUFFER_SIZE"),
            (CL_INVALID_DEVICE_PARTITION_COUNT, "CL_INVALID_DEVICE_PARTITION_COUNT"),
        ]
        for (status, name) in pairs { #expect(OpenCLStatus.name(status) == name) }
        #expect(OpenCLStatus.name(-1001) == "CL_PLATFORM_NOT_FOUND_KHR")
        #expect(OpenCLStatus.name(-4242) == "CL_STATUS(-4242)")
    }

    @Test func failedCallsCarryCallAndStatusName() {
        let e = OpenCLStatus.error(CL_INVALID_KERNEL_ARGS, "clEnqueueNDRangeKernel")
        #expect(e.code == .deviceFailure)
        #expect(e.underlying == "clEnqueueNDRangeKernel: CL_INVALID_KERNEL_ARGS")
        #expect(OpenCLStatus.error(CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer").code == .outOfMemory)
        // No ICD installed: the loader answers CL_PLATFORM_NOT_FOUND_KHR (-1001); that is "unavailable, install X".
        let missing = OpenCLStatus.discoveryError(-1001, "clGetPlatformIDs")
        #expect(missing.code == .backendUnavailable)
        #expect(missing.message.contains("pocl-opencl-icd"))
        #expect(missing.underlying == "clGetPlatformIDs: CL_PLATFORM_NOT_FOUND_KHR")
    }

    // MARK: Matmul

    struct MatmulCase: Sendable, CustomTestStringConvertible {
        let m: Int, n: Int, k: Int
        /// 0: 2-D; > 0: batched a and b; < 0: batched a with a shared 2-D b.
        let batch: Int
        var testDescription: String { "\(m)x\(n)x\(k) batch \(batch)" }
    }

    static let matmulCases: [MatmulCase] = [
        .init(m: 1, n: 1, k: 1, batch: 0), .init(m: 3, n: 17, k: 63, batch: 0), .init(m: 17, n: 3, k: 129, batch: 0),
        .init(m: 63, n: 129, k: 17, batch: 0), .init(m: 129, n: 63, k: 257, batch: 0), .init(m: 1, n: 257, k: 129, batch: 0),
        .init(m: 64, n: 64, k: 32, batch: 0), .init(m: 17, n: 33, k: 63, batch: 3), .init(m: 16, n: 48, k: 17, batch: 2),
        .init(m: 63, n: 17, k: 3, batch: -3), .init(m: 8, n: 32, k: 65, batch: -2),
        // Few-row kernels: k past one 128-row chunk and not a multiple of 16; n a multiple of 16 beyond 256 columns.
        .init(m: 1, n: 272, k: 300, batch: 0), .init(m: 3, n: 33, k: 257, batch: 2), .init(m: 2, n: 48, k: 129, batch: -3),
    ]

    @Test(arguments: matmulCases)
    func matmulMatchesReferenceWithBothKernels(_ c: MatmulCase) throws {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let seed = freshSeed()
            let batch = abs(c.batch)
            let aShape: Shape = c.batch == 0 ? (ta ? [c.k, c.m] : [c.m, c.k]) : (ta ? [batch, c.k, c.m] : [batch, c.m, c.k])
            let bShape: Shape = c.batch > 0 ? (tb ? [batch, c.n, c.k] : [batch, c.k, c.n]) : (tb ? [c.n, c.k] : [c.k, c.n])
            let a = Tensor.random(shape: aShape, seed: seed), b = Tensor.random(shape: bShape, seed: seed &+ 1)
            let expected = try reference.matmul(a, b, transposeA: ta, transposeB: tb)
            for backend in [vector, tiled] {
                let g = try MatmulGeometry(aShape, bShape, transposeA: ta, transposeB: tb)
                let got = try backend.matmul(a, b, transposeA: ta, transposeB: tb)
                let err = relativeError(got, expected)
                #expect(err < 2e-5, "\(backend.matmulKernelVariant(for: g)) ta=\(ta) tb=\(tb) seed=\(seed): error \(err)")
            }
        }
    }

    @Test func matmulVariantFollowsDeviceType() throws {
        let g = try MatmulGeometry([64, 64], [64, 64], transposeA: false, transposeB: false)
        #expect(vector.matmulVariant(for: g) == .registerBlockedVector)
        // Decode shapes take the few-row kernels; the tests above cover them through the same shapes.
        let decodeT = try MatmulGeometry([1, 300], [272, 300], transposeA: false, transposeB: true)
        let decodeN = try MatmulGeometry([1, 300], [300, 272], transposeA: false, transposeB: false)
        #expect(vector.matmulKernelVariant(for: decodeT).contains("few-row (b [N, K]"))
        #expect(vector.matmulKernelVariant(for: decodeN).contains("few-row (b [K, N]"))
        #expect(vector.matmulKernelVariant(for: g).hasPrefix("register-blocked-vector"))
        #expect(tiled.matmulKernelVariant(for: g).hasPrefix("tiled-local-memory"))
        switch cl.device.kind {
        case .cpu: #expect(cl.matmulVariant(for: g) == .registerBlockedVector)  // the tiled kernel is ~1% of BLAS on CPUs
        case .gpu: #expect(cl.matmulVariant(for: g) == .tiledLocalMemory)
        case .accelerator, .other: break
        }
        #expect(vector.attentionVariant == .registerBlockedVector)
        #expect(tiled.attentionVariant == .rowwise)
        #expect(cl.attentionVariant == (cl.device.kind == .cpu ? .registerBlockedVector : .rowwise))
    }

    // MARK: Attention

    struct AttentionCase: Sendable, CustomTestStringConvertible {
        let b: Int, hq: Int, hkv: Int, tq: Int, tk: Int, d: Int
        var testDescription: String { "B\(b) Hq\(hq) Hkv\(hkv) Tq\(tq) Tk\(tk) D\(d)" }
    }

    static let attentionCases: [AttentionCase] = [
        .init(b: 1, hq: 1, hkv: 1, tq: 1, tk: 1, d: 1),
        .init(b: 2, hq: 4, hkv: 4, tq: 17, tk: 17, d: 3),  // GQA ratio 1
        .init(b: 1, hq: 8, hkv: 2, tq: 63, tk: 63, d: 17),  // ratio 4
        .init(b: 2, hq: 8, hkv: 1, tq: 3, tk: 129, d: 16),  // ratio 8, Tq < Tk (prefill continuing a cache)
        .init(b: 1, hq: 4, hkv: 1, tq: 33, tk: 257, d: 63),
        .init(b: 1, hq: 4, hkv: 4, tq: 129, tk: 129, d: 32),  // many row blocks, D a multiple of 16
        .init(b: 1, hq: 8, hkv: 2, tq: 1, tk: 3000, d: 64),  // decode against thousands of keys (row-wise: 11 key ranges)
        .init(b: 1, hq: 2, hkv: 1, tq: 5, tk: 600, d: 8),  // row-wise: 2 key ranges, causal rows ending mid-range
        .init(b: 1, hq: 1, hkv: 1, tq: 600, tk: 600, d: 5),  // row-wise: 2 key ranges; causal rows < 300 leave the second empty
    ]

    @Test(arguments: attentionCases)
    func attentionMatchesReference(_ c: AttentionCase) throws {
        for causal in [false, true] {
            let seed = freshSeed()
            let q = Tensor.random(shape: [c.b, c.hq, c.tq, c.d], seed: seed)
            let k = Tensor.random(shape: [c.b, c.hkv, c.tk, c.d], seed: seed &+ 1)
            let v = Tensor.random(shape: [c.b, c.hkv, c.tk, c.d], seed: seed &+ 2)
            // A scale well above 1/√D sharpens the softmax so masking and the running max matter.
            let scale = 2 / Float(c.d).squareRoot()
            let expected = try reference.attention(query: q, key: k, value: v, causal: causal, scale: scale)
            for backend in [vector, tiled] {
                let got = try backend.attention(query: q, key: k, value: v, causal: causal, scale: scale)
                let err = relativeError(got, expected)
                #expect(err < 1e-4, "\(backend.attentionVariant) causal=\(causal) seed=\(seed): error \(err)")
            }
        }
    }

    @Test func causalDecodeSeesEveryKey() throws {
        // With Tq = 1 the end-aligned mask hides nothing, so causal and non-causal agree exactly in meaning.
        let seed = freshSeed()
        let q = Tensor.random(shape: [1, 4, 1, 8], seed: seed)
        let k = Tensor.random(shape: [1, 2, 100, 8], seed: seed &+ 1)
        let v = Tensor.random(shape: [1, 2, 100, 8], seed: seed &+ 2)
        for backend in [vector, tiled] {
            let a = try backend.attention(query: q, key: k, value: v, causal: true, scale: 0.5)
            let b = try backend.attention(query: q, key: k, value: v, causal: false, scale: 0.5)
            #expect(relativeError(a, b) < 1e-6)
        }
    }

    // MARK: Elementwise

    @Test(arguments: [[1], [3, 17], [2, 63, 129], [1, 257]])
    func rowOpsMatchReference(_ dims: [Int]) throws {
        let seed = freshSeed()
        let x = Tensor.random(shape: Shape(dims), seed: seed, distribution: .normal(mean: 0, standardDeviation: 3))
        let w = Tensor.random(shape: [dims.last!], seed: seed &+ 1)
        #expect(relativeError(try cl.softmax(x), try reference.softmax(x)) < 1e-5, "softmax seed=\(seed)")
        #expect(relativeError(try cl.rmsNorm(x, weight: w, epsilon: 1e-5), try reference.rmsNorm(x, weight: w, epsilon: 1e-5)) < 1e-5, "rmsNorm seed=\(seed)")
        #expect(relativeError(try cl.silu(x), try reference.silu(x)) < 1e-5, "silu seed=\(seed)")
        for suffix in 0...dims.count {
            let b = Tensor.random(shape: Shape(Array(dims.suffix(suffix))), seed: seed &+ 2)
            #expect(relativeError(try cl.add(x, b), try reference.add(x, b)) < 1e-6, "add suffix \(suffix) seed=\(seed)")
            #expect(relativeError(try cl.mul(x, b), try reference.mul(x, b)) < 1e-6, "mul suffix \(suffix) seed=\(seed)")
        }
    }

    @Test func softmaxOfMaskedRows() throws {
        // Hand-derived: an all −inf row has no mass (zeros, as the reference defines); [0, −inf] → [1, 0].
        let x = try Tensor(shape: [2, 2], scalars: [-.infinity, -.infinity, 0, -.infinity])
        #expect(try cl.softmax(x).scalars == [0, 0, 1, 0])
    }

    @Test(arguments: RotaryStyle.allCases)
    func ropeMatchesReference(_ style: RotaryStyle) throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let (b, h, t, d) = (2, 3, 17, 16)
        let x = Tensor.random(shape: [b, h, t, d], seed: seed)
        let shared = (0..<t).map { _ in Int(rng.next() % 5000) }
        let perSequence = (0..<(b * t)).map { _ in Int(rng.next() % 5000) }
        for positions in [shared, perSequence] {
            for theta: Float in [10_000, 500_000] {
                let err = relativeError(try cl.rope(x, positions: positions, theta: theta, style: style),
                                        try reference.rope(x, positions: positions, theta: theta, style: style))
                #expect(err < 1e-5, "positions \(positions.count) theta \(theta) seed=\(seed): error \(err)")
            }
        }
    }

    // MARK: Device-resident tensors

    @Test func deviceResidentChainMatchesHostOps() throws {
        let seed = freshSeed()
        let a = Tensor.random(shape: [2, 17, 63], seed: seed)
        let w = Tensor.random(shape: [63, 33], seed: seed &+ 1)
        let bias = Tensor.random(shape: [33], seed: seed &+ 2)
        // Round trip is exact.
        let da = try cl.upload(a)
        #expect(da.shape == a.shape)
        #expect(try cl.download(da) == a)
        // silu(a·w + bias) entirely on the device vs the reference.
        let dy = try cl.silu(cl.add(cl.matmul(da, cl.upload(w), transposeA: false, transposeB: false), cl.upload(bias)))
        try cl.finish()
        let expected = try reference.silu(reference.add(reference.matmul(a, w), bias))
        #expect(relativeError(try cl.download(dy), expected) < 2e-5, "seed=\(seed)")
        // Empty tensors round-trip and pass through elementwise ops.
        let empty = try cl.upload(Tensor(zeros: [0, 4]))
        #expect(try cl.download(cl.silu(empty)).shape == [0, 4])
    }

    @Test func concurrentCallersGetTheirOwnResults() async throws {
        // The backend is shared across tasks; the queue lock must keep arguments and launches of
        // concurrent calls apart. Each task checks its own product against the reference.
        let seed = freshSeed()
        let backend = vector, oracle = reference
        try await withThrowingTaskGroup(of: Double.self) { group in
            for t in 0..<6 {
                group.addTask {
                    let a = Tensor.random(shape: [17 + t, 33], seed: seed &+ UInt64(2 * t))
                    let b = Tensor.random(shape: [33, 9 + t], seed: seed &+ UInt64(2 * t + 1))
                    var worst = 0.0
                    for _ in 0..<5 {
                        worst = max(worst, relativeError(try backend.matmul(a, b), try oracle.matmul(a, b)))
                    }
                    return worst
                }
            }
            for try await err in group { #expect(err < 2e-5, "seed=\(seed)") }
        }
    }

    @Test func deviceTimeIsPositiveAndBoundedByWallTime() throws {
        let a = try cl.upload(Tensor.random(shape: [128, 128], seed: freshSeed()))
        let clock = ContinuousClock()
        var device = Duration.zero
        let wall = try clock.measure {
            device = try cl.deviceTime {
                for _ in 0..<3 { _ = try cl.matmul(a, a, transposeA: false, transposeB: false) }
            }
        }
        #expect(device > .zero)
        #expect(device <= wall)
    }

    // MARK: Bad input

    @Test func badInputThrowsTypedErrors() throws {
        func code(_ body: () throws -> Any) -> TensorError.Code? {
            do { _ = try body(); return nil } catch let e as TensorError { return e.code } catch { return nil }
        }
        let a = Tensor.random(shape: [3, 4], seed: 1), b = Tensor.random(shape: [5, 6], seed: 2)
        #expect(code { try cl.matmul(a, b) } == .shapeMismatch)
        #expect(code { try cl.matmul(Tensor.random(shape: [4], seed: 1), a) } == .invalidRank)
        #expect(code { try cl.matmul(Tensor(zeros: [0, 4]), Tensor(zeros: [4, 2])) } == .invalidArgument)
        let q = Tensor.random(shape: [1, 3, 2, 4], seed: 3), kv = Tensor.random(shape: [1, 2, 2, 4], seed: 4)
        #expect(code { try cl.attention(query: q, key: kv, value: kv, causal: false, scale: 1) } == .shapeMismatch)  // 3 % 2 != 0
        let q2 = Tensor.random(shape: [1, 2, 2, 4], seed: 5)
        #expect(code { try cl.attention(query: q2, key: kv, value: kv, causal: false, scale: .nan) } == .nonFinite)
        #expect(code { try cl.attention(query: q2, key: kv, value: Tensor(zeros: [1, 2, 3, 4]), causal: false, scale: 1) } == .shapeMismatch)
        #expect(code { try cl.rmsNorm(a, weight: Tensor(zeros: [3]), epsilon: 1e-5) } == .shapeMismatch)
        #expect(code { try cl.rope(Tensor(zeros: [1, 1, 2, 3]), positions: [0, 1], theta: 10_000, style: .halfSplit) } == .invalidArgument)
        #expect(code { try cl.rope(Tensor(zeros: [1, 1, 2, 4]), positions: [0], theta: 10_000, style: .halfSplit) } == .shapeMismatch)
        #expect(code { try cl.add(a, Tensor(zeros: [3])) } == .shapeMismatch)
        #expect(code { try cl.softmax(Tensor(zeros: [2, 0])) } == .invalidArgument)
        // The device-resident entry points validate the same way.
        let da = try cl.upload(a), db = try cl.upload(b)
        #expect(code { try cl.matmul(da, db, transposeA: false, transposeB: false) } == .shapeMismatch)
    }
}
