import ArgumentParser
import InferenceKitBenchmarks

/// `inferkit bench kernels` — matmul and attention on every available backend against raw sgemm and memory bandwidth.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time matmul and attention on every available backend (reference, BLAS, OpenCL).",
        discussion: """
        Baselines measured in the same run: raw cblas_sgemm on the same buffers, one sgemm with the FLOPs of \
        each prefill attention, and the machine's memory bandwidth (2 threads). Prints a table with GFLOP/s, \
        GB/s and the ratios the kernels are held to; rows are medians of interleaved repetitions.
        """
    )

    @Flag(help: "Run the small subset (under a minute).")
    var quick = false

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(help: "Also write a bar chart (GFLOP/s per shape and backend) as SVG to this file.")
    var svg: String?

    @Option(name: .customLong("backend"), help: "Only this backend (repeatable): blas, opencl, reference.")
    var backends: [String] = []

    @Option(help: "Timed runs per row (default 3 with --quick, else 7).")
    var repetitions: Int?

    @Option(help: "Complete passes over the workloads (rows and ratios report the median over passes).")
    var runs: Int = 1

    @Option(name: .customLong("workload"), help: "Only workloads whose label contains this text (repeatable), e.g. 'decode' or '4096³'.")
    var workloads: [String] = []

    func run() throws {
        do {
            try KernelBenchmarkCommand.run(quick: quick, jsonPath: json, svgPath: svg, backendNames: backends, workloadFilters: workloads,
                                           repetitions: repetitions, runs: runs, command: (["inferkit"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
        } catch let failure as KernelBenchmarkCommand.Failure {
            throw ValidationError(failure.description)
        }
    }
}
