import Foundation
import TensorCore
import Tokenization

/// What a generation asks for besides the sampler: length, stops, logprobs.
public struct GenerationParameters: Sendable, Hashable {
    public var sampling: SamplingParameters
    /// Most tokens to generate (`max_tokens`).
    public var maxTokens: Int
    /// Fewest tokens before EOS or a stop token may end the answer (`min_tokens`).
    public var minTokens: Int
    /// Strings that end the answer; the matched string is not part of the text (matched across token boundaries).
    public var stop: [String]
    /// Token ids that end the answer besides EOS (`stop_token_ids`); the stop token is not part of the text.
    public var stopTokenIDs: Set<Int>
    /// Keep going past EOS (`ignore_eos`, for benchmarks).
    public var ignoreEOS: Bool
    /// Top alternatives to report per generated token; `nil` = no logprobs.
    public var topLogprobs: Int?

    public init(sampling: SamplingParameters = SamplingParameters(), maxTokens: Int = 256, minTokens: Int = 0, stop: [String] = [],
                stopTokenIDs: Set<Int> = [], ignoreEOS: Bool = false, topLogprobs: Int? = nil) {
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.minTokens = minTokens
        self.stop = stop
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.topLogprobs = topLogprobs
    }

    package func validate(vocabularySize: Int) throws(ModelRuntimeError) {
        try sampling.validate(vocabularySize: vocabularySize)
        guard maxTokens >= 1 else { throw ModelRuntimeError(.invalidSampling, "max_tokens \(maxTokens) must be at least 1") }
        guard minTokens >= 0, minTokens <= maxTokens else { throw ModelRuntimeError(.invalidSampling, "min_tokens \(minTokens) must be between 0 and max_tokens (\(maxTokens))") }
        guard stop.allSatisfy({ !$0.isEmpty }) else { throw ModelRuntimeError(.invalidSampling, "a stop string is empty; remove it") }
        for id in stopTokenIDs where id < 0 || id >= vocabularySize {
            throw ModelRuntimeError(.invalidSampling, "stop_token_ids names \(id), outside the vocabulary 0..<\(vocabularySize)")
        }
        if let n = topLogprobs, n < 0 || n > 20 { throw ModelRuntimeError(.invalidSampling, "top_logprobs \(n) must be between 0 and 20") }
    }
}

/// Why a generation ended.
public enum FinishReason: String, Sendable, Hashable, Codable {
    /// EOS, a stop token or a stop string.
    case stop
    /// `max_tokens`, or the context is full.
    case length
}

/// One generated token as it streams.
public struct GeneratedToken: Sendable, Hashable {
    public var token: Int
    /// The text this token completes (may be empty while a multi-byte character or a possible stop string is held back).
    public var text: String
    public var logprob: Float?
    public var topLogprobs: [TokenLogprob]

    public init(token: Int, text: String, logprob: Float? = nil, topLogprobs: [TokenLogprob] = []) {
        self.token = token
        self.text = text
        self.logprob = logprob
        self.topLogprobs = topLogprobs
    }
}

/// The whole answer, with timings.
public struct GenerationResult: Sendable, Hashable {
    public var promptTokens: [Int]
    public var tokens: [Int]
    public var text: String
    public var finishReason: FinishReason
    public var logprobs: [Float]
    public var topLogprobs: [[TokenLogprob]]
    /// Seconds from the call to the first generated token (prefill + first sample).
    public var timeToFirstToken: Double
    /// Seconds spent in prefill.
    public var prefillSeconds: Double
    /// Seconds spent generating after the first token.
    public var decodeSeconds: Double
}

