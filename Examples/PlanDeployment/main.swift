// PlanDeployment — size and price a self-hosted Llama 3.1 8B chat service with CostModel.
//
// 1. Look the model up in the bundled catalog and print its memory needs.
// 2. Ask the planner for the cheapest Azure deployment under latency SLOs.
// 3. Print the vLLM flags and the AKS node pool for the winner.
// 4. Compare with hosting the traffic on Azure OpenAI (PTU vs pay-as-you-go).
//
// Run: swift run PlanDeployment
import CostModel
import Foundation

/// `x` with `d` decimals.
func r(_ x: Double, _ d: Int = 2) -> String { String(format: "%.\(d)f", x) }

do {
    let catalog = try Catalog.bundled()
    let model = try catalog.model(named: "llama-3.1-8b")

    // 1. Memory: weights at each precision, KV per token (GQA: 8 KV heads instead of 32).
    print("\(model.displayName): \(r(model.parameterCount / 1e9)) B parameters")
    for precision in [Precision.bf16, .fp8, .int4] {
        print("  \(precision.label) weights: \(r(MemoryEstimator.weightBytes(model, precision) / 1e9, 1)) GB")
    }
    print("  KV cache: \(Int(model.kvBytesPerToken(.bf16))) bytes/token (BF16)")

    // 2. Plan: 20 requests/s of chat, p95 TTFT ≤ 1 s, p95 TPOT ≤ 40 ms.
    let workload = Workload(requestsPerSecond: 20,
                            prompt: TokenDistribution(mean: 800, p95: 2500, max: 4096),
                            output: TokenDistribution(mean: 300, p95: 700, max: 1024))
    let slos = ServiceLevelObjectives(p95TimeToFirstToken: 1.0, p95TimePerOutputToken: 0.040)
    let result = try DeploymentPlanner(catalog: catalog).plan(model: model, workload: workload, slos: slos)
    guard let best = result.plans.first else {
        print(result.explanation ?? "no plan")
        throw CostModelError(.noFeasiblePlan, "nothing fits")
    }
    print("\nTop plans ($ per 1M tokens):")
    for p in result.plans.prefix(3) {
        print("  \(p.vmCount) × \(p.sku), TP \(p.tensorParallel), \(p.weightPrecision.label), batch \(p.maxBatch): "
            + "$\(r(p.dollarsPerHour))/h, $\(r(p.dollarsPerMillionTokens, 3))/1M tokens, "
            + "p95 TTFT \(Int(p.predictedP95TimeToFirstToken * 1000)) ms, p95 TPOT \(Int(p.predictedP95TimePerOutputToken * 1000)) ms")
    }
    print("Rejected \(result.rejected.count) candidates, e.g. \(result.rejected.first.map { "\($0.sku): \($0.detail)" } ?? "none")")

    // 3. Engine settings.
    print("\n" + best.vllmSettings(model: model).commandLine)
    print("\n" + best.aksNodePool().azCommand)

    // 4. The same traffic on Azure OpenAI gpt-4o-mini: PTU or PAYG?
    let ptu = try PTUCalculator.analyse(
        PTUWorkload(peakRequestsPerMinute: 20 * 60 * 1.5, averageRequestsPerMinute: 20 * 60,
                    inputTokensPerRequest: 800, outputTokensPerRequest: 300),
        profile: catalog.ptuProfile(named: "gpt-4o-mini"), price: catalog.apiPrice(model: "gpt-4o-mini"))
    print("\nAzure OpenAI gpt-4o-mini: \(ptu.ptus) PTUs; PAYG $\(Int(ptu.paygMonthly))/month; recommendation: \(ptu.recommendation.rawValue)")
    for reason in ptu.reasons { print("  - \(reason)") }
} catch {
    print("error: \(error)")
}
