import ArgumentParser
import GatewayServer
import Logging
import Metrics
import Prometheus

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// Shared `--log-level` handling: logs go to stderr so stdout stays machine-readable.
enum CommandLogging {
    static func bootstrap(_ level: String) throws -> Logger.Level {
        guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        return parsed
    }

    static func logger(_ label: String, _ level: Logger.Level) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

/// Prints to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes a line to standard output at once (no buffering), for parent processes waiting on it.
func printFlushed(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// `inferkit gateway --config FILE` — the OpenAI-compatible AI gateway server.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the OpenAI-compatible AI gateway (pools, breakers, retries, rate limits, caches) from a YAML or JSON file.",
        discussion: """
            Serves POST /v1/chat/completions (JSON and SSE), GET /v1/models, /health and /metrics.
            Secrets are read from the environment variables the file names (api_key_env, key_env).
            SIGTERM or SIGINT stops accepting connections and lets in-flight requests finish
            (server.shutdown_grace_seconds). Prints 'listening on http://HOST:PORT' on stdout once ready.
            """
    )

    @Option(name: .long, help: "The configuration file (YAML or JSON).")
    var config: String

    @Option(name: .long, help: "Override server.host from the file.")
    var host: String?

    @Option(name: .long, help: "Override server.port from the file (0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Check the configuration (files, references, environment variables) and exit.")
    var check = false

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Run Swift concurrency on the server's event loops, so a request stays on one thread (lower latency; see GatewayHTTPServer.runConcurrencyOnEventLoops).")
    var eventLoopExecutor = true

    func run() async throws {
        if eventLoopExecutor && !check { GatewayHTTPServer.runConcurrencyOnEventLoops() }
        let level = try CommandLogging.bootstrap(logLevel)
        let file: GatewayServerConfiguration
        do {
            file = try GatewayServerConfiguration.load(path: config)
        } catch let error as GatewayError {
            printError("error: \(error.message)")
            throw ExitCode(2)
        }
        let registry = PrometheusCollectorRegistry()
        if !check { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry)) }
        let server: GatewayHTTPServer
        do {
            server = try GatewayHTTPServer.make(
                configuration: file, environment: ProcessInfo.processInfo.environment,
                overrideHost: host, overridePort: port, registry: registry,
                logger: CommandLogging.logger("inferencekit.gateway", level)
            )
        } catch let error as GatewayError {
            printError("error: \(error.message)")
            throw ExitCode(2)
        }
        if check {
            try await server.shutdownUnstarted()
            print("configuration OK: \(file.models.count) model(s), \(file.upstreams.count) upstream(s), authentication \(file.apiKeys == nil ? "off" : "on")")
            return
        }
        let running: RunningServer
        do {
            running = try await server.start(handleSignals: true)
        } catch let error as GatewayError {
            printError("error: \(error.message)")
            throw ExitCode(1)
        }
        printFlushed("listening on \(running.baseURL)")
        try await running.waitUntilStopped()
    }
}

