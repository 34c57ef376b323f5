import CostModel
import KVPaging

/// Step times from CostModel's roofline: a catalog model on a catalog GPU at a precision and
/// tensor-parallel degree.
///
/// A step's time is `max(FLOPs / (peak·MFU), bytes / (bandwidth·MBU)) + overhead + all-reduce`
/// (see CostModel's `RooflineModel`); swapped KV moves over PCIe at ``swapGBs``. The same
/// configuration gives the KV pool: the memory left after weights, activations and runtime
/// overhead, in blocks (``kvCacheConfiguration(blockSize:hostSwapGiB:enablePrefixCaching:)``).
public struct RooflineStepModel: ExecutionModel {
    public let roofline: RooflineModel
    public let memory: MemoryBreakdown
    /// Host ↔ device bandwidth for swapped KV, GB/s (default 25, PCIe 4.0 x16 in practice).
    public let swapGBs: Double
    let swapSecondsPerToken: Double

    /// Looks up `model` and `gpu` in `catalog` (the bundled one by default).
    public init(model: String, gpu: String, precision: Precision = .bf16, tensorParallel: Int = 1,
                serving: ServingConfiguration? = nil, efficiency: RooflineEfficiency = .default,
                swapGBs: Double = 25, catalog: Catalog? = nil) throws {
        do {
            let cat = try catalog ?? Catalog.bundled()
            let m = try cat.model(named: model)
            let g = try cat.gpu(named: gpu)
            var config = serving ?? ServingConfiguration()
            config.weightPrecision = precision
            config.tensorParallel = tensorParallel
            roofline = try RooflineModel(model: m, gpu: g, precision: precision, kvPrecision: config.kvPrecision,
                                         tensorParallel: tensorParallel, efficiency: efficiency)
            memory = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: config)
        } catch let error as CostModelError {
            throw SchedulingError(error.code == .unknownName ? .unknownName : .invalidConfiguration, "roofline model: \(error.message)")
        }
        try requireFinite(swapGBs, "swap bandwidth (GB/s)", positive: true)
        guard memory.fits else {
            throw SchedulingError(.invalidConfiguration, "\(roofline.model.displayName) at \(precision.rawValue) does not leave room for a KV block on \(tensorParallel) × \(roofline.gpu.name); raise the tensor-parallel degree or quantize")
        }
        self.swapGBs = swapGBs
        self.swapSecondsPerToken = memory.kvBytesPerTokenPerGPU / (swapGBs * 1e9)
    }

    @inline(__always)
    public func stepTime(_ s: StepShape) -> Double {
        roofline.stepTime(prefillTokens: s.prefillTokens, decodeTokens: s.decodeTokens, contextTokens: s.contextTokens)
            + swapSecondsPerToken * Double(s.swapInTokens + s.swapOutTokens)
    }

    public var summary: String {
        "roofline: \(roofline.model.displayName) on \(roofline.tensorParallel)× \(roofline.gpu.name), \(roofline.precision.rawValue)"
    }

    /// The KV pool this deployment has: `⌊KV tokens / blockSize⌋` blocks, the model's context as the maximum length.
    public func kvCacheConfiguration(blockSize: Int = 16, hostSwapGiB: Double = 0, enablePrefixCaching: Bool = true) -> KVCacheConfiguration {
        // A block size < 1 is passed through for `KVCacheConfiguration.validate()` to reject; it must not divide by zero here.
        let perBlock = max(1, blockSize)
        let blocks = max(1, memory.kvCapacityTokens / perBlock)
        // NaN, negative or absurd swap sizes must not reach `Int(_:)`, which traps on them.
        let host = hostSwapGiB * 1_073_741_824 / (memory.kvBytesPerTokenPerGPU * Double(perBlock))
        let hostBlocks = host.isNaN || host <= 0 ? 0 : Int(min(host, Double(1 << 31)))
        return KVCacheConfiguration(blockCount: blocks, blockSize: blockSize, maxSequenceLength: roofline.model.maxContext,
                                    enablePrefixCaching: enablePrefixCaching, hostBlockCount: hostBlocks)
    }
}
