import Testing
@testable import CostModel

@Suite struct MemoryTests {
    let catalog: Catalog
    init() throws { catalog = try Catalog.bundled() }

    /// The reference's "Model Size to VRAM Requirements" table (section 9.3), every cell.
    /// The rule of thumb is nominal parameters × bytes per parameter in decimal GB; a
    /// cell matches when it equals our figure rounded to the cell's precision (half a unit
    /// of its last digit).
    @Test func referenceModelSizeTable() throws {
        let rows: [(String, [Precision: Double], Double)] = [
            ("phi-3-mini", [.fp32: 15.2, .fp16: 7.6, .int8: 3.8, .int4: 1.9], 0.1),
            ("llama-3.1-8b", [.fp32: 32, .fp16: 16, .int8: 8, .int4: 4], 1),
            ("mistral-7b", [.fp32: 29.2, .fp16: 14.6, .int8: 7.3, .int4: 3.7], 0.1),
            ("llama-3.1-70b", [.fp32: 280, .fp16: 140, .int8: 70, .int4: 35], 1),
            ("llama-3.1-405b", [.fp32: 1620, .fp16: 810, .int8: 405, .int4: 203], 1),
        ]
        for (name, cells, unit) in rows {
            let model = try catalog.model(named: name)
            for (precision, table) in cells {
                let ours = MemoryEstimator.ruleOfThumbGB(model, precision)
                #expect(abs(ours - table) <= unit / 2 + 1e-9, "\(name) \(precision): ours \(ours) GB, table \(table) GB")
            }
        }
        // BF16 is the same size as FP16.
        let m = try catalog.model(named: "llama-3.1-70b")
        #expect(MemoryEstimator.ruleOfThumbGB(m, .bf16) == MemoryEstimator.ruleOfThumbGB(m, .fp16))
    }

    /// Stored weight sizes use the GGUF block formats: Q8_0 = 34 bytes per 32 weights, Q4_0 = 18 bytes per 32.
    @Test func quantizedWeightsIncludeScaleOverhead() throws {
        let m = try catalog.model(named: "llama-3.1-8b")
        #expect(MemoryEstimator.weightBytes(m, .int8) == 8_030_261_248 * 34 / 32)
        #expect(MemoryEstimator.weightBytes(m, .int4) == 8_030_261_248 * 18 / 32)
        #expect(MemoryEstimator.weightBytes(m, .bf16) == 8_030_261_248 * 2)
        #expect(MemoryEstimator.weightBytes(m, .fp32) == 8_030_261_248 * 4)
        #expect(MemoryEstimator.weightBytes(m, .fp8) == 8_030_261_248)
    }

    @Test func kvCacheHandComputed() throws {
        // Llama 3.1 8B: 2 (K,V) × 32 layers × 8 KV heads × 128 head dim × 2 bytes = 131,072 bytes per token.
        let l8 = try catalog.model(named: "llama-3.1-8b")
        #expect(l8.kvBytesPerToken(.fp16) == 131_072)
        #expect(l8.kvBytesPerToken(.fp8) == 65_536)
        // Without GQA (32 KV heads) it would be 4× larger: Phi-3 Mini is MHA: 2 × 32 × 32 × 96 × 2 = 393,216.
        #expect(try catalog.model(named: "phi-3-mini").kvBytesPerToken(.fp16) == 393_216)
        // Reference: "For a 70B model with 80 layers and a 128K context window, the KV cache alone can
        // consume 40+ GB of VRAM per concurrent request". 2 × 80 × 8 × 128 × 2 = 327,680 bytes/token;
        // × 131,072 tokens = 42,949,672,960 bytes = 42.9 GB (exactly 40 GiB).
        let l70 = try catalog.model(named: "llama-3.1-70b")
        let kv = MemoryEstimator.kvBytes(l70, tokens: 131_072, precision: .bf16)
        #expect(kv == 42_949_672_960)
        #expect(kv / 1e9 > 40)
    }

    /// The reference's "Minimum GPU" column: each named configuration must fit (weights plus one
    /// short sequence) with vLLM's 90% memory utilisation.
    @Test func referenceMinimumGPUsFit() throws {
        let cases: [(String, String, Int, Precision)] = [
            ("phi-3-mini", "A10", 1, .int8),
            ("llama-3.1-8b", "A100-40GB-SXM", 1, .fp16),
            ("mistral-7b", "A10", 1, .int4),
            ("llama-3.1-70b", "A100-80GB-SXM", 2, .fp16),
            ("llama-3.1-405b", "H100-SXM", 8, .int4),
        ]
        for (name, gpuName, count, precision) in cases {
            let config = ServingConfiguration(weightPrecision: precision, kvPrecision: .fp16, tensorParallel: count)
            let b = try MemoryEstimator.breakdown(model: catalog.model(named: name), gpu: catalog.gpu(named: gpuName), configuration: config)
            #expect(b.fits, "\(name) on \(count)× \(gpuName) \(precision)")
            #expect(try b.maxConcurrentSequences(contextTokens: 2048) >= 1)
        }
        // And one size smaller does not: Llama 3.1 70B FP16 on one A100 80GB (141 GB of weights).
        let single = try MemoryEstimator.breakdown(
            model: catalog.model(named: "llama-3.1-70b"), gpu: catalog.gpu(named: "A100-80GB-SXM"),
            configuration: ServingConfiguration(weightPrecision: .fp16))
        #expect(!single.fits)
        #expect(single.kvCapacityBytesPerGPU < 0)
    }