/// `inferkit mock-upstream` — a fake OpenAI-compatible upstream with scripted faults.
struct MockUpstreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-upstream",
        abstract: "Run a fake OpenAI-compatible upstream with scripted latency, token counts, streaming and fault injection.",
        discussion: """
            Fault probabilities are drawn per request with a seeded generator (reproducible runs), or
            --script gives a fixed cyclic sequence such as ok,ok,429,drop. Prints
            'listening on http://HOST:PORT' on stdout once ready; GET /mock/stats returns counters.
            """
    )

    @Option(name: .long, help: "Address to bind.") var host = "127.0.0.1"
    @Option(name: .long, help: "Port (0 picks a free one).") var port = 8001
    @Option(name: .long, help: "Name reported in the x-upstream header.") var name = "mock"
    @Option(name: .long, parsing: .upToNextOption, help: "Models accepted (default: any).") var models: [String] = []
    @Option(name: .long, help: "Milliseconds before the first token (non-streaming: before the answer).") var ttftMs = 0.0
    @Option(name: .long, help: "Milliseconds between streamed tokens.") var itlMs = 0.0
    @Option(name: .long, help: "Completion tokens per answer (capped by max_tokens).") var tokens = 16
    @Option(name: .long, help: "Reported prompt tokens (default: UTF-8 bytes / 4).") var promptTokens: Int?
    @Option(name: .customLong("rate-429"), help: "Probability of 429 with Retry-After.") var rate429 = 0.0
    @Option(name: .customLong("rate-500"), help: "Probability of 500.") var rate500 = 0.0
    @Option(name: .customLong("rate-503"), help: "Probability of 503.") var rate503 = 0.0
    @Option(name: .long, help: "Probability of hanging for --hang-ms (a timeout for the caller).") var rateTimeout = 0.0
    @Option(name: .long, help: "Probability of closing the connection without an answer.") var rateDrop = 0.0
    @Option(name: .long, help: "Probability of cutting a stream half way.") var rateCut = 0.0
    @Option(name: .long, help: "Retry-After of injected 429s, milliseconds.") var retryAfterMs = 1000.0
    @Option(name: .long, help: "How long a timeout fault hangs, milliseconds.") var hangMs = 30_000.0
    @Option(name: .long, help: "Comma-separated cyclic fault script: ok, 429, 500, 503, timeout, drop, cut.") var script: String?
    @Option(name: .long, help: "Seed of the fault generator.") var seed: UInt64 = 0x5EED
    @Option(name: .long, help: "Environment variable holding the API key clients must send.") var apiKeyEnv: String?
    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func run() async throws {
        let level = try CommandLogging.bootstrap(logLevel)
        var faultScript: [MockFault]?
        if let script {
            faultScript = try script.split(separator: ",").map { item in
                guard let fault = MockFault(rawValue: item.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown fault '\(item)' in --script: use ok, 429, 500, 503, timeout, drop or cut")
                }
                return fault
            }
        }
        var apiKey: String?
        if let apiKeyEnv {
            guard let value = ProcessInfo.processInfo.environment[apiKeyEnv], !value.isEmpty else {
                throw ValidationError("environment variable \(apiKeyEnv) is not set")
            }
            apiKey = value
        }
        func ms(_ value: Double, _ flag: String) throws -> Duration {
            guard value.isFinite, value >= 0, value <= 86_400_000 else { throw ValidationError("\(flag) must be in 0…86,400,000 ms") }
            return .milliseconds(Int64(value.rounded()))
        }
        let configuration = MockUpstreamConfiguration(
            host: host, port: port, name: name, models: models,
            firstTokenLatency: try ms(ttftMs, "--ttft-ms"), interTokenLatency: try ms(itlMs, "--itl-ms"),
            completionTokens: tokens, promptTokens: promptTokens,
            faults: MockFaultProfile(
                rateLimited: rate429, serverError: rate500, unavailable: rate503, timeout: rateTimeout, drop: rateDrop,
                midStreamDrop: rateCut, retryAfter: try ms(retryAfterMs, "--retry-after-ms"), hangDuration: try ms(hangMs, "--hang-ms"),
                script: faultScript
            ),
            seed: seed, apiKey: apiKey
        )
        let mock: MockUpstream
        do {
            mock = try MockUpstream(configuration: configuration, logger: CommandLogging.logger("inferkit.mock-upstream", level))
            try await mock.start(handleSignals: true)
        } catch let error as GatewayError {
            printError("error: \(error.message)")
            throw ExitCode(2)
        }
        printFlushed("listening on \(mock.baseURL ?? "?")")
        try await mock.waitUntilStopped()
        let s = mock.statistics
        printError("mock-upstream: \(s.requests) requests, \(s.answered) answered, faults \(s.faults.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " "))")
    }
}