/// Holds back text that may be the start of a stop string, and finds stop strings across token boundaries.
package struct StopMatcher {
    let stops: [String]
    private(set) var pending = ""

    package init(stops: [String]) { self.stops = stops }

    /// Adds text; returns the part safe to emit and whether a stop string matched (the text before it is emitted, the rest dropped).
    package mutating func append(_ s: String) -> (emit: String, stopped: Bool) {
        pending += s
        guard !stops.isEmpty else {
            defer { pending = "" }
            return (pending, false)
        }
        var earliest: String.Index?
        for stop in stops {
            if let r = pending.range(of: stop), earliest == nil || r.lowerBound < earliest! { earliest = r.lowerBound }
        }
        if let e = earliest {
            let out = String(pending[..<e])
            pending = ""
            return (out, true)
        }
        // Keep the longest suffix that is a prefix of some stop string.
        var keep = 0
        for stop in stops {
            let maxLen = min(stop.count - 1, pending.count)
            if maxLen <= 0 { continue }
            for len in stride(from: maxLen, through: 1, by: -1) where len > keep {
                if pending.hasSuffix(stop.prefix(len)) {
                    keep = len
                    break
                }
            }
        }
        let cut = pending.index(pending.endIndex, offsetBy: -keep)
        let out = String(pending[..<cut])
        pending = String(pending[cut...])
        return (out, false)
    }

    package mutating func finish() -> String {
        defer { pending = "" }
        return pending
    }
}

/// Generates text for one sequence at a time on a ``CPUForwardPass``: prefill in chunks, then one
/// token per step, streaming each token's text.
///
/// The sequence's K/V live in blocks `0, 1, 2, …` of its own ``KVCache`` (sized for the context
/// limit). Batching many sequences is the engine's job; this is the simplest correct loop, used by
/// `inferkit generate`, the perplexity tool and the benchmarks.
///
/// ```swift
/// let generator = try TextGenerator(model: model)
/// let result = try generator.generate(prompt: "The capital of France is", parameters: .init(sampling: .greedy, maxTokens: 16)) { token in
///     print(token.text, terminator: "")
///     return true   // false stops early
/// }
/// ```
public final class TextGenerator {
    public let model: LlamaModel
    public let forward: CPUForwardPass
    /// Longest sequence (prompt + output) this generator holds.
    public let contextLimit: Int
    /// Prompt tokens per prefill step.
    public var prefillChunk = 512
    private var cache: KVCache
    private var batch = ForwardBatch()
    private var logits = Logits()

    /// - Parameters:
    ///   - contextLimit: longest prompt + output (default: the model's context, capped at 4096 to bound the cache).
    public init(model: LlamaModel, threads: Int = HostCPU.activeProcessorCount, contextLimit: Int? = nil, blockSize: Int = 16,
                kvPrecision: KVPrecision = .float32) throws(ModelRuntimeError) {
        self.model = model
        forward = CPUForwardPass(model: model, threads: threads)
        let limit = min(contextLimit ?? min(model.configuration.contextLength, 4096), model.configuration.contextLength)
        guard limit >= 1 else { throw ModelRuntimeError(.invalidConfiguration, "context limit \(limit) must be at least 1") }
        self.contextLimit = limit
        cache = try KVCache(configuration: model.configuration, blockCount: (limit + blockSize - 1) / blockSize, blockSize: blockSize, precision: kvPrecision)
    }

    /// Tokenizes `prompt` (with BOS if the model adds one) and generates.
    public func generate(prompt: String, parameters: GenerationParameters, onToken: (GeneratedToken) -> Bool = { _ in true }) throws(ModelRuntimeError) -> GenerationResult {
        try generate(promptTokens: model.tokenizer.encode(prompt, addSpecialTokens: true, parseSpecialTokens: true), parameters: parameters, onToken: onToken)
    }

