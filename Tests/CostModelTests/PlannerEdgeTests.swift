import Foundation
import Testing
@testable import CostModel

/// Ties, impossible workloads and hostile planner inputs.
@Suite struct PlannerEdgeTests {
    let catalog: Catalog
    init() throws { catalog = try Catalog.bundled() }

    let chat = Workload(requestsPerSecond: 2, prompt: TokenDistribution(mean: 800, p95: 2000, max: 4096),
                        output: TokenDistribution(mean: 200, p95: 500, max: 1024))
    let slos = ServiceLevelObjectives(p95TimeToFirstToken: 3, p95TimePerOutputToken: 0.1)

    /// Two SKUs identical in everything but the name cost exactly the same; the ranking must not depend
    /// on the order they appear in the catalog or in the request.
    @Test func equalCostPlansAreRankedDeterministically() throws {
        let twin = #"""
        {"vmSKUs": [{"name": "AA_twin_A100", "series": "NC", "gpu": "A100-80GB-PCIe", "gpuCount": 1, "vramPerGPUGB": 80,
                     "pricePerHour": 3.67, "source": "test twin of NC24ads_A100_v4", "date": "2026-11"}]}
        """#
        let merged = try catalog.merging(data: Data(twin.utf8), file: "twin.json")
        let planner = DeploymentPlanner(catalog: merged)
        let model = try merged.model(named: "llama-3.1-8b")
        var orders: [[String]] = []
        for skus in [["NC24ads_A100_v4", "AA_twin_A100"], ["AA_twin_A100", "NC24ads_A100_v4"]] {
            let r = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: skus, precisions: [.bf16]))
            #expect(r.plans.count == 2)
            // Same hardware and price → same $/1M tokens (a tie) …
            #expect(r.plans[0].dollarsPerMillionTokens == r.plans[1].dollarsPerMillionTokens)
            orders.append(r.plans.map(\.sku))
        }
        // … broken by name, whatever the input order.
        #expect(orders[0] == ["AA_twin_A100", "NC24ads_A100_v4"] && orders[1] == orders[0])
    }

    @Test func rankingIsATotalOrderOnDistinctPlans() throws {
        let r = try DeploymentPlanner(catalog: catalog).plan(model: catalog.model(named: "llama-3.1-8b"), workload: chat, slos: slos)
        #expect(r.plans.count >= 3)
        for (a, b) in zip(r.plans, r.plans.dropFirst()) {
            #expect(!DeploymentPlan.ranksBefore(b, a), "\(b.sku) \(b.weightPrecision) ranks before \(a.sku) \(a.weightPrecision) but comes after it")
            #expect(a.dollarsPerMillionTokens <= b.dollarsPerMillionTokens)
        }
    }

    @Test func impossibleWorkloadsAreExplainedNotEmpty() throws {
        let planner = DeploymentPlanner(catalog: catalog)
        let llama8 = try catalog.model(named: "llama-3.1-8b")
        // Longer than any context Llama 3.1 accepts (131,072): every SKU rejects it, and the explanation says why.
        let long = Workload(requestsPerSecond: 1, prompt: TokenDistribution(mean: 100_000, p95: 120_000, max: 130_000),
                            output: TokenDistribution(mean: 1000, p95: 4000, max: 8000))
        let r = try planner.plan(model: llama8, workload: long, slos: slos)
        #expect(r.plans.isEmpty)
        #expect(r.rejected.contains { $0.reason == .contextTooLong })
        #expect(r.explanation?.contains("138000") == true || r.explanation?.contains("138,000") == true)
        // A TTFT no prefill can meet: 1 ms for a 2,000-token p95 prompt.
        let fast = try planner.plan(model: llama8, workload: chat,
                                    slos: ServiceLevelObjectives(p95TimeToFirstToken: 0.001, p95TimePerOutputToken: 1))
        #expect(fast.plans.isEmpty && fast.explanation?.contains("TTFT") == true)
        #expect(fast.rejected.allSatisfy { !$0.detail.isEmpty })
        // Every rejected candidate carries a reason and a detail; every explanation is a sentence, not "".
        for result in [r, fast] { #expect((result.explanation ?? "").count > 40) }
    }

    /// Entries built in code skip the catalog parser's bounds: the estimators must still not trap.
    @Test func absurdHardwareBuiltInCodeDoesNotTrap() throws {
        // A GPU with a denormal throughput and bandwidth: every step takes "forever".
        let snail = GPUSpec(name: "snail", vendor: "test", memoryGiB: 80, memoryBandwidthGBs: 1e-300, fp32TFLOPS: 1e-300,
                            fp16TFLOPS: 1e-300, interconnect: "none", interconnectGBs: 0, allReduceLatencyMicroseconds: 0,
                            source: "test", date: "2026-11")
        var c = catalog
        c.gpus.append(snail)
        c.vmSKUs.append(VMSKU(name: "SNAIL1", series: "NC", gpu: "snail", gpuCount: 1, vramPerGPUGB: 80, pricePerHour: 1,
                              source: "test", date: "2026-11"))
        let r = try DeploymentPlanner(catalog: c).plan(model: catalog.model(named: "llama-3.1-8b"), workload: chat, slos: slos,
                                                       options: PlannerOptions(skus: ["SNAIL1"], precisions: [.bf16]))
        #expect(r.plans.isEmpty && r.explanation != nil)
        // A PTU profile with a denormal capacity would need infinitely many PTUs.
        let price = try catalog.apiPrice(model: "gpt-4o")
        let load = PTUWorkload(peakRequestsPerMinute: 100, averageRequestsPerMinute: 50, inputTokensPerRequest: 500, outputTokensPerRequest: 200)
        for (tpm, minimum, increment) in [(Double.leastNonzeroMagnitude, 1, 1), (0, 1, 1), (.nan, 1, 1), (4200, 0, 1), (4200, 1, -5)] {
            let profile = PTUProfile(name: "odd", model: "gpt-4o", pricePerPTUHour: 2, minimumPTUs: minimum, increment: increment,
                                     tokensPerMinutePerPTU: tpm, outputTokenWeight: 1, source: "test", date: "2026-11")
            #expect(throws: CostModelError.self) { _ = try PTUCalculator.analyse(load, profile: profile, price: price) }
        }
        // 1e-300 tokens per minute passes the positivity check but needs > 10⁹ PTUs: a typed error, not a trap.
        let tiny = PTUProfile(name: "tiny", model: "gpt-4o", pricePerPTUHour: 2, minimumPTUs: 1, increment: 1,
                              tokensPerMinutePerPTU: 1e-300, outputTokenWeight: 1, source: "test", date: "2026-11")
        #expect(throws: CostModelError.self) { _ = try PTUCalculator.analyse(load, profile: tiny, price: price) }
    }

    @Test func hostilePlannerInputsAreTypedErrors() throws {
        let planner = DeploymentPlanner(catalog: catalog)
        let model = try catalog.model(named: "llama-3.1-8b")
        func code(_ body: () throws -> Void) -> CostModelError.Code? {
            do { try body(); return nil } catch { return (error as? CostModelError)?.code }
        }
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: [])) } == .invalidInput)
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: ["ND96isr_H100_v9"])) } == .unknownName)
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(precisions: [])) } == .invalidInput)
        for rps in [0, -1, .nan, .infinity, 1e12] {
            var w = chat
            w.requestsPerSecond = rps
            #expect(code { _ = try planner.plan(model: model, workload: w, slos: slos) } == .invalidInput, "rps \(rps)")
        }
        for (mean, p95, max) in [(0.0, 1.0, 1), (-5, 10, 10), (.nan, 10, 10), (10, 5, 10), (10, 20, 15), (10, 20, Int.max), (1e300, 1e300, 1 << 24)] {
            var w = chat
            w.prompt = TokenDistribution(mean: mean, p95: p95, max: max)
            #expect(code { _ = try planner.plan(model: model, workload: w, slos: slos) } == .invalidInput, "prompt \(mean)/\(p95)/\(max)")
        }
        for (ttft, tpot) in [(0.0, 0.1), (1, -1), (.nan, 0.1), (1, .infinity)] {
            #expect(code { _ = try planner.plan(model: model, workload: chat, slos: ServiceLevelObjectives(p95TimeToFirstToken: ttft, p95TimePerOutputToken: tpot)) } == .invalidInput)
        }
        for u in [0.0, -0.5, 1.5, .nan] {
            #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(gpuMemoryUtilization: u)) } == .invalidInput)
            #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(targetUtilisation: u)) } == .invalidInput)
        }
    }
}