/// `inferkit loadtest URL` — a load generator for OpenAI-compatible endpoints.
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Load-test an OpenAI-compatible endpoint: TTFT, ITL, TPOT, E2E percentiles, throughput and errors.",
        discussion: """
            Closed loop (--concurrency N) or open loop (--rate R requests/s). The run is bounded by
            --requests and/or --duration. Definitions follow vLLM's serving benchmark:
            TPOT = (E2E − TTFT) / (output tokens − 1); ITL pools every gap between streamed chunks;
            percentiles interpolate linearly (NumPy's default).
            """
    )

    @Argument(help: "Base URL (http://127.0.0.1:8080, …/v1) or the full chat-completions URL.")
    var url: String
    @Option(name: .long, help: "Environment variable holding the API key (sent as Bearer).") var apiKeyEnv: String?
    @Option(name: .long, help: "Model name.") var model = "mock-model"
    @Option(name: .long, help: "User message of every request.") var prompt = "Say hello in five words."
    @Option(name: .long, help: "max_tokens of every request.") var maxTokens: Int?
    @Flag(name: .long, help: "Stream (SSE) and measure TTFT, ITL and TPOT.") var stream = false
    @Option(name: .long, help: "Requests in flight (closed loop).") var concurrency: Int?
    @Option(name: .long, help: "Requests started per second (open loop).") var rate: Double?
    @Option(name: .long, help: "In-flight cap for --rate.") var maxInFlight = 256
    @Option(name: .long, help: "Number of measured requests.") var requests: Int?
    @Option(name: .long, help: "Seconds to keep starting requests.") var duration: Double?
    @Option(name: .long, help: "Per-request timeout, seconds.") var timeout = 60.0
    @Option(name: .long, help: "Unmeasured warm-up requests first.") var warmup = 0
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func run() async throws {
        var apiKey: String?
        if let apiKeyEnv {
            guard let value = ProcessInfo.processInfo.environment[apiKeyEnv], !value.isEmpty else {
                throw ValidationError("environment variable \(apiKeyEnv) is not set")
            }
            apiKey = value
        }
        if concurrency != nil && rate != nil { throw ValidationError("give --concurrency or --rate, not both") }
        let pacing: LoadTestConfiguration.Pacing = rate.map { .rate(perSecond: $0, maximumInFlight: maxInFlight) } ?? .concurrency(concurrency ?? 1)
        if let duration, !(duration.isFinite && duration > 0) { throw ValidationError("--duration must be positive") }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be positive") }
        let configuration = LoadTestConfiguration(
            url: url, apiKey: apiKey, model: model, prompt: prompt, maxTokens: maxTokens, stream: stream, pacing: pacing,
            requestCount: requests ?? (duration == nil ? 100 : nil), duration: duration.map { .seconds(double: $0) },
            requestTimeout: .seconds(double: timeout), warmupRequests: warmup
        )
        let generator: LoadGenerator
        do {
            generator = try LoadGenerator(configuration: configuration)
        } catch let error as GatewayError {
            throw ValidationError(error.message)
        }
        let report = try await generator.run { done in printError("… \(done) requests finished") }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.renderTable())
        }
    }
}

// MARK: - inferkit bench gateway

/// A child process (`inferkit mock-upstream` or `inferkit gateway`) that prints
/// `listening on URL` when ready.
final class ChildServer {
    let process: Process
    let url: String
    let name: String

    init(name: String, arguments: [String], logPath: String) throws {
        self.name = name
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        var line = Data()
        let reader = stdout.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let data = reader.availableData
            if data.isEmpty { break }
            line.append(data)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("listening on ") else {
            process.terminate()
            throw ValidationError("\(name) did not start (see \(logPath)): \(text)")
        }
        self.process = process
        self.url = String(text.dropFirst("listening on ".count))
    }

