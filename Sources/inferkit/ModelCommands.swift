import ArgumentParser
import CInferenceKitBLAS
import Foundation
import ModelRuntime
import Quantization
import TensorCore
import Tokenization

/// Shared pieces of the model commands: loading with progress, stderr lines, process statistics.
enum ModelCLI {
    static var stderrIsTerminal: Bool { isatty(2) != 0 }

    static func note(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    /// Loads a model; on a terminal a counter of layers, otherwise one line per phase.
    static func load(_ path: String) throws -> (LlamaModel, seconds: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let tty = stderrIsTerminal
        if !tty { note("loading \(path)") }
        let model: LlamaModel
        do {
            model = try LlamaModel(contentsOf: path) { done, total in
                if tty { FileHandle.standardError.write(Data("\rloading \((path as NSString).lastPathComponent): layer \(done)/\(total)".utf8)) }
            }
        } catch {
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            throw ValidationError("\(error)")
        }
        let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if tty { FileHandle.standardError.write(Data("\r".utf8)) }
        note("loaded \(model.displayName): \(model.configuration.layerCount) layers, \(model.projectionBytes >> 20) MiB of projections, in \(String(format: "%.2f", s)) s")
        return (model, s)
    }

    /// Peak resident set of this process so far (VmHWM), bytes.
    static func peakRSS() -> Int? { procStatus("VmHWM:") }
    /// Current resident set (VmRSS), bytes.
    static func currentRSS() -> Int? { procStatus("VmRSS:") }

    private static func procStatus(_ key: String) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix(key) {
            let kb = line.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// Seconds since this process started (from /proc: start time in clock ticks vs system uptime).
    static func secondsSinceProcessStart() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let up = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, starttime field 22 → index 22 − 3 = 19.
        guard fields.count > 19, let ticks = Double(fields[19]), let uptime = Double(up.split(separator: " ").first ?? "") else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return uptime - ticks / hz
    }

    /// Runs `body` on a thread of its own and waits: the model commands' compute never runs on the
    /// cooperative pool that `AsyncParsableCommand` calls `run()` from.
    static func onDedicatedThread(_ body: @escaping @Sendable () throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let box = ErrorBox()
        let thread = Thread {
            do { try body() } catch { box.set(error) }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.name = "inferkit-model"
        thread.start()
        done.wait()
        if let e = box.get() { throw e }
    }

    /// Runs `body` on a thread of its own and awaits it (an async command must not compute on the cooperative pool).
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.stackSize = 8 << 20
            thread.name = "inferkit-model"
            thread.start()
        }
    }

    static func json(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
    }
}

/// The error a dedicated thread ended with. `@unchecked Sendable`: written by that thread before it
/// signals, read by the waiting thread after.
final class ErrorBox: @unchecked Sendable {
    private var error: (any Error)?
    func set(_ e: any Error) { error = e }
    func get() -> (any Error)? { error }
}

