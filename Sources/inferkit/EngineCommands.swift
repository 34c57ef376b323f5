import ArgumentParser
import CInferenceKitBLAS
import Engine
import EngineBenchmarks
import Foundation
import ModelRuntime
import Quantization
import Scheduling
import Tokenization

extension ModelCLI {
    /// Loads a model on a thread of its own (loading computes for seconds; async commands must not
    /// hold a cooperative-pool thread that long).
    static func loadOffPool(_ path: String) async throws -> (LlamaModel, seconds: Double) {
        let (model, seconds) = try await offPool { () -> (LlamaModel, Double) in try load(path) }
        return (model, seconds)
    }

    static func numbers<T: LosslessStringConvertible>(_ list: String, _ flag: String) throws -> [T] {
        let parts = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { T($0) }
        guard !values.isEmpty, values.count == parts.count else { throw ValidationError("\(flag) \(list): give a comma-separated list of numbers") }
        return values
    }
}

/// `inferkit generate --parallel N …`: N requests at once through the engine.
enum ParallelGeneration {
    static func run(_ c: GenerateCommand) async throws {
        try QuantCLI.selectISA(c.isa)
        openblas_set_num_threads(1)
        let (model, _) = try await ModelCLI.loadOffPool(c.model)
        var prompts: [[Int]] = []
        do {
            if let file = c.promptsFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("cannot read --prompts-file \(file); give a UTF-8 text file with one user message per line")
                }
                for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                    var messages: [ChatMessage] = []
                    if let system = c.system { messages.append(ChatMessage(role: "system", content: system)) }
                    messages.append(ChatMessage(role: "user", content: String(line)))
                    prompts.append(try model.chatPrompt(messages))
                }
                guard !prompts.isEmpty else { throw ValidationError("--prompts-file \(file) has no non-empty line") }
            } else if let chat = c.chat {
                var messages: [ChatMessage] = []
                if let system = c.system { messages.append(ChatMessage(role: "system", content: system)) }
                messages.append(ChatMessage(role: "user", content: chat))
                prompts = [try model.chatPrompt(messages)]
            } else {
                prompts = [model.tokenizer.encode(c.prompt!, addSpecialTokens: true, parseSpecialTokens: true)]
            }
        } catch let e as ValidationError { throw e } catch { throw ValidationError("\(error)") }
        let count = max(c.parallel, c.promptsFile == nil ? 1 : prompts.count)
        let longest = prompts.map(\.count).max()!
        let engine: InferenceEngine
        do {
            engine = try InferenceEngine(model: model, configuration: EngineConfiguration(
                threads: c.threads, kvCacheTokens: max(count * (longest + c.maxTokens), 1024), contextLength: min(c.context, model.configuration.contextLength),
                limits: SchedulerLimits(maxNumSeqs: min(count, 256), maxBatchedTokens: 512), modelName: model.displayName))
        } catch { throw ValidationError("\(error)") }
        let start = DispatchTime.now().uptimeNanoseconds
        var streams: [GenerationStream] = []
        do {
            for i in 0..<count {
                let sampling = SamplingParameters(
                    temperature: c.greedy ? 0 : c.temperature, topK: c.topK, topP: c.topP, minP: c.minP, repetitionPenalty: c.repetitionPenalty,
                    presencePenalty: c.presencePenalty, frequencyPenalty: c.frequencyPenalty, seed: c.seed.map { $0 &+ UInt64(i) })
                let parameters = GenerationParameters(sampling: sampling, maxTokens: c.maxTokens, minTokens: c.minTokens, stop: c.stop, ignoreEOS: c.ignoreEOS)
                streams.append(try engine.generate(EngineRequest(promptTokens: prompts[i % prompts.count], parameters: parameters)))
            }
        } catch { throw ValidationError("\(error)") }
        let tty = ModelCLI.stderrIsTerminal
        if !tty { ModelCLI.note("generating \(count) requests") }
        let results = try await withThrowingTaskGroup(of: (Int, String, GenerationCompletion?).self) { group in
            for (i, s) in streams.enumerated() {
                group.addTask {
                    var text = ""
                    var done: GenerationCompletion?
                    for try await e in s {
                        switch e {
                        case let .token(t, _): text += t.text
                        case let .finished(f): text += f.trailingText; done = f
                        }
                    }
                    return (i, text, done)
                }
            }
            var out = [(String, GenerationCompletion?)](repeating: ("", nil), count: count)
            var finished = 0
            for try await (i, text, done) in group {
                out[i] = (text, done)
                finished += 1
                if tty { FileHandle.standardError.write(Data("\r\(finished)/\(count) done".utf8)) }
            }
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            return out
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stats = engine.statistics()
        await engine.shutdown()
        let generated = results.reduce(0) { $0 + ($1.1?.completionTokens ?? 0) }
        if c.json {
            let items: [[String: Any]] = results.enumerated().map { i, r in
                ["index": i, "text": r.0, "finish_reason": r.1?.finishReason.rawValue ?? "error", "prompt_tokens": r.1?.promptTokens ?? 0,
                 "completion_tokens": r.1?.completionTokens ?? 0, "ttft_s": r.1?.timeToFirstToken ?? 0, "latency_s": r.1?.latency ?? 0]
            }
            print(try ModelCLI.json(["model": model.displayName, "results": items, "seconds": seconds, "tokens_per_s": Double(generated) / seconds,
                                     "steps": stats.steps, "preemptions": stats.preemptions, "prefix_cache_hit_tokens": stats.prefixCacheHitTokens,
                                     "threads": c.threads, "isa": ISA.active.name]))
        } else {
            for (i, r) in results.enumerated() {
                print("[\(i)] \(r.0)")
            }
            ModelCLI.note(String(format: "[%d requests, %d tokens in %.2f s: %.1f t/s in all; %d steps, %d prompt tokens from the prefix cache, %d preemptions]",
                                 count, generated, seconds, Double(generated) / seconds, stats.steps, stats.prefixCacheHitTokens, stats.preemptions))
        }
    }
}