    /// Runs the prompt and samples up to `maxTokens` tokens; `onToken` returning false stops early.
    public func generate(promptTokens prompt: [Int], parameters: GenerationParameters, onToken: (GeneratedToken) -> Bool = { _ in true }) throws(ModelRuntimeError) -> GenerationResult {
        let c = model.configuration
        try parameters.validate(vocabularySize: c.vocabularySize)
        guard !prompt.isEmpty else { throw ModelRuntimeError(.invalidBatch, "the prompt is empty; give at least one token") }
        guard prompt.count < contextLimit else {
            throw ModelRuntimeError(.contextOverflow, "the prompt has \(prompt.count) tokens; this generator holds \(contextLimit) (prompt + output), so shorten the prompt or raise the context limit")
        }
        for (i, t) in prompt.enumerated() where t < 0 || t >= c.vocabularySize {
            throw ModelRuntimeError(.invalidBatch, "prompt token \(i) is id \(t), outside the vocabulary 0..<\(c.vocabularySize)")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let blocks = Array(0..<cache.blockCount)
        // Prefill in chunks; logits only for the prompt's last token.
        var done = 0
        while done < prompt.count {
            let n = min(prefillChunk, prompt.count - done)
            batch.removeAll()
            let last = done + n == prompt.count
            batch.append(tokens: prompt[done..<(done + n)], startPosition: done, blockTable: blocks.prefix((done + n + cache.blockSize - 1) / cache.blockSize),
                         logits: last ? .last : .none)
            try forward.run(batch, cache: &cache, logits: &logits)
            done += n
        }
        let prefillEnd = DispatchTime.now().uptimeNanoseconds

        var sampler = Sampler(parameters: parameters.sampling, promptTokens: prompt)
        var decoder = model.tokenizer.makeStreamingDecoder(skipSpecialTokens: true)
        var stopper = StopMatcher(stops: parameters.stop)
        var result = GenerationResult(promptTokens: prompt, tokens: [], text: "", finishReason: .length, logprobs: [], topLogprobs: [],
                                      timeToFirstToken: 0, prefillSeconds: Double(prefillEnd - start) / 1e9, decodeSeconds: 0)
        let tk = model.tokenizer
        var endTokens = parameters.stopTokenIDs
        if !parameters.ignoreEOS {
            endTokens.formUnion(tk.configuration.endOfTurnTokenIDs)
            if let eos = tk.configuration.eosTokenID { endTokens.insert(eos) }
        }
        var firstTokenAt: UInt64 = 0
        var position = prompt.count
        while true {
            let banned: Set<Int> = result.tokens.count < parameters.minTokens ? endTokens : []
            let pick = logits.withRow(0) { row in sampler.sample(row, banned: banned, topLogprobs: parameters.topLogprobs ?? -1) }
            if firstTokenAt == 0 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            if endTokens.contains(pick.token) {
                result.finishReason = .stop
                // Text held back (an incomplete character, a partial stop string that never matched) is answer text.
                let tail = stopper.append(decoder.finish()).emit + stopper.finish()
                result.text += tail
                if !tail.isEmpty, let last = result.tokens.last { _ = onToken(GeneratedToken(token: last, text: tail, logprob: nil, topLogprobs: [])) }
                break
            }
            result.tokens.append(pick.token)
            if let lp = pick.logprob {
                result.logprobs.append(lp)
                result.topLogprobs.append(pick.top)
            }
            let piece: String
            do { piece = try decoder.append(pick.token) } catch {
                throw ModelRuntimeError(.invalidBatch, "cannot decode token \(pick.token): \(error.message)")
            }
            let (emit, stopped) = stopper.append(piece)
            result.text += emit
            let keepGoing = onToken(GeneratedToken(token: pick.token, text: emit, logprob: pick.logprob, topLogprobs: pick.top))
            if stopped {
                result.finishReason = .stop
                break
            }
            if !keepGoing || result.tokens.count >= parameters.maxTokens || position + 1 >= contextLimit {
                result.finishReason = .length
                let tail = stopper.append(decoder.finish()).emit + stopper.finish()
                result.text += tail
                if !tail.isEmpty { _ = onToken(GeneratedToken(token: pick.token, text: tail, logprob: nil, topLogprobs: [])) }
                break
            }
            batch.removeAll()
            batch.append(tokens: CollectionOfOne(pick.token), startPosition: position, blockTable: blocks.prefix(position / cache.blockSize + 1))
            try forward.run(batch, cache: &cache, logits: &logits)
            position += 1
        }
        let end = DispatchTime.now().uptimeNanoseconds
        result.timeToFirstToken = Double(firstTokenAt - start) / 1e9
        result.decodeSeconds = Double(end - firstTokenAt) / 1e9
        return result
    }
}