/// `inferkit generate MODEL.gguf --prompt … | --chat …`
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a GGUF model in-process (streams to stdout; --json for tokens, logprobs and timings).",
        discussion: """
            Sampling defaults are vLLM's (temperature 1, no top-k/top-p/min-p, no penalties); --greedy picks the most likely \
            token. --chat renders the model's chat template with the message (and --system) and a generation prompt.
            """
    )

    @Argument(help: "A GGUF model file (llama architecture).") var model: String
    @Option(help: "A plain prompt (tokenized as is, with BOS if the model adds one).") var prompt: String?
    @Option(help: "A user message, wrapped with the model's chat template.") var chat: String?
    @Option(help: "A system message for --chat.") var system: String?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.") var maxTokens = 128
    @Option(name: .customLong("min-tokens"), help: "Fewest tokens before EOS may end the answer.") var minTokens = 0
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 1
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off).") var topK = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).") var topP: Float = 1
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability (0 = off).") var minP: Float = 0
    @Option(name: .customLong("repetition-penalty"), help: "Penalty for tokens already seen (1 = off).") var repetitionPenalty: Float = 1
    @Option(name: .customLong("presence-penalty")) var presencePenalty: Float = 0
    @Option(name: .customLong("frequency-penalty")) var frequencyPenalty: Float = 0
    @Option(help: "Random seed (same seed + prompt → same text).") var seed: UInt64?
    @Option(help: "A stop string (repeatable).") var stop: [String] = []
    @Option(help: "Report this many alternatives per token with --json.") var logprobs: Int?
    @Flag(help: "Greedy decoding (temperature 0).") var greedy = false
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past EOS.") var ignoreEOS = false
    @Option(help: "Threads.") var threads = HostCPU.activeProcessorCount
    @Option(help: "Longest prompt + output held in the KV cache.") var context = 2048
    @Option(help: "Kernel path: avx512-vnni, avx2 or scalar.") var isa: String?
    @Flag(help: "Print JSON (tokens, text, logprobs, timings) instead of streaming text.") var json = false
    @Option(help: "Run this many requests at once through the continuous-batching engine (seeds seed, seed + 1, …).") var parallel = 1
    @Option(name: .customLong("prompts-file"), help: "A file of user messages, one per line, run at once through the engine (with --parallel N: cycled to N requests).")
    var promptsFile: String?

    func validate() throws {
        guard [prompt != nil, chat != nil, promptsFile != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --prompt, --chat or --prompts-file")
        }
        guard parallel >= 1, parallel <= 4096 else { throw ValidationError("--parallel \(parallel): use 1 … 4096") }
        if (parallel > 1 || promptsFile != nil) && logprobs != nil { throw ValidationError("--logprobs is reported for a single request; drop --parallel / --prompts-file") }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads \(threads): use 1 … 1024") }
        guard context >= 2 else { throw ValidationError("--context \(context): use at least 2") }
        if logprobs != nil, !json { throw ValidationError("--logprobs is reported in the --json output; add --json") }
    }

    func run() async throws {
        if parallel > 1 || promptsFile != nil {
            try await ParallelGeneration.run(self)
            return
        }
        let command = self
        try await ModelCLI.offPool { try command.work() }
    }

    func work() throws {
        try QuantCLI.selectISA(isa)
        openblas_set_num_threads(Int32(threads))
        let (model, loadSeconds) = try ModelCLI.load(self.model)
        let generator: TextGenerator
        let promptTokens: [Int]
        do {
            generator = try TextGenerator(model: model, threads: threads, contextLimit: context)
            if let chat {
                var messages: [ChatMessage] = []
                if let system { messages.append(ChatMessage(role: "system", content: system)) }
                messages.append(ChatMessage(role: "user", content: chat))
                promptTokens = try generator.chatPrompt(messages)
            } else {
                promptTokens = model.tokenizer.encode(prompt!, addSpecialTokens: true, parseSpecialTokens: true)
            }
        } catch { throw ValidationError("\(error)") }
        let sampling = SamplingParameters(
            temperature: greedy ? 0 : temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty,
            presencePenalty: presencePenalty, frequencyPenalty: frequencyPenalty, seed: seed)
        let parameters = GenerationParameters(sampling: sampling, maxTokens: maxTokens, minTokens: minTokens, stop: stop,
                                              ignoreEOS: ignoreEOS, topLogprobs: json ? logprobs : nil)
        let stream = !json
        let result: GenerationResult
        do {
            result = try generator.generate(promptTokens: promptTokens, parameters: parameters) { token in
                if stream { FileHandle.standardOutput.write(Data(token.text.utf8)) }
                return true
            }
        } catch { throw ValidationError("\(error)") }
        let tps = Double(max(result.tokens.count - 1, 0)) / max(result.decodeSeconds, 1e-9)
        let pps = Double(result.promptTokens.count) / max(result.prefillSeconds, 1e-9)
        if json {
            var obj: [String: Any] = [
                "model": model.displayName, "prompt_tokens": result.promptTokens, "tokens": result.tokens, "text": result.text,
                "finish_reason": result.finishReason.rawValue,
                "timings": ["load_s": loadSeconds, "prefill_s": result.prefillSeconds, "ttft_s": result.timeToFirstToken,
                            "decode_s": result.decodeSeconds, "prompt_tokens_per_s": pps, "tokens_per_s": tps],
                "threads": threads, "isa": ISA.active.name,
            ]
            if logprobs != nil {
                obj["logprobs"] = result.logprobs
                obj["top_logprobs"] = result.topLogprobs.map { $0.map { ["token": $0.token, "logprob": $0.logprob] } }
            }
            print(try ModelCLI.json(obj))
        } else {
            print("")
            ModelCLI.note(String(format: "[%d prompt tokens at %.0f t/s; %d tokens at %.1f t/s; first token after %.0f ms; %@]",
                                 result.promptTokens.count, pps, result.tokens.count, tps, result.timeToFirstToken * 1000, result.finishReason.rawValue))
        }
    }
}

