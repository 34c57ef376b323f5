// The benchmark harness entry point; shares its code (InferenceKitBenchmarks) with `inferkit bench kernels`.
import ArgumentParser
import InferenceKitBenchmarks

@main
struct InferenceKitBenchmarksRunner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inferkit-benchmarks",
        abstract: "InferenceKit benchmark harness.",
        subcommands: [Kernels.self],
        defaultSubcommand: Kernels.self
    )

    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Time matmul and attention on every available backend.")

        @Flag(help: "Run the small subset (under a minute).")
        var quick = false
        @Option(help: "Also write the results as JSON to this file.")
        var json: String?
        @Option(help: "Also write an SVG bar chart to this file.")
        var svg: String?
        @Option(name: .customLong("backend"), help: "Only this backend (repeatable).")
        var backends: [String] = []
        @Option(help: "Timed runs per row.")
        var repetitions: Int?
        @Option(help: "Complete passes (median over passes).")
        var runs: Int = 1
        @Option(name: .customLong("workload"), help: "Only workloads whose label contains this text (repeatable).")
        var workloads: [String] = []

        func run() throws {
            do {
                try KernelBenchmarkCommand.run(quick: quick, jsonPath: json, svgPath: svg, backendNames: backends, workloadFilters: workloads,
                                               repetitions: repetitions, runs: runs,
                                               command: (["inferkit-benchmarks"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
            } catch let failure as KernelBenchmarkCommand.Failure {
                throw ValidationError(failure.description)
            }
        }
    }
}
