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

    func run() async throws {
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