/// `inferkit bench engine MODEL.gguf`
struct BenchEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Aggregate throughput of the continuous-batching engine at fixed concurrency, and Poisson workloads per policy (build with -c release).",
        discussion: """
            Throughput (default): for each --npl value, that many requests of -p random prompt tokens and -n output tokens \
            (EOS ignored, greedy) are submitted together, as llama-batched-bench -npp P -ntg N -npl … does. The run is split \
            where the last request produced its first token: S_PP = all prompt tokens over that time; S_TG = tokens generated \
            after it over the rest. Each point runs --reps times (median reported). \
            --workload: open-loop Poisson arrivals at each --rates value (requests/s) with log-normal prompt and output \
            lengths, under each --policies entry, reporting TTFT, TPOT, throughput, goodput under --slo-ttft/--slo-tpot, \
            preemptions, and peak K/V blocks in use against a contiguous reservation of the same requests.
            """
    )

    @Argument(help: "A GGUF model file.") var model: String
    @Option(help: "Concurrent sequences, comma-separated.") var npl = "1,4,8,16,32,64"
    @Option(name: .short, help: "Prompt tokens per sequence.") var p = 128
    @Option(name: .short, help: "Generated tokens per sequence.") var n = 128
    @Option(name: .short, help: "Repetitions per point (median).") var r = 3
    @Option(name: .short, help: "Threads.") var t = 2
    @Option(help: "Kernel path: avx512-vnni, avx2 or scalar.") var isa: String?
    @Flag(help: "Run the Poisson workloads instead of the throughput points.") var workload = false
    @Flag(help: "Measure prompt-lookup speculative decoding on a repetitive and a non-repetitive prompt instead.") var speculation = false
    @Option(help: "Draft tokens per step with --speculation.") var lookahead = 4
    @Option(help: "Arrival rates in requests/s, comma-separated (--workload).") var rates = "0.5,1,2"
    @Option(help: "Requests per workload run.") var requests = 32
    @Option(help: "Policies to compare: continuous, static, dynamic, none, priority.") var policies = "continuous,static,none"
    @Option(name: .customLong("prompt-median"), help: "Median prompt length (log-normal, σ 0.8, 16 … 512).") var promptMedian = 128.0
    @Option(name: .customLong("output-median"), help: "Median output length (log-normal, σ 0.6, 8 … 256).") var outputMedian = 64.0
    @Option(name: .customLong("slo-ttft"), help: "TTFT objective in seconds for goodput.") var sloTTFT = 2.0
    @Option(name: .customLong("slo-tpot"), help: "TPOT objective in seconds for goodput.") var sloTPOT = 0.1
    @Option(help: "Seed of the workload.") var seed: UInt64 = 42
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard p >= 1, n >= 2, p + n <= 8192 else { throw ValidationError("-p \(p) -n \(n): use p ≥ 1, n ≥ 2, p + n ≤ 8192") }
        guard r >= 1, r <= 100 else { throw ValidationError("-r \(r): use 1 … 100") }
        guard t >= 1, t <= 1024 else { throw ValidationError("-t \(t): use 1 … 1024") }
        guard requests >= 1, requests <= 100_000 else { throw ValidationError("--requests \(requests): use 1 … 100000") }
    }

    func run() async throws {
        try QuantCLI.selectISA(isa)
        openblas_set_num_threads(1)
        let (m, _) = try await ModelCLI.loadOffPool(model)
        if speculation { try await runSpeculation(m) } else if workload { try await runWorkloads(m) } else { try await runThroughput(m) }
    }

    func runSpeculation(_ m: LlamaModel) async throws {
        let code = """
            def moving_average(values, window):
                if window <= 0:
                    raise ValueError("window must be positive")
                result = []
                total = 0.0
                for i, v in enumerate(values):
                    total += v
                    if i >= window:
                        total -= values[i - window]
                    if i >= window - 1:
                        result.append(total / window)
                return result
            """
        let cases: [(String, String)] = [
            ("repeats its context (rename a variable in code)", "Rewrite this Python function with the variable `total` renamed to `running_sum`. Return only the code.\n\n" + code),
            ("does not (open question)", "Write a short story about a lighthouse keeper who finds a message in a bottle."),
        ]
        var results: [EngineBenchmark.SpeculationResult] = []
        for (name, text) in cases {
            let prompt: [Int]
            do { prompt = try m.chatPrompt([ChatMessage(role: "user", content: text)]) } catch { throw ValidationError("\(error)") }
            do {
                results.append(try await EngineBenchmark.speculation(model: m, threads: t, workload: name, prompt: prompt, maxTokens: n, lookahead: lookahead, repetitions: r))
            } catch { throw ValidationError("\(error)") }
            ModelCLI.note("\(name): done")
        }
        if json {
            let items: [[String: Any]] = results.map {
                ["workload": $0.workload, "tokens": $0.tokens, "plain_tps": $0.plainTokensPerSecond, "speculative_tps": $0.speculativeTokensPerSecond,
                 "speedup": $0.speedup, "draft_tokens": $0.draftTokens, "accepted_draft_tokens": $0.acceptedDraftTokens,
                 "acceptance_rate": $0.acceptanceRate, "identical": $0.identical]
            }
            print(try ModelCLI.json(["model": m.displayName, "threads": t, "isa": ISA.active.name, "lookahead": lookahead, "results": items]))
            return
        }
        print("\(m.displayName), \(t) threads, \(ISA.active.name), greedy, \(n) tokens, γ = \(lookahead), median of \(r)")
        print("| workload | plain t/s | speculative t/s | speed-up | drafts | accepted | acceptance | same tokens |")
        print("|---|---|---|---|---|---|---|---|")
        for x in results {
            print(String(format: "| %@ | %.1f | %.1f | %.2f× | %d | %d | %.0f %% | %@ |", x.workload, x.plainTokensPerSecond, x.speculativeTokensPerSecond,
                         x.speedup, x.draftTokens, x.acceptedDraftTokens, x.acceptanceRate * 100, x.identical ? "yes" : "NO"))
        }
    }

    func runThroughput(_ m: LlamaModel) async throws {
        let points: [Int] = try ModelCLI.numbers(npl, "--npl")
        guard points.allSatisfy({ $0 >= 1 && $0 <= 256 }) else { throw ValidationError("--npl \(npl): each value must be 1 … 256") }
        var rows: [EngineBenchmark.ThroughputPoint] = []
        for k in points {
            var runs: [EngineBenchmark.ThroughputPoint] = []
            for rep in 0..<r {
                do {
                    runs.append(try await EngineBenchmark.throughput(model: m, threads: t, parallel: k, promptTokens: p, outputTokens: n, seed: UInt64(rep + 1)))
                } catch { throw ValidationError("\(error)") }
                if !json && ModelCLI.stderrIsTerminal { FileHandle.standardError.write(Data("\rnpl \(k): run \(rep + 1)/\(r)".utf8)) }
            }
            if !json && ModelCLI.stderrIsTerminal { FileHandle.standardError.write(Data("\r".utf8)) }
            // The median by decode throughput (S_TG), the figure the comparison is about.
            rows.append(runs.sorted { $0.decodeTokensPerSecond < $1.decodeTokensPerSecond }[runs.count / 2])
            if !ModelCLI.stderrIsTerminal { ModelCLI.note("npl \(k) done") }
        }
        let base = rows.first { $0.parallel == 1 }?.decodeTokensPerSecond
        if json {
            let items: [[String: Any]] = rows.map {
                ["npl": $0.parallel, "pp": $0.promptTokens, "tg": $0.outputTokens, "t_pp_s": $0.prefillSeconds, "s_pp": $0.prefillTokensPerSecond,
                 "t_tg_s": $0.decodeSeconds, "s_tg": $0.decodeTokensPerSecond, "s": $0.totalTokensPerSecond, "steps": $0.steps]
            }
            print(try ModelCLI.json(["model": m.displayName, "threads": t, "isa": ISA.active.name, "reps": r, "points": items]))
            return
        }
        print("\(m.displayName), \(t) threads, \(ISA.active.name), median of \(r)")
        print("|   PP |   TG |   B |  T_PP s |   S_PP t/s |  T_TG s |   S_TG t/s | × npl 1 |      S t/s |")
        print("|------|------|-----|---------|------------|---------|------------|---------|------------|")
        for x in rows {
            let scale = QuantCLI.lpad(base.map { String(format: "%.2f", x.decodeTokensPerSecond / $0) } ?? "–", 7)
            print(String(format: "| %4d | %4d | %3d | %7.3f | %10.1f | %7.3f | %10.1f | ", x.promptTokens, x.outputTokens, x.parallel,
                         x.prefillSeconds, x.prefillTokensPerSecond, x.decodeSeconds, x.decodeTokensPerSecond)
                  + scale + String(format: " | %10.1f |", x.totalTokensPerSecond))
        }
    }

    func runWorkloads(_ m: LlamaModel) async throws {
        let rateList: [Double] = try ModelCLI.numbers(rates, "--rates")
        guard rateList.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw ValidationError("--rates \(rates): each rate must be > 0") }
        var policyList: [any BatchingPolicy] = []
        for name in policies.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            switch name {
            case "continuous": policyList.append(ContinuousBatchingPolicy())
            case "priority": policyList.append(PriorityBatchingPolicy())
            case "none": policyList.append(NoBatchingPolicy())
            case "static": policyList.append(try StaticBatchingPolicy(batchSize: 8, launchAfter: 1))
            case "dynamic": policyList.append(try DynamicBatchingPolicy(maxBatchSize: 8, maxWait: 0.25))
            default: throw ValidationError("--policies: unknown policy \(name); choose continuous, static, dynamic, none or priority")
            }
        }
        let slo = ServiceLevelObjective(name: "bench", maxTTFT: sloTTFT, maxTPOT: sloTPOT)
        var results: [EngineBenchmark.WorkloadResult] = []
        for rate in rateList {
            let w = SyntheticWorkload(arrivals: .poisson(rate: rate),
                                      promptLength: .logNormal(median: promptMedian, sigma: 0.8, min: 16, max: 512),
                                      outputLength: .logNormal(median: outputMedian, sigma: 0.6, min: 8, max: 256), count: requests, seed: seed)
            let trace: [InferenceRequest]
            do { trace = try w.generate() } catch { throw ValidationError("\(error)") }
            let t0 = trace.first?.arrivalTime ?? 0
            let shifted = trace.map { var r = $0; r.arrivalTime -= t0; return r }
            for policy in policyList {
                do {
                    results.append(try await EngineBenchmark.workload(model: m, threads: t, policy: policy, requests: shifted, rate: rate,
                                                                      kvCacheTokens: 16_384, context: 1024, slo: slo, seed: seed))
                } catch { throw ValidationError("\(error)") }
                ModelCLI.note("rate \(rate)/s, \(policy.name): done")
            }
        }
        if json {
            let data = try JSONEncoder().encode(results)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(m.displayName), \(t) threads, \(ISA.active.name); \(requests) requests per run, prompt median \(Int(promptMedian)), output median \(Int(outputMedian)); SLO TTFT ≤ \(sloTTFT) s, TPOT ≤ \(sloTPOT) s")
        print("| rate/s | policy | TTFT p50 s | TTFT p95 s | TPOT p50 ms | TPOT p95 ms | out t/s | goodput req/s | SLO met | preempt | peak blocks | contiguous ctx | contiguous max |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for x in results {
            print(String(format: "| %.2f | %@ | %.2f | %.2f | %.1f | %.1f | %.1f | %.3f | %.0f %% | %d | %d | %d | %d |", x.rate, x.policy, x.ttft.p50, x.ttft.p95,
                         x.tpot.p50 * 1000, x.tpot.p95 * 1000, x.outputTokensPerSecond, x.goodput, x.sloAttainment * 100, x.preemptions,
                         x.peakBlocksInUse, x.peakContiguousContextBlocks, x.peakContiguousMaxTokensBlocks))
        }
    }
}
