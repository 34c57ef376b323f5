import ArgumentParser

/// `inferkit` — one executable, one subcommand per module.
@main
struct InferKit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inferkit",
        abstract: "Plan, run and operate LLM inference: sizing, kernels, scheduling, gateways.",
        subcommands: [
            Backends.self,
            Bench.self,
            Simulate.self,
            PlanCommand.self,
            VRAMCommand.self,
            PTUCommand.self,
            LeversCommand.self,
            CatalogCommand.self,
            Quantize.self,
            GGUFCommand.self,
            GatewayCommand.self,
            MockUpstreamCommand.self,
            LoadTestCommand.self,
            RouterCommand.self,
            GenerateCommand.self,
            TokenizeCommand.self,
            PerplexityCommand.self,
        ]
    )
}

/// `inferkit bench …` — the benchmark harness.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run benchmarks (kernels on every available backend, and more).",
        subcommands: [
            BenchKernels.self,
            BenchPlanCommand.self,
            BenchSimulator.self,
            BenchQuant.self,
            BenchKVPaging.self,
            GatewayBenchCommand.self,
            BenchModelCommand.self,
            BenchEngineCommand.self,
        ]
    )
}