/// `inferkit tokenize MODEL.gguf TEXT`
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Show how a model's tokenizer splits text (ids and pieces).")

    @Argument(help: "A GGUF model file.") var model: String
    @Argument(help: "The text.") var text: String
    @Flag(name: .customLong("no-special"), help: "Do not add BOS/EOS and treat special-token texts as plain text.") var noSpecial = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let file: GGUFFile
        do { file = try GGUFFile(contentsOf: model) } catch { throw ValidationError("\(error)") }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(gguf: file) } catch { throw ValidationError("\(error)") }
        let ids = tokenizer.encode(text, addSpecialTokens: !noSpecial, parseSpecialTokens: !noSpecial)
        let pieces = ids.map { id in (try? tokenizer.bytes(of: id)).map { String(decoding: $0, as: UTF8.self) } ?? "" }
        if json {
            print(try ModelCLI.json(["ids": ids, "pieces": pieces, "count": ids.count]))
        } else {
            for (id, p) in zip(ids, pieces) { print(String(format: "%6d  ", id) + p.debugDescription) }
            print("\(ids.count) tokens")
        }
    }
}

/// `inferkit perplexity MODEL.gguf FILE`
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, by llama.cpp's method.",
        discussion: """
            The whole file is tokenized once; it is cut into consecutive, non-overlapping windows of --ctx tokens (a \
            partial last window is dropped). Each window is run from an empty cache, with its first token replaced by BOS \
            when the model adds BOS. Only the second half of each window is scored: the negative log-likelihood of token \
            i + 1 given the logits at position i, for i from ctx/2 − 1 to ctx − 2 (ctx/2 predictions per window), so every \
            scored token has at least ctx/2 tokens of context. Perplexity = exp(mean NLL) over every scored token; the \
            running value is printed per window with its ± (standard error of the mean NLL, propagated).
            """
    )

    @Argument(help: "A GGUF model file.") var model: String
    @Argument(help: "A UTF-8 text file.") var file: String
    @Option(help: "Window size in tokens.") var ctx = 512
    @Option(help: "Score at most this many windows (0 = all).") var chunks = 0
    @Option(help: "Threads.") var threads = HostCPU.activeProcessorCount
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard ctx >= 4, ctx % 2 == 0 else { throw ValidationError("--ctx \(ctx): use an even number ≥ 4") }
        guard chunks >= 0 else { throw ValidationError("--chunks \(chunks) must be ≥ 0") }
    }

    func run() throws {
        let command = self
        try ModelCLI.onDedicatedThread { try command.work() }
    }

    func work() throws {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read '\(file)' as UTF-8 text")
        }
        openblas_set_num_threads(Int32(threads))
        let (model, _) = try ModelCLI.load(model)
        guard ctx <= model.configuration.contextLength else { throw ValidationError("--ctx \(ctx) exceeds the model's context \(model.configuration.contextLength)") }
        let tk = model.tokenizer
        let tokens = tk.encode(text, addSpecialTokens: false, parseSpecialTokens: false)
        var windows = tokens.count / ctx
        if chunks > 0 { windows = min(windows, chunks) }
        guard windows >= 1 else { throw ValidationError("'\(file)' has \(tokens.count) tokens, fewer than one window of --ctx \(ctx)") }
        ModelCLI.note("\(tokens.count) tokens, \(windows) windows of \(ctx)")
        let forward = CPUForwardPass(model: model, threads: threads)
        var cache: KVCache
        do { cache = try KVCache(configuration: model.configuration, blockCount: (ctx + 15) / 16, blockSize: 16) } catch { throw ValidationError("\(error)") }
        let table = Array(0..<cache.blockCount)
        var batch = ForwardBatch()
        var logits = Logits()
        var nll = 0.0, nll2 = 0.0, count = 0
        var perWindow: [[String: Double]] = []
        let start = DispatchTime.now().uptimeNanoseconds
        for w in 0..<windows {
            var window = Array(tokens[(w * ctx)..<((w + 1) * ctx)])
            if tk.configuration.addBOS, let bos = tk.configuration.bosTokenID { window[0] = bos }
            batch.removeAll()
            batch.append(tokens: window, startPosition: 0, blockTable: table, logits: .all)
            do { try forward.run(batch, cache: &cache, logits: &logits) } catch { throw ValidationError("\(error)") }
            for i in (ctx / 2 - 1)..<(ctx - 1) {
                let target = tokens[w * ctx + i + 1]
                let lp = logits.withRow(i) { Sampler.logprobs($0, token: target, top: 0).0 }
                nll -= Double(lp)
                nll2 += Double(lp) * Double(lp)
                count += 1
            }
            let mean = nll / Double(count)
            let variance = max(nll2 / Double(count) - mean * mean, 0)
            let se = (variance / Double(max(count - 1, 1))).squareRoot()
            let ppl = exp(mean)
            perWindow.append(["window": Double(w + 1), "ppl": ppl, "ppl_error": ppl * se])
            if !json { print(String(format: "[%d] %.4f ± %.4f", w + 1, ppl, ppl * se)) }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let mean = nll / Double(count)
        if json {
            print(try ModelCLI.json(["model": model.displayName, "ctx": ctx, "windows": windows, "scored_tokens": count, "perplexity": exp(mean),
                                     "seconds": seconds, "tokens_per_s": Double(windows * ctx) / seconds, "per_window": perWindow]))
        } else {
            print(String(format: "Final estimate: PPL = %.4f over %d scored tokens (%d windows of %d), %.1f s, %.0f tokens/s", exp(mean), count, windows, ctx, seconds,
                         Double(windows * ctx) / seconds))
        }
    }
}