    @Test func breakdownArithmeticAndConcurrency() throws {
        let m = try catalog.model(named: "llama-3.1-8b")
        let g = try catalog.gpu(named: "H100")
        let config = ServingConfiguration(weightPrecision: .bf16, kvPrecision: .bf16, tensorParallel: 1,
                                          gpuMemoryUtilization: 0.9, maxBatchedTokens: 2048, runtimeOverheadGiB: 1)
        let b = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: config)
        let gib = 1_073_741_824.0
        // usable = 80 GiB × 0.9 = 72 GiB; KV room = usable − weights − activations − 1 GiB.
        #expect(b.usableBytesPerGPU == 72 * gib)
        #expect(b.weightBytesPerGPU == 16_060_522_496)
        #expect(abs(b.kvCapacityBytesPerGPU - (72 * gib - 16_060_522_496 - b.activationBytesPerGPU - gib)) < 1)
        // Activation by hand: 2048 tokens × (2 × 14336 + (32 + 16) × 128 + 2 × 4096) × 2 bytes
        // = 2048 × 43,008 × 2 = 176,160,768; logits 256 × 128,256 × 4 = 131,334,144 → 307,494,912.
        #expect(b.activationBytesPerGPU == 307_494_912)
        // Concurrency: KV tokens (whole 16-token blocks) / per-sequence tokens rounded up to blocks.
        let tokens = b.kvCapacityTokens
        #expect(tokens % 16 == 0)
        #expect(Double(tokens) * 131_072 <= b.kvCapacityBytesPerGPU)
        #expect(Double(tokens + 16) * 131_072 > b.kvCapacityBytesPerGPU)
        #expect(try b.maxConcurrentSequences(contextTokens: 8192) == tokens / 8192)
        #expect(try b.maxConcurrentSequences(contextTokens: 8193) == tokens / 8208)
        // FP8 KV doubles the tokens (within one block of rounding).
        var fp8 = config
        fp8.kvPrecision = .fp8
        let b8 = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: fp8)
        #expect(abs(b8.kvCapacityTokens - 2 * tokens) <= 16)
    }

    @Test func tensorParallelSplitsWeightsAndKVHeads() throws {
        let m = try catalog.model(named: "llama-3.1-70b")
        let g = try catalog.gpu(named: "H100")
        let tp4 = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(tensorParallel: 4))
        #expect(tp4.weightBytesPerGPU == MemoryEstimator.weightBytes(m, .bf16) / 4)
        #expect(tp4.kvBytesPerTokenPerGPU == 327_680 / 4)
        // TP 16 > 8 KV heads: each GPU still holds one whole KV head (replication), not half of one.
        let tp16 = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(tensorParallel: 16))
        #expect(tp16.kvBytesPerTokenPerGPU == 2 * 80 * 1 * 128 * 2)
    }

    @Test func smallestTensorParallelDegree() throws {
        let m = try catalog.model(named: "llama-3.1-70b")
        // BF16 on H100 80GB: 141 GB of weights need more than 2 GPUs at 90% (2 × 72 GiB = 154.6 GB minus
        // overheads leaves too little for a 128K-token request at 40 GiB of KV) → 4.
        #expect(try MemoryEstimator.smallestTensorParallel(model: m, gpu: catalog.gpu(named: "H100")) == 4)
        // With an 8K context, 2 GPUs suffice.
        #expect(try MemoryEstimator.smallestTensorParallel(model: m, gpu: catalog.gpu(named: "H100"), contextTokens: 8192) == 2)
        // On A10s (24 GB) even 8 GPUs do not hold 141 GB → nil.
        #expect(try MemoryEstimator.smallestTensorParallel(model: m, gpu: catalog.gpu(named: "A10"), maxGPUs: 8) == nil)
    }

    @Test func badInputIsATypedError() throws {
        let m = try catalog.model(named: "llama-3.1-70b")
        let g = try catalog.gpu(named: "H100")
        #expect(throws: CostModelError.self) { try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(tensorParallel: 0)) }
        #expect(throws: CostModelError.self) { try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(tensorParallel: 3)) }
        #expect(throws: CostModelError.self) { try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(gpuMemoryUtilization: 1.5)) }
        #expect(throws: CostModelError.self) { try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(gpuMemoryUtilization: .nan)) }
        #expect(throws: CostModelError.self) { try MemoryEstimator.breakdown(model: m, gpu: catalog.gpu(named: "V100"), configuration: ServingConfiguration(weightPrecision: .bf16)) }
        let b = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: ServingConfiguration(tensorParallel: 2))
        #expect(throws: CostModelError.self) { try b.maxConcurrentSequences(contextTokens: -5) }
        #expect(throws: CostModelError.self) { try Precision(parsing: "fp12") }
        #expect(try Precision(parsing: "Q4_0") == .int4)
    }
}
