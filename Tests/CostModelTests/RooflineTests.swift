import Testing
@testable import CostModel

@Suite struct RooflineTests {
    let catalog: Catalog
    init() throws { catalog = try Catalog.bundled() }

    /// Ideal hardware (MFU = MBU = 1, no overhead) so the hand derivations are pure datasheet arithmetic.
    let ideal = RooflineEfficiency(mfu: 1, mbu: 1, stepOverheadSeconds: 0)

    func relClose(_ a: Double, _ b: Double, _ tol: Double = 1e-9) -> Bool { abs(a - b) <= tol * max(abs(a), abs(b)) }

    @Test func decodeBatchOneIsWeightBandwidthBound() throws {
        let r = try RooflineModel(model: catalog.model(named: "llama-3.1-8b"), gpu: catalog.gpu(named: "H100"),
                                  precision: .bf16, efficiency: ideal)
        // Bytes: all weights except the input embedding table: 8,030,261,248 − 525,336,576 = 7,504,924,672
        // parameters × 2 bytes = 15,009,849,344, plus writing one token of KV (131,072) = 15,009,980,416 bytes.
        // H100 SXM: 3,350 GB/s → 4.48059 ms. FLOPs ≈ 2 × 7.5e9 = 15 GFLOP → 15 µs at 989 TFLOPS: memory-bound.
        let expected = 15_009_980_416.0 / 3.35e12
        let b = r.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 0)
        #expect(!b.isComputeBound)
        #expect(relClose(b.bytes, 15_009_980_416))
        #expect(relClose(r.stepTime(prefillTokens: 0, decodeTokens: 1, contextTokens: 0), expected))
        // With 4,096 tokens of context the step also reads 4,096 × 131,072 bytes of KV.
        let withContext = r.stepTime(prefillTokens: 0, decodeTokens: 1, contextTokens: 4096)
        #expect(relClose(withContext, (15_009_980_416.0 + 4096 * 131_072) / 3.35e12))
    }

    @Test func longPrefillIsComputeBound() throws {
        let r = try RooflineModel(model: catalog.model(named: "llama-3.1-8b"), gpu: catalog.gpu(named: "H100"),
                                  precision: .bf16, efficiency: ideal)
        // Matmul FLOPs per token: 2 × (32 layers × 218,112,000) = 13,959,168,000; 4,096 tokens → 5.7177e13.
        // LM head once (last token): 2 × 128,256 × 4,096 = 1,050,673,152.
        // Causal attention: 4 × 32 layers × 32 heads × 128 × (4,096² / 2) pairs = 524,288 × 8,388,608 = 4.398e12.
        let flops = 13_959_168_000.0 * 4096 + 1_050_673_152 + 524_288.0 * 8_388_608
        let b = r.stepBreakdown(prefillTokens: 4096, decodeTokens: 0, contextTokens: 0)
        #expect(b.isComputeBound)
        #expect(relClose(b.flops, flops))
        #expect(relClose(b.totalSeconds, flops / 989e12))
        #expect(relClose(r.timeToFirstToken(promptTokens: 4096), flops / 989e12))
    }

    @Test func tensorParallelAddsAllReduceCost() throws {
        let m = try catalog.model(named: "llama-3.1-8b")
        let g = try catalog.gpu(named: "H100")
        let tp1 = try RooflineModel(model: m, gpu: g, precision: .bf16, tensorParallel: 1, efficiency: ideal)
        let tp2 = try RooflineModel(model: m, gpu: g, precision: .bf16, tensorParallel: 2, efficiency: ideal)
        let b1 = tp1.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 0)
        let b2 = tp2.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 0)
        // Weights split in half; KV heads too.
        #expect(relClose(b2.bytes, b1.bytes / 2))
        // Two all-reduces per layer × 32 layers of one 4,096 × 2-byte vector over NVLink (450 GB/s per
        // direction, 6 µs latency): 64 × (2 × (1/2) × 8,192 / 450e9 + 6e-6).
        let comm = 64 * (8192.0 / 450e9 + 6e-6)
        #expect(relClose(b2.communicationSeconds, comm))
        #expect(relClose(b2.totalSeconds, b1.memorySeconds / 2 + comm))
    }

    @Test func mixtureOfExpertsReadsOnlyTouchedExperts() throws {
        let m = try catalog.model(named: "mixtral-8x7b")
        let r = try RooflineModel(model: m, gpu: catalog.gpu(named: "H100"), precision: .bf16, efficiency: ideal)
        let expertBytes = 32 * 176_160_768.0 * 2
        let dense = (m.parameterCount - 32_000 * 4096 - 8 * 32 * 176_160_768.0) * 2
        // One token touches exactly 2 experts per layer: 8 × (1 − (6/8)¹) = 2.
        let one = r.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 0)
        #expect(relClose(one.bytes, dense + 2 * expertBytes + m.kvBytesPerToken(.bf16)))
        // Two tokens: 8 × (1 − 0.75²) = 3.5 experts expected.
        let two = r.stepBreakdown(prefillTokens: 0, decodeTokens: 2, contextTokens: 0)
        #expect(relClose(two.bytes, dense + 3.5 * expertBytes + 2 * m.kvBytesPerToken(.bf16)))
        // A large batch touches all 8.
        let many = r.stepBreakdown(prefillTokens: 0, decodeTokens: 256, contextTokens: 0)
        #expect(relClose(many.bytes, dense + 8 * expertBytes + 256 * m.kvBytesPerToken(.bf16), 1e-6))
    }

    @Test func invariants() throws {
        let r = try RooflineModel(model: catalog.model(named: "llama-3.1-70b"), gpu: catalog.gpu(named: "H100"),
                                  precision: .fp8, kvPrecision: .fp8, tensorParallel: 4)
        var previous = 0.0, previousRate = 0.0
        for batch in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
            let t = r.timePerOutputToken(batch: batch, contextTokens: 2048)
            let rate = r.decodeTokensPerSecond(batch: batch, contextTokens: 2048)
            #expect(t >= previous)
            #expect(rate > previousRate)
            previous = t
            previousRate = rate
        }
        #expect(r.stepTime(prefillTokens: 0, decodeTokens: 0, contextTokens: 100) == 0)
        #expect(r.stepTime(prefillTokens: -4, decodeTokens: -1, contextTokens: -9) == 0)
        // Overhead is added once per step.
        let withOverhead = try r.with(efficiency: RooflineEfficiency(mfu: 0.5, mbu: 0.6, stepOverheadSeconds: 0.01))
        let without = try r.with(efficiency: RooflineEfficiency(mfu: 0.5, mbu: 0.6, stepOverheadSeconds: 0))
        #expect(relClose(withOverhead.stepTime(prefillTokens: 7, decodeTokens: 3, contextTokens: 99),
                         without.stepTime(prefillTokens: 7, decodeTokens: 3, contextTokens: 99) + 0.01))
        // Faster memory → faster decode: H200 beats H100 at batch 1.
        let h200 = try RooflineModel(model: r.model, gpu: catalog.gpu(named: "H200"), precision: .fp8, kvPrecision: .fp8, tensorParallel: 4)
        #expect(h200.timePerOutputToken(batch: 1, contextTokens: 2048) < r.timePerOutputToken(batch: 1, contextTokens: 2048))
    }

    @Test func calibrationRecoversKnownEfficiencies() throws {
        let m = try catalog.model(named: "llama-3.1-8b")
        let g = try catalog.gpu(named: "A100-80GB-SXM")
        let truth = try RooflineModel(model: m, gpu: g, precision: .bf16, efficiency: RooflineEfficiency(mfu: 0.37, mbu: 0.71, stepOverheadSeconds: 0.003))
        let steps = [(4096, 0, 0), (2048, 0, 0), (0, 1, 1000), (0, 8, 8000), (8192, 0, 0)]
        let measured = steps.map { StepMeasurement(prefillTokens: $0.0, decodeTokens: $0.1, contextTokens: $0.2,
                                                   seconds: truth.stepTime(prefillTokens: $0.0, decodeTokens: $0.1, contextTokens: $0.2)) }
        let start = try RooflineModel(model: m, gpu: g, precision: .bf16, efficiency: RooflineEfficiency(stepOverheadSeconds: 0.003))
        let fitted = try RooflineEfficiency.calibrated(start, from: measured)
        #expect(abs(fitted.mfu - 0.37) < 1e-9)
        #expect(abs(fitted.mbu - 0.71) < 1e-9)
        #expect(throws: CostModelError.self) { try RooflineEfficiency.calibrated(start, from: []) }
        #expect(throws: CostModelError.self) {
            try RooflineEfficiency.calibrated(start, from: [StepMeasurement(prefillTokens: 1, decodeTokens: 0, contextTokens: 0, seconds: -1)])
        }
        #expect(throws: CostModelError.self) {
            try RooflineEfficiency.calibrated(start, from: [StepMeasurement(prefillTokens: 0, decodeTokens: 1, contextTokens: 0, seconds: 0.0001)])
        }
    }

    @Test func invalidConfigurationsAreTypedErrors() throws {
        let m = try catalog.model(named: "llama-3.1-8b")
        #expect(throws: CostModelError.self) { try RooflineModel(model: m, gpu: catalog.gpu(named: "H100"), precision: .bf16, tensorParallel: 3) }
        #expect(throws: CostModelError.self) { try RooflineModel(model: m, gpu: catalog.gpu(named: "V100"), precision: .bf16) }
        #expect(throws: CostModelError.self) { try RooflineModel(model: m, gpu: catalog.gpu(named: "cpu"), precision: .fp32, tensorParallel: 2) }
        #expect(throws: CostModelError.self) { try RooflineModel(model: m, gpu: catalog.gpu(named: "H100"), precision: .bf16, efficiency: RooflineEfficiency(mfu: 0)) }
        // A CPU works at TP 1: decode of an 8B model in FP32 at 30 GB/s × 0.6 takes about 1.7 s per token.
        let cpu = try RooflineModel(model: m, gpu: catalog.gpu(named: "cpu"), precision: .fp32)
        let t = cpu.timePerOutputToken(batch: 1, contextTokens: 0)
        #expect(t > 1.5 && t < 1.8)
    }
}