/// `inferkit bench model MODEL.gguf` — llama-bench's pp/tg tests on the project's runtime.
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Prompt processing and generation speed of a GGUF model, in llama-bench's terms (build with -c release).",
        discussion: """
            ppN: one prefill of N random tokens (BOS first when the model adds it) from an empty cache, logits of the last \
            token; tgN: N single-token steps from an empty cache, each feeding a random token (no sampling), as llama-bench \
            does. Each test runs once to warm up, then --reps times; t/s is reported as mean ± standard deviation over the \
            repetitions. Also reported: time from process start to the first token of a 32-token prompt, peak RSS after \
            loading against the file size, the weight bytes a decode step streams as GB/s against a read-bandwidth probe of \
            the same run, and a per-phase profile of the decode steps.
            """
    )

    @Argument(help: "A GGUF model file.") var model: String
    @Option(name: .short, help: "Prompt tokens of the pp test (0 = skip).") var p = 512
    @Option(name: .short, help: "Generated tokens of the tg test (0 = skip).") var n = 128
    @Option(name: .short, help: "Repetitions.") var r = 5
    @Option(name: .short, help: "Threads.") var t = 2
    @Option(help: "Kernel path: avx512-vnni, avx2 or scalar.") var isa: String?
    @Flag(inversion: .prefixedNo, help: "Measure the read bandwidth and profile the decode step.") var details = true
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard p >= 0, n >= 0, p + n > 0 else { throw ValidationError("-p \(p) -n \(n): give at least one test") }
        guard r >= 1, r <= 1000 else { throw ValidationError("-r \(r): use 1 … 1000") }
        guard t >= 1, t <= 1024 else { throw ValidationError("-t \(t): use 1 … 1024") }
    }

    func run() throws {
        let command = self
        try ModelCLI.onDedicatedThread { try command.work() }
    }

    func work() throws {
        try QuantCLI.selectISA(isa)
        openblas_set_num_threads(Int32(t))
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
        let rssBeforeLoad = ModelCLI.currentRSS() ?? 0
        let (model, loadSeconds) = try ModelCLI.load(self.model)
        let peakAfterLoad = ModelCLI.peakRSS() ?? 0
        let c = model.configuration
        let forward = CPUForwardPass(model: model, threads: t)
        let blockSize = 16
        let longest = max(p, n + 1, 33)
        guard longest <= c.contextLength else { throw ValidationError("-p/-n exceed the model's context \(c.contextLength)") }
        var cache: KVCache
        do { cache = try KVCache(configuration: c, blockCount: (longest + blockSize - 1) / blockSize, blockSize: blockSize) } catch { throw ValidationError("\(error)") }
        let table = Array(0..<cache.blockCount)
        var batch = ForwardBatch()
        var logits = Logits()
        var rng = SplitMix64(seed: 42)
        let tk = model.tokenizer
        func randomTokens(_ count: Int) -> [Int] {
            var ids = (0..<count).map { _ in Int(rng.next() % UInt64(c.vocabularySize)) }
            if tk.configuration.addBOS, let bos = tk.configuration.bosTokenID, !ids.isEmpty { ids[0] = bos }
            return ids
        }
        func step(_ ids: [Int], at position: Int) throws {
            batch.removeAll()
            batch.append(tokens: ids, startPosition: position, blockTable: table.prefix((position + ids.count + blockSize - 1) / blockSize))
            do { try forward.run(batch, cache: &cache, logits: &logits) } catch { throw ValidationError("\(error)") }
        }
        /// n single-token steps from an empty cache, each feeding a random token (llama-bench's tg).
        func generateRun(_ n: Int) throws {
            var token = randomTokens(1)
            for i in 0..<n {
                try step(token, at: i)
                token = [Int(rng.next() % UInt64(c.vocabularySize))]
            }
        }
        // Time to the first token of a 32-token prompt, counted from process start (this process is cold).
        try step(randomTokens(32), at: 0)
        _ = logits.withRow(0) { Sampler.argmax($0) }
        let firstToken = ModelCLI.secondsSinceProcessStart()
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        func stats(_ xs: [Double]) -> (mean: Double, sd: Double) {
            let m = xs.reduce(0, +) / Double(xs.count)
            let v = xs.count > 1 ? xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1) : 0
            return (m, v.squareRoot())
        }
        var rows: [[String: Any]] = []
        var tgMean = 0.0
        if p > 0 {
            var rates: [Double] = []
            for rep in 0...r {
                let ids = randomTokens(p)
                let t0 = now()
                try step(ids, at: 0)
                let s = Double(now() - t0) / 1e9
                if rep > 0 { rates.append(Double(p) / s) }
            }
            let (m, sd) = stats(rates)
            rows.append(["test": "pp\(p)", "t/s": m, "sd": sd, "samples": rates])
        }
        if n > 0 {
            var rates: [Double] = []
            for rep in 0...r {
                let t0 = now()
                try generateRun(n)
                let s = Double(now() - t0) / 1e9
                if rep > 0 { rates.append(Double(n) / s) }
            }
            let (m, sd) = stats(rates)
            tgMean = m
            rows.append(["test": "tg\(n)", "t/s": m, "sd": sd, "samples": rates])
        }
        var profileRows: [(String, Double)] = []
        var bandwidth: Double?
        if details && n > 0 {
            forward.profiling = true
            forward.resetProfile()
            try generateRun(n)
            forward.profiling = false
            let prof = forward.profile
            for phase in ForwardProfile.Phase.allCases {
                profileRows.append((phase.rawValue, Double(prof.nanoseconds[phase] ?? 0) / Double(prof.steps) / 1e3))
            }
            bandwidth = BenchQuant.readBandwidth(bytes: 256 << 20, threads: t, reps: 5).median
        }
        let weightGBs = Double(model.projectionBytes) * tgMean / 1e9
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        if json {
            var obj: [String: Any] = [
                "model": model.displayName, "file_bytes": fileBytes, "threads": t, "isa": ISA.active.name, "cpu": cpu, "reps": r,
                "load_s": loadSeconds, "peak_rss_after_load_bytes": peakAfterLoad, "rss_before_load_bytes": rssBeforeLoad, "results": rows,
                "projection_bytes": model.projectionBytes,
            ]
            if let firstToken { obj["first_token_since_process_start_s"] = firstToken }
            if let bandwidth {
                obj["read_bandwidth_gbs"] = bandwidth
                obj["decode_weight_gbs"] = weightGBs
                obj["decode_profile_us_per_step"] = Dictionary(uniqueKeysWithValues: profileRows)
            }
            print(try ModelCLI.json(obj))
            return
        }
        print("model: \(model.displayName) (\(fileBytes) bytes), \(c)")
        print("cpu: \(cpu), kernel path \(ISA.active.name), \(t) threads, \(r) repetitions after a warm-up")
        print("| test | t/s |")
        print("|---|---:|")
        for row in rows {
            print(String(format: "| %@ | %.2f ± %.2f |", row["test"] as! String, row["t/s"] as! Double, row["sd"] as! Double))
        }
        print(String(format: "load %.2f s; peak RSS after load %.1f MiB = %.2f× the file (the process held %.1f MiB before loading; loading added at most %.2f× the file)",
                     loadSeconds, Double(peakAfterLoad) / 1_048_576, Double(peakAfterLoad) / Double(max(fileBytes, 1)), Double(rssBeforeLoad) / 1_048_576,
                     Double(peakAfterLoad - rssBeforeLoad) / Double(max(fileBytes, 1))))
        if let firstToken { print(String(format: "first token of a 32-token prompt %.3f s after process start", firstToken)) }
        if let bandwidth {
            print(String(format: "decode streams %.1f MiB of weights per token: %.1f GB/s at tg t/s, %.0f %% of the %.1f GB/s read probe (%d threads, 256 MiB)",
                         Double(model.projectionBytes) / 1_048_576, weightGBs, 100 * weightGBs / bandwidth, bandwidth, t))
            let total = profileRows.reduce(0) { $0 + $1.1 }
            print("decode step profile (µs per step, mean of \(n) steps):")
            func pad(_ s: String) -> String { s.padding(toLength: 18, withPad: " ", startingAt: 0) }
            for (name, us) in profileRows { print("  " + pad(name) + String(format: "%8.1f  %5.1f %%", us, 100 * us / max(total, 1e-9))) }
            print("  " + pad("total") + String(format: "%8.1f", total))
        }
    }
}
