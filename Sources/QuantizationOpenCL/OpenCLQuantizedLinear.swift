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

    /// The kernel layout: `.gpu` on GPUs and accelerators, `.cpu` otherwise (see `QuantKernelSource`).
    let layout: QuantKernelSource.Layout
    let tiles: (decode: QuantKernelSource.Tile, batch: QuantKernelSource.Tile)

    /// Runs on `backend`'s device, building the quantized kernels there on first use in the process.
    ///
    /// - Throws: `deviceFailure` with the build log when the kernels do not compile.
    public convenience init(backend: OpenCLBackend) throws {
        try self.init(backend: backend, layout: nil)
    }

    /// `layout` overrides the choice by device kind (tests run the GPU layout on PoCL).
    init(backend: OpenCLBackend, layout: QuantKernelSource.Layout?) throws {
        self.backend = backend
        isGPU = backend.device.kind == .gpu || backend.device.kind == .accelerator
        deviceDescription = backend.device.description
        let layout = layout ?? (isGPU ? .gpu : .cpu)
        self.layout = layout
        tiles = QuantKernelSource.tiles(layout)
        let (source, kernels) = QuantKernelSource.program(layout)
        program = try Self.device("building the quantized kernels on \(backend.device.name)") {
            try backend.program(source: source, options: "-cl-std=CL1.2", kernels: kernels, label: "QuantizationOpenCL quantized matmul kernels (\(layout) layout)")
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
    let family: QuantKernelSource.Family
    /// The format parameters `P0`, `P1` of the kernels (INT4: group size, symmetric; 0 otherwise).
    let parameters: (Int32, Int32)

    init(runtime: OpenCLQuantizedRuntime, matrix: QuantizedMatrix) throws {
        self.runtime = runtime
        format = matrix.format
        outputFeatures = matrix.rows
        inputFeatures = matrix.columns
        // The CPU kernels read K in panels (`QuantKernelSource.panelize`); the GPU kernels read the format's own layout.
        let bytes = runtime.layout == .cpu ? try QuantKernelSource.panelize(matrix) : matrix.bytes
        weights = try OpenCLQuantizedRuntime.device("uploading \(bytes.count) bytes of \(matrix.format) weights to \(runtime.backend.device.name)") {
            try runtime.backend.makeBuffer(bytes)
        }
        family = QuantKernelSource.Family(matrix.format)
        if case let .int4Grouped(g, symmetric) = matrix.format { parameters = (Int32(g), symmetric ? 1 : 0) } else { parameters = (0, 0) }
    }

    public func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor { try apply(x) }

    /// `x` `[..., K]` → `[..., N]`.
    public func apply(_ x: Tensor) throws -> Tensor {
        let outShape = try checkInput(x.shape)
        if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError(.nonFinite, "linear layer input holds \(x.scalars[i]) at flat index \(i); replace NaN/Inf values before calling")
        }
        let cl = runtime.backend
        return try OpenCLQuantizedRuntime.device("running the \(format) kernel on \(cl.device.name)") {
            let y = try launch(try cl.upload(x), outShape)
            return try cl.download(y)
        }
    }

    /// Device-resident `x` `[..., K]` → `[..., N]` on the same device, returned once the kernel is queued
    /// (no NaN/Inf check: that would need a download).
    public func apply(_ x: OpenCLTensor) throws -> OpenCLTensor {
        let outShape = try checkInput(x.shape)
        return try OpenCLQuantizedRuntime.device("running the \(format) kernel on \(runtime.backend.device.name)") { try launch(x, outShape) }
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
        let tile = tokens == 1 ? runtime.tiles.decode : runtime.tiles.batch
        let kernel = QuantKernelSource.name(family, runtime.layout, rows: tile.rows, tokens: tile.tokens)
        var arguments: [OpenCLKernelArgument] = [.buffer(weights), .tensor(x), .tensor(y), .int32(Int32(n)), .int32(Int32(k)), .int32(Int32(tokens)),
                                                 .int32(parameters.0), .int32(parameters.1)]
        let rowTiles = (n + tile.rows - 1) / tile.rows, tokenTiles = (tokens + tile.tokens - 1) / tile.tokens
        switch runtime.layout {
        case .cpu:
            // [token tiles, row tiles rounded up to the local size]; work-items past N return at once.
            let rowItems = (rowTiles + tile.local - 1) / tile.local * tile.local
            try cl.enqueue(runtime.program, kernel: kernel, arguments: arguments, global: [tokenTiles, rowItems], local: [1, tile.local])
        case .gpu:
            // One group of `local` work-items per row tile; local memory holds one partial sum per work-item and output.
            arguments.append(.local(bytes: tile.rows * tile.tokens * tile.local * MemoryLayout<Float>.stride))
            try cl.enqueue(runtime.program, kernel: kernel, arguments: arguments, global: [rowTiles * tile.local, tokenTiles], local: [tile.local, 1])
        }
        return y
    }
}
