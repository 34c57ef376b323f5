// SimulateServing — one workload, four batching policies, one GPU.
//
// Llama 3.1 8B in BF16 on one H100 (the roofline model from CostModel; the KV pool is what the
// 80 GB leave after the weights), 400 chat-like requests arriving as a Poisson process at
// 8 requests/s. Run: swift run SimulateServing
import CostModel
import KVPaging
import Scheduling

do {
    let model = try RooflineStepModel(model: "llama-3.1-8b", gpu: "H100-SXM", precision: .bf16)
    let kv = model.kvCacheConfiguration(blockSize: 16)
    let requests = try SyntheticWorkload(arrivals: .poisson(rate: 8), promptLength: .chatPrompt, outputLength: .chatOutput,
                                         count: 400, seed: 2024).generate()
    print("\(model.summary); KV pool: \(kv.blockCount) blocks of \(kv.blockSize) tokens\n")

    let policies: [any BatchingPolicy] = [
        NoBatchingPolicy(),
        try StaticBatchingPolicy(batchSize: 64),
        try DynamicBatchingPolicy(maxBatchSize: 64, maxWait: 0.05),
        ContinuousBatchingPolicy(),
    ]
    var summaries: [SimulationSummary] = []
    for policy in policies {
        let config = SimulationConfiguration(policy: policy, limits: SchedulerLimits(maxNumSeqs: 256, maxBatchedTokens: 8192),
                                             kv: kv, executionModel: model, sloClasses: [.interactive])
        summaries.append(try ServingSimulator.run(requests, configuration: config).summary)
    }
    print(SimulationReport.table(summaries))

    // Speculative decoding: what a draft model buys at a given acceptance rate and cost ratio.
    print("Speculative decoding, α = 0.7, draft cost 5 % of the target:")
    for gamma in [1, 2, 4, 8] {
        let m = try SpeculativeDecodingModel(acceptanceRate: 0.7, lookahead: gamma, costRatio: 0.05)
        print("  γ = \(gamma): \(String(format: "%.2f", m.expectedTokensPerStep)) tokens per target pass, \(String(format: "%.2f", m.speedup))× faster")
    }
} catch {
    print("SimulateServing failed: \(error)")
}
