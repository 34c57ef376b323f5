import CostModel
import KVPaging
import Testing
@testable import Scheduling

@Suite struct RooflineStepModelTests {
    @Test func pricesStepsThroughCostModelAndSizesTheKVPool() throws {
        let m = try RooflineStepModel(model: "llama-3.1-8b", gpu: "H100-SXM", precision: .bf16)
        let shape = StepShape(prefillTokens: 512, prefillSequences: 1, decodeTokens: 64, contextTokens: 64 * 700)
        #expect(m.stepTime(shape) == m.roofline.stepTime(prefillTokens: 512, decodeTokens: 64, contextTokens: 64 * 700))
        // Decode of one sequence is memory-bound: at least the BF16 weights (~16 GB) over 3.35 TB/s ≈ 4.8 ms.
        let one = m.stepTime(StepShape(decodeTokens: 1, contextTokens: 100))
        #expect(one > 0.004 && one < 0.02)
        // The KV pool is the memory breakdown's KV capacity in 16-token blocks.
        let kv = m.kvCacheConfiguration(blockSize: 16)
        #expect(kv.blockCount == m.memory.kvCapacityTokens / 16 && kv.maxSequenceLength == m.roofline.model.maxContext)
        // Swapping costs KV bytes over PCIe: 1,000 tokens × kvBytesPerToken / 25 GB/s.
        let swap = m.stepTime(StepShape(decodeTokens: 1, contextTokens: 100, swapInTokens: 1000)) - one
        #expect(abs(swap - 1000 * m.memory.kvBytesPerTokenPerGPU / 25e9) < 1e-12)
    }

    @Test func unknownNamesAndImpossibleDeploymentsAreTypedErrors() {
        #expect { try RooflineStepModel(model: "llama-9", gpu: "H100-SXM") } throws: { ($0 as? SchedulingError)?.code == .unknownName }
        #expect { try RooflineStepModel(model: "llama-3.1-8b", gpu: "H999") } throws: { ($0 as? SchedulingError)?.code == .unknownName }
        // 405B in BF16 (~810 GB) cannot fit one 80 GB GPU.
        #expect { try RooflineStepModel(model: "llama-3.1-405b", gpu: "H100-SXM") } throws: { ($0 as? SchedulingError)?.code == .invalidConfiguration }
    }

    @Test func pagedKVServesMoreConcurrentRequestsThanContiguous() throws {
        // Same pool (512 blocks × 16 = 8,192 tokens), same requests: the contiguous baseline reserves
        // prompt + max new tokens at admission, paging allocates as tokens arrive, so more run at once.
        let reqs = try SyntheticWorkload(arrivals: .poisson(rate: 200), promptLength: .constant(100), outputLength: .uniform(min: 50, max: 600),
                                         count: 300, seed: 9).generate()
        func run(_ a: KVAllocatorKind) throws -> SimulationSummary {
            try ServingSimulator.run(reqs, configuration: SimulationConfiguration(
                policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 512, blockSize: 16, maxSequenceLength: 4096),
                allocator: a, executionModel: try LinearStepModel(beta0: 0.01, beta1: 0.00002, beta2: 0.0001))).summary
        }
        let paged = try run(.paged), contiguous = try run(.contiguous)
        #expect(paged.completed == 300 && contiguous.completed == 300)
        #expect(paged.batchSize.mean > 1.3 * contiguous.batchSize.mean)
        #expect(paged.requestThroughput > contiguous.requestThroughput)
    }
}
