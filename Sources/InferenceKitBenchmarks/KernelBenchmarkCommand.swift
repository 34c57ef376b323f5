import Foundation
import TensorCore

/// The shared body of `inferkit bench kernels` and `inferkit-benchmarks kernels`: run, print the table,
/// write the JSON and SVG files asked for.
public enum KernelBenchmarkCommand {
    /// Errors of the command line (bad options, unwritable files).
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - backendNames: only these backends (by provider name); empty for all.
    ///   - workloadFilters: only workloads (of the full suite) whose label contains one of these; empty for the suite `quick` selects.
    ///   - repetitions: override of the timed runs per row (≥ 3).
    public static func run(quick: Bool, jsonPath: String?, svgPath: String?, backendNames: [String], workloadFilters: [String] = [], repetitions: Int?, runs: Int = 1,
                           command: String) throws {
        var backends = BenchmarkBackend.standard
        if !backendNames.isEmpty {
            let wanted = Set(backendNames.map { $0.lowercased() })
            let known = Set(backends.map(\.name))
            if let unknown = wanted.subtracting(known).sorted().first {
                throw Failure(description: "unknown backend '\(unknown)'; choose from \(known.sorted().joined(separator: ", "))")
            }
            backends = backends.filter { wanted.contains($0.name) }
        }
        var config = KernelBenchmarkConfiguration(quick: quick, backends: backends, command: command)
        if !workloadFilters.isEmpty {
            config.workloads = KernelWorkload.fullSuite.filter { w in workloadFilters.contains { w.label.localizedCaseInsensitiveContains($0) } }
            if config.workloads.isEmpty {
                throw Failure(description: "no workload matches \(workloadFilters); labels are: \(KernelWorkload.fullSuite.map(\.label).joined(separator: ", "))")
            }
        }
        guard (1...100).contains(runs) else {
            throw Failure(description: "--runs is \(runs); pass 1…100")
        }
        config.runs = runs
        if let repetitions {
            guard (3...1000).contains(repetitions) else {
                throw Failure(description: "--repetitions is \(repetitions); pass 3…1000 (the median needs at least 3)")
            }
            config.repetitions = repetitions
        }
        let report = KernelBenchmark(configuration: config).run { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        print(report.table())
        if let jsonPath { try write(report.jsonData(), to: jsonPath) }
        if let svgPath { try write(Data(report.svg().utf8), to: svgPath) }
    }

    private static func write(_ data: Data, to path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            throw Failure(description: "cannot write \(path): \(error.localizedDescription); check that the directory exists and is writable")
        }
    }
}
