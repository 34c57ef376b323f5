import Foundation
import Testing
@testable import CostModel

@Suite struct PlannerTests {
    let catalog: Catalog
    let planner: DeploymentPlanner
    init() throws {
        catalog = try Catalog.bundled()
        planner = DeploymentPlanner(catalog: catalog)
    }

    let chat = Workload(requestsPerSecond: 5, prompt: TokenDistribution(mean: 1000, p95: 3000, max: 6144),
                        output: TokenDistribution(mean: 250, p95: 600, max: 2048))
    let slos = ServiceLevelObjectives(p95TimeToFirstToken: 2, p95TimePerOutputToken: 0.06)

    /// Every plan must satisfy the constraints it claims, checked from first principles.
    @Test(arguments: ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-72b", "qwen2.5-7b", "mistral-7b"])
    func plansRespectTheirOwnConstraints(model name: String) throws {
        let model = try catalog.model(named: name)
        let result = try planner.plan(model: model, workload: chat, slos: slos)
        #expect(!result.plans.isEmpty)
        let tokensPerHour = 5 * (1000 + 250) * 3600.0
        var previous = 0.0
        for p in result.plans {
            let sku = try catalog.vmSKU(named: p.sku)
            // Cost arithmetic: whole VMs at the catalog price; $/1M tokens over the workload's tokens.
            #expect(abs(p.dollarsPerHour - Double(p.vmCount) * (sku.pricePerHour ?? .nan)) < 1e-9)
            #expect(abs(p.dollarsPerMillionTokens - p.dollarsPerHour / tokensPerHour * 1e6) < 1e-9)
            #expect(p.dollarsPerMillionTokens >= previous)  // ranked cheapest first
            previous = p.dollarsPerMillionTokens
            // SLOs met.
            #expect(p.predictedP95TimeToFirstToken <= slos.p95TimeToFirstToken)
            #expect(p.predictedP95TimePerOutputToken <= slos.p95TimePerOutputToken)
            // Parallelism is legal and the GPUs exist.
            #expect(model.attentionHeads % p.tensorParallel == 0)
            #expect(p.pipelineParallel > 1 ? p.tensorParallel <= sku.gpuCount : sku.gpuCount % p.tensorParallel == 0)
            #expect(p.replicas * p.gpusPerReplica <= p.vmCount * sku.gpuCount)
            // Enough capacity for the load with the headroom target.
            #expect(Double(p.replicas) * p.replicaCapacityRequestsPerSecond * 0.8 >= 5 - 1e-9)
            #expect(p.replicaUtilisation <= 0.8 + 1e-9)
            // The batch fits in the KV cache at the mean request size, and one max-length sequence fits.
            #expect(p.maxBatch * 1250 <= p.kvCapacityTokens)
            #expect(p.maxModelLen == 6144 + 2048)
            #expect(p.kvCapacityTokens >= p.maxModelLen)
            // Memory re-derived independently of the planner.
            let memory = try MemoryEstimator.breakdown(
                model: model, gpu: catalog.gpu(named: p.gpu),
                configuration: ServingConfiguration(weightPrecision: p.weightPrecision, kvPrecision: p.kvPrecision,
                                                    tensorParallel: p.tensorParallel, pipelineParallel: p.pipelineParallel))
            #expect(memory.kvCapacityTokens == p.kvCapacityTokens)
        }
    }

    @Test func decodeLatencyOfAPlanMatchesTheRoofline() throws {
        let model = try catalog.model(named: "llama-3.1-70b")
        let result = try planner.plan(model: model, workload: chat, slos: slos)
        let p = try #require(result.plans.first)
        let r = try RooflineModel(model: model, gpu: catalog.gpu(named: p.gpu), precision: p.weightPrecision, kvPrecision: p.kvPrecision,
                                  tensorParallel: p.tensorParallel, pipelineParallel: p.pipelineParallel)
        // A request's TPOT can never beat a pure decode step at its batch (mean context 1000 + 250/2 = 1125).
        let td = r.timePerOutputToken(batch: p.maxBatch, contextTokens: 1125)
        #expect(p.predictedMeanTimePerOutputToken >= td - 1e-12)
        #expect(p.predictedP95TimePerOutputToken >= p.predictedMeanTimePerOutputToken - 1e-12)
        // Capacity: PP / (prefill of the mean prompt + 250 × td / B).
        let capacity = Double(p.pipelineParallel) / (r.timeToFirstToken(promptTokens: 1000) + 250 * td / Double(p.maxBatch))
        #expect(abs(p.replicaCapacityRequestsPerSecond / capacity - 1) < 1e-9)
    }

    @Test func tighterSLOsNeverCostLess() throws {
        let model = try catalog.model(named: "llama-3.1-70b")
        var previous = 0.0
        for tpot in [0.2, 0.1, 0.06, 0.04, 0.03] {
            let r = try planner.plan(model: model, workload: chat, slos: ServiceLevelObjectives(p95TimeToFirstToken: 2, p95TimePerOutputToken: tpot))
            guard let best = r.plans.first else { break }
            #expect(best.dollarsPerMillionTokens >= previous - 1e-9)
            previous = best.dollarsPerMillionTokens
        }
    }

    @Test func moreLoadNeverNeedsFewerReplicasOnTheSameSKU() throws {
        let model = try catalog.model(named: "llama-3.1-8b")
        var previous = 0.0
        for rps in [0.5, 2, 8, 32] {
            var w = chat
            w.requestsPerSecond = rps
            let r = try planner.plan(model: model, workload: w, slos: slos,
                                     options: PlannerOptions(skus: ["NC24ads_A100_v4"], precisions: [.bf16]))
            let p = try #require(r.plans.first)
            #expect(p.dollarsPerHour >= previous)
            previous = p.dollarsPerHour
        }
    }

    @Test func impossiblePlanIsExplained() throws {
        let model = try catalog.model(named: "llama-3.1-405b")
        let r = try planner.plan(model: model, workload: chat, slos: slos,
                                 options: PlannerOptions(skus: ["NC6s_v3", "NC24ads_A100_v4"], precisions: [.bf16, .int4]))
        #expect(r.plans.isEmpty)
        let explanation = try #require(r.explanation)
        #expect(explanation.contains("do not fit"))
        #expect(r.rejected.contains { $0.sku == "NC24ads_A100_v4" && $0.reason == .doesNotFit })
        #expect(r.rejected.contains { $0.sku == "NC6s_v3" && $0.precision == .bf16 && $0.reason == .unsupportedPrecision })
        // An SLO no GPU can meet: 1 ms per output token.
        let fast = try planner.plan(model: catalog.model(named: "llama-3.1-70b"), workload: chat,
                                    slos: ServiceLevelObjectives(p95TimeToFirstToken: 2, p95TimePerOutputToken: 0.001))
        #expect(fast.plans.isEmpty)
        #expect(fast.explanation?.contains("TPOT") == true)
    }

    @Test func pipelineParallelismSpansInfiniBandVMsOnly() throws {
        // Llama 3.1 405B in BF16 is 812 GB; one ND96amsr_A100_v4 has 8 × 72 GiB usable = 618 GB → PP over ≥ 2 VMs.
        let model = try catalog.model(named: "llama-3.1-405b")
        let relaxed = ServiceLevelObjectives(p95TimeToFirstToken: 10, p95TimePerOutputToken: 0.5)
        var w = chat
        w.requestsPerSecond = 0.5
        let r = try planner.plan(model: model, workload: w, slos: relaxed,
                                 options: PlannerOptions(skus: ["ND96amsr_A100_v4", "NC96ads_A100_v4"], precisions: [.bf16]))
        let p = try #require(r.plans.first { $0.sku == "ND96amsr_A100_v4" })
        #expect(p.pipelineParallel >= 2)
        #expect(p.vmCount % p.pipelineParallel == 0)
        #expect(r.rejected.contains { $0.sku == "NC96ads_A100_v4" && $0.reason == .needsInterconnect })
        let vllm = p.vllmSettings(model: model)
        #expect(vllm.commandLine.contains("--pipeline-parallel-size \(p.pipelineParallel)"))
    }

    @Test func pricesComeFromTheCatalog() throws {
        let model = try catalog.model(named: "llama-3.1-70b")
        let before = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: ["ND96isr_H200_v5"]))
        #expect(before.plans.isEmpty)
        #expect(before.rejected.first?.reason == .noPrice)
        let priced = try catalog.merging(data: Data("""
            {"vmSKUs": [{"name": "ND96isr_H200_v5", "series": "ND", "gpu": "H200", "gpuCount": 8, "vramPerGPUGB": 141,
              "pricePerHour": 110, "network": "InfiniBand NDR 400 Gb/s", "source": "quote", "date": "2026-11"}]}
            """.utf8), file: "quote.json")
        let after = try DeploymentPlanner(catalog: priced).plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: ["ND96isr_H200_v5"]))
        #expect(after.plans.first?.dollarsPerHour == 110)
    }

    @Test func contextBeyondTheModelIsRejected() throws {
        var w = chat
        w.prompt = TokenDistribution(mean: 1000, p95: 3000, max: 4000)
        let r = try planner.plan(model: catalog.model(named: "phi-3-mini"), workload: w, slos: slos)
        // Phi-3 Mini 4K: 4,000 + 2,048 > 4,096.
        #expect(r.plans.isEmpty)
        #expect(r.rejected.allSatisfy { $0.reason == .contextTooLong || $0.reason == .noPrice })
    }

    @Test func badInputsAreTypedErrors() throws {
        let model = try catalog.model(named: "llama-3.1-8b")
        func code(_ body: () throws -> Void) -> CostModelError.Code? {
            do { try body(); return nil } catch let e as CostModelError { return e.code } catch { return nil }
        }
        var w = chat
        w.requestsPerSecond = 0
        #expect(code { _ = try planner.plan(model: model, workload: w, slos: slos) } == .invalidInput)
        w.requestsPerSecond = .nan
        #expect(code { _ = try planner.plan(model: model, workload: w, slos: slos) } == .invalidInput)
        w = chat
        w.prompt = TokenDistribution(mean: 1000, p95: 500, max: 6000)
        #expect(code { _ = try planner.plan(model: model, workload: w, slos: slos) } == .invalidInput)
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: ServiceLevelObjectives(p95TimeToFirstToken: -1, p95TimePerOutputToken: 0.05)) } == .invalidInput)
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(skus: ["NC24ads_A100_v5"])) } == .unknownName)
        #expect(code { _ = try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(precisions: [])) } == .invalidInput)
        var huge = chat
        huge.requestsPerSecond = 1e9
        #expect(code { _ = try planner.plan(model: model, workload: huge, slos: slos) } == .invalidInput)
    }

    @Test func engineSettings() throws {
        let model = try catalog.model(named: "llama-3.1-70b")
        let p = try #require(try planner.plan(model: model, workload: chat, slos: slos, options: PlannerOptions(precisions: [.fp8])).plans.first)
        let v = p.vllmSettings(model: model)
        let cmd = v.commandLine
        for flag in ["vllm serve meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size \(p.tensorParallel)", "--max-model-len 8192",
                     "--gpu-memory-utilization 0.90", "--max-num-seqs \(p.maxBatch)", "--kv-cache-dtype fp8", "--quantization fp8"] {
            #expect(cmd.contains(flag), "\(flag)")
        }
        let pool = p.aksNodePool()
        #expect(pool.name.count <= 12 && pool.name.allSatisfy { $0.isLowercase || $0.isNumber })
        #expect(pool.azCommand.contains("--node-vm-size Standard_\(p.sku)"))
        #expect(pool.azCommand.contains("--node-count \(p.vmCount)"))
        // BF16 plans leave quantization off and KV on auto.
        let bf = try #require(try planner.plan(model: catalog.model(named: "llama-3.1-8b"), workload: chat, slos: slos,
                                               options: PlannerOptions(precisions: [.bf16])).plans.first)
        let bfCmd = try bf.vllmSettings(model: catalog.model(named: "llama-3.1-8b")).commandLine
        #expect(!bfCmd.contains("--quantization"))
        #expect(bfCmd.contains("--kv-cache-dtype auto"))
    }

    @Test func poissonQuantile() {
        // P(Poisson(1) ≤ 2) = e⁻¹(1 + 1 + 1/2) = 0.9197 < 0.95; ≤ 3 adds 1/6 → 0.9810 → quantile 3.
        #expect(poissonQuantile95(mean: 1) == 3)
        #expect(poissonQuantile95(mean: 0) == 0)
        // Mean 0.05: P(0) = 0.951 ≥ 0.95 → 0.
        #expect(poissonQuantile95(mean: 0.05) == 0)
    }
}