    /// Resident and peak resident memory in KiB, from /proc.
    func memory() -> (rss: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// User + system CPU seconds used so far, from /proc/PID/stat (clock ticks of 1/100 s).
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return .nan }
        // Fields after the command name: state is field 3, utime 14, stime 15 (1-based).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// What the gateway benchmark measured.
struct GatewayBenchResult: Codable {
    struct Pair: Codable {
        var direct: Double
        var gateway: Double
    }
    var machine: String
    var repeats: Int
    var latencyRequestsPerRun: Int
    /// Per repeat, client-measured E2E percentiles in milliseconds at one connection.
    var latencyP50: [Pair]
    var latencyP99: [Pair]
    var addedP50MedianMs: Double
    var addedP99MedianMs: Double
    var throughputConcurrency: Int
    var throughputSeconds: Double
    var throughput: [Pair]
    /// CPU time per request of the serving process (mock for direct runs, gateway for gateway runs), microseconds.
    var cpuPerRequestMicroseconds: [Pair]
    var gatewayThroughputMedian: Double
    var directThroughputMedian: Double
    var faultRequests: Int
    var faultReport: LoadTestReport?
    var faultyUpstreamRequests: Int
    var faultsInjected: [String: Int]
    var rssBeforeKiB: Int
    var rssAfterKiB: Int
    var peakRSSKiB: Int
}

struct GatewayBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Benchmark the gateway against a mock upstream on loopback (added latency, throughput, fault tolerance, memory).",
        discussion: """
            Starts `inferkit mock-upstream` and `inferkit gateway` as separate processes of this
            executable, and drives them from this process. Baseline: the same load sent directly
            to the mock in the same run (alternating direct/gateway runs). Build in release mode.
            """
    )

    @Option(name: .long, help: "Repetitions of the latency and throughput comparisons.") var repeats = 5
    @Option(name: .long, help: "Requests per latency run (one connection).") var latencyRequests = 2000
    @Option(name: .long, help: "Seconds per throughput run.") var throughputSeconds = 5.0
    @Option(name: .long, help: "Connections for the throughput runs.") var throughputConcurrency = 32
    @Option(name: .long, help: "Requests in the fault-injection run.") var faultRequests = 20_000
    @Option(name: .long, help: "Connections in the fault-injection run.") var faultConcurrency = 32
    @Flag(name: .long, help: "Small sizes for a smoke run.") var quick = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func run() async throws {
        let repeats = quick ? 2 : max(1, self.repeats)
        let latencyRequests = quick ? 300 : max(100, self.latencyRequests)
        let throughputSeconds = quick ? 1.0 : max(0.5, self.throughputSeconds)
        let faultRequests = quick ? 2000 : max(100, self.faultRequests)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inferkit-gateway-bench-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        var children: [ChildServer] = []
        defer { for child in children.reversed() { child.stop() } }

        printError("starting mock upstream and gateway (logs in \(directory.path))")
        let mock = try ChildServer(name: "mock", arguments: ["mock-upstream", "--port", "0", "--log-level", "error", "--name", "healthy"], logPath: path("mock.log"))
        children.append(mock)
        let config = """
            server: { port: 0 }
            upstreams:
              - { id: mock, type: openai, base_url: "\(mock.url)/v1" }
            models:
              - name: mock-model
                backends: [ { upstream: mock } ]
            """
        try config.write(toFile: path("gateway.yaml"), atomically: true, encoding: .utf8)
        let gateway = try ChildServer(name: "gateway", arguments: ["gateway", "--config", path("gateway.yaml"), "--log-level", "error"], logPath: path("gateway.log"))
        children.append(gateway)

        func load(_ url: String, _ pacing: LoadTestConfiguration.Pacing, count: Int? = nil, seconds: Double? = nil, warmup: Int) async throws -> LoadTestReport {
            try await LoadGenerator(configuration: .init(
                url: url, pacing: pacing, requestCount: count, duration: seconds.map { .seconds(double: $0) },
                requestTimeout: .seconds(30), warmupRequests: warmup
            )).run()
        }

        // 1. Added latency at one connection: requests alternate direct / gateway one by one, so
        //    noise from other processes on this shared machine hits both paths alike.
        var p50: [GatewayBenchResult.Pair] = []
        var p99: [GatewayBenchResult.Pair] = []
        for r in 0..<repeats {
            printError("latency run \(r + 1)/\(repeats)")
            let targets = try [mock.url, gateway.url].map { url in
                try LoadGenerator(configuration: .init(url: url, requestCount: latencyRequests, requestTimeout: .seconds(30)))
            }
            let reports = try await LoadGenerator.interleaved(targets, rounds: latencyRequests, warmupRounds: 200)
            let (direct, viaGateway) = (reports[0], reports[1])
            guard let d = direct.endToEnd, let g = viaGateway.endToEnd, direct.failed == 0, viaGateway.failed == 0 else {
                throw ValidationError("a latency run had failures: direct \(direct.errors), gateway \(viaGateway.errors)")
            }
            p50.append(.init(direct: d.p50 * 1000, gateway: g.p50 * 1000))
            p99.append(.init(direct: d.p99 * 1000, gateway: g.p99 * 1000))
        }

        // 2. Throughput with many connections.
        var throughput: [GatewayBenchResult.Pair] = []
        var cpu: [GatewayBenchResult.Pair] = []
        for r in 0..<repeats {
            printError("throughput run \(r + 1)/\(repeats)")
            let c = LoadTestConfiguration.Pacing.concurrency(throughputConcurrency)
            let mockCPU0 = mock.cpuSeconds()
            let direct = try await load(mock.url, c, seconds: throughputSeconds, warmup: 0)
            let mockCPU1 = mock.cpuSeconds()
            let gatewayCPU0 = gateway.cpuSeconds()
            let viaGateway = try await load(gateway.url, c, seconds: throughputSeconds, warmup: 500)
            let gatewayCPU1 = gateway.cpuSeconds()
            throughput.append(.init(direct: direct.requestsPerSecond, gateway: viaGateway.requestsPerSecond))
            cpu.append(.init(
                direct: (mockCPU1 - mockCPU0) / Double(max(1, direct.requests)) * 1e6,
                gateway: (gatewayCPU1 - gatewayCPU0) / Double(max(1, viaGateway.requests + 500)) * 1e6
            ))
        }
        gateway.stop()
        mock.stop()

        // 3. Fault injection: one upstream with 30 % faults, one healthy, a lenient breaker so the
        //    faulty upstream keeps taking (and failing) its share of first attempts.
        printError("fault-injection run: \(faultRequests) requests")
        let faulty = try ChildServer(name: "faulty", arguments: [
            "mock-upstream", "--port", "0", "--log-level", "error", "--name", "faulty",
            "--rate-429", "0.10", "--rate-500", "0.05", "--rate-503", "0.05", "--rate-drop", "0.05",
            "--rate-timeout", "0.05", "--hang-ms", "2000", "--retry-after-ms", "1000",
        ], logPath: path("faulty.log"))
        children.append(faulty)
        let healthy = try ChildServer(name: "healthy", arguments: ["mock-upstream", "--port", "0", "--log-level", "error", "--name", "healthy"], logPath: path("healthy.log"))
        children.append(healthy)
        let faultConfig = """
            server: { port: 0 }
            upstreams:
              - { id: faulty, type: openai, base_url: "\(faulty.url)/v1" }
              - { id: healthy, type: openai, base_url: "\(healthy.url)/v1" }
            models:
              - name: mock-model
                strategy: round_robin
                backends: [ { upstream: faulty }, { upstream: healthy } ]
            retry: { max_attempts: 4, time_budget_seconds: 20, attempt_timeout_seconds: 0.5, initial_backoff_seconds: 0.005, max_backoff_seconds: 0.05 }
            circuit_breaker: { failure_threshold: 1000000, failure_rate_threshold: 0.95, minimum_requests: 1000, honour_retry_after: false, trip_seconds: 1 }
            """
        try faultConfig.write(toFile: path("gateway-faults.yaml"), atomically: true, encoding: .utf8)
        let faultGateway = try ChildServer(name: "gateway", arguments: ["gateway", "--config", path("gateway-faults.yaml"), "--log-level", "error"], logPath: path("gateway-faults.log"))
        children.append(faultGateway)
        _ = try await load(faultGateway.url, .concurrency(faultConcurrency), count: 2000, warmup: 0)
        let before = faultGateway.memory()
        let faultReport = try await load(faultGateway.url, .concurrency(faultConcurrency), count: faultRequests, warmup: 0)
        let after = faultGateway.memory()
        let stats = try await fetchStats(faulty.url)

        let result = GatewayBenchResult(
            machine: Self.machine(),
            repeats: repeats, latencyRequestsPerRun: latencyRequests,
            latencyP50: p50, latencyP99: p99,
            addedP50MedianMs: median(p50.map { $0.gateway - $0.direct }),
            addedP99MedianMs: median(p99.map { $0.gateway - $0.direct }),
            throughputConcurrency: throughputConcurrency, throughputSeconds: throughputSeconds, throughput: throughput,
            cpuPerRequestMicroseconds: cpu,
            gatewayThroughputMedian: median(throughput.map(\.gateway)), directThroughputMedian: median(throughput.map(\.direct)),
            faultRequests: faultRequests, faultReport: faultReport,
            faultyUpstreamRequests: stats.requests, faultsInjected: stats.faults,
            rssBeforeKiB: before.rss, rssAfterKiB: after.rss, peakRSSKiB: after.peak
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(Self.render(result))
        }
    }

    func fetchStats(_ url: String) async throws -> MockUpstream.RemoteStatistics {
        try await MockUpstream.remoteStatistics(baseURL: url)
    }

    static func machine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    static func render(_ r: GatewayBenchResult) -> String {
        func f(_ v: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", v) }
        var out = "machine: \(r.machine)\n\n"
        out += "| run | direct p50 (ms) | gateway p50 (ms) | added p50 | direct p99 (ms) | gateway p99 (ms) | added p99 |\n|---|---|---|---|---|---|---|\n"
        for (i, (a, b)) in zip(r.latencyP50, r.latencyP99).enumerated() {
            out += "| \(i + 1) | \(f(a.direct)) | \(f(a.gateway)) | \(f(a.gateway - a.direct)) | \(f(b.direct)) | \(f(b.gateway)) | \(f(b.gateway - b.direct)) |\n"
        }
        out += "\nmedian added latency at 1 connection (\(r.latencyRequestsPerRun) requests per run): p50 \(f(r.addedP50MedianMs)) ms, p99 \(f(r.addedP99MedianMs)) ms\n\n"
        out += "| run | direct req/s | gateway req/s | mock CPU µs/req | gateway CPU µs/req |\n|---|---|---|---|---|\n"
        for (i, (t, c)) in zip(r.throughput, r.cpuPerRequestMicroseconds).enumerated() {
            out += "| \(i + 1) | \(f(t.direct, 0)) | \(f(t.gateway, 0)) | \(f(c.direct, 0)) | \(f(c.gateway, 0)) |\n"
        }
        out += "\nmedian throughput at \(r.throughputConcurrency) connections: gateway \(f(r.gatewayThroughputMedian, 0)) req/s, direct \(f(r.directThroughputMedian, 0)) req/s\n"
        let gatewayCPU = r.cpuPerRequestMicroseconds.map(\.gateway).sorted()[r.cpuPerRequestMicroseconds.count / 2]
        out += "median gateway CPU per request: \(f(gatewayCPU, 0)) µs (all cores together) → at most \(f(2e6 / gatewayCPU, 0)) req/s on 2 idle cores for the gateway alone\n\n"
        if let fr = r.faultReport {
            out += "fault run: \(fr.requests) requests, \(fr.succeeded) succeeded (\(f(fr.successRate * 100, 3)) %), failed \(fr.failed) \(fr.errors), "
            out += "\(f(fr.requestsPerSecond, 0)) req/s, E2E p50 \(f((fr.endToEnd?.p50 ?? 0) * 1000)) ms p99 \(f((fr.endToEnd?.p99 ?? 0) * 1000)) ms\n"
        }
        out += "faulty upstream: \(r.faultyUpstreamRequests) requests, faults injected \(r.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\n"
        out += "gateway RSS before \(r.rssBeforeKiB) KiB, after \(r.rssAfterKiB) KiB, peak \(r.peakRSSKiB) KiB\n"
        return out
    }
}
