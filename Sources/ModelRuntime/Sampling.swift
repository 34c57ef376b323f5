import Foundation
import TensorCore

/// How the next token is chosen from a row of logits.
///
/// Defaults are vLLM's (the OpenAI API's): temperature 1, no top-k / top-p / min-p cut, no
/// penalties — the model's distribution as is. llama.cpp's `llama-cli`/`llama-server` defaults
/// differ (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, repeat penalty 1.0 over the last 64
/// tokens); ``llamaCppDefaults`` gives those. A temperature of 0 is greedy decoding.
///
/// Order of application (vLLM's): logit bias → repetition penalty (prompt and output tokens) →
/// presence and frequency penalties (output tokens) → temperature → top-k → top-p → min-p → draw.
public struct SamplingParameters: Sendable, Hashable, Codable {
    /// 0 = greedy; otherwise logits are divided by it. Range 0…100.
    public var temperature: Float = 1
    /// Keep the `topK` most likely tokens; 0 or −1 = off.
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`; 1 = off. Range (0, 1].
    public var topP: Float = 1
    /// Drop tokens whose probability is below `minP ×` the most likely one's; 0 = off. Range [0, 1].
    public var minP: Float = 0
    /// > 1 discourages tokens already in the prompt or output (positive logits divided, negative multiplied); 1 = off.
    public var repetitionPenalty: Float = 1
    /// Subtracted once from the logit of every token that appeared in the output. Range −2…2.
    public var presencePenalty: Float = 0
    /// Subtracted, times the count, from the logit of every token in the output. Range −2…2.
    public var frequencyPenalty: Float = 0
    /// Added to the logits of the given token ids (OpenAI's `logit_bias`, −100…100).
    public var logitBias: [Int: Float] = [:]
    /// Seed of the request's random stream: the same seed and prompt give the same tokens, batched or not. `nil` draws one.
    public var seed: UInt64?

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
                presencePenalty: Float = 0, frequencyPenalty: Float = 0, logitBias: [Int: Float] = [:], seed: UInt64? = nil) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.logitBias = logitBias
        self.seed = seed
    }

    /// Greedy decoding (always the most likely token).
    public static let greedy = SamplingParameters(temperature: 0)
    /// llama.cpp's sampler defaults (`common_params_sampling`).
    public static let llamaCppDefaults = SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05)

    /// Throws ``ModelRuntimeError/Code/invalidSampling`` naming the first parameter out of range.
    public func validate(vocabularySize: Int) throws(ModelRuntimeError) {
        func bad(_ what: String) -> ModelRuntimeError { ModelRuntimeError(.invalidSampling, what) }
        guard temperature.isFinite, temperature >= 0, temperature <= 100 else { throw bad("temperature \(temperature) must be between 0 and 100") }
        guard topK >= -1 else { throw bad("top_k \(topK) must be -1, 0 (off) or positive") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw bad("top_p \(topP) must be in (0, 1]") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw bad("min_p \(minP) must be in [0, 1]") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0, repetitionPenalty <= 10 else { throw bad("repetition_penalty \(repetitionPenalty) must be in (0, 10]") }
        guard presencePenalty.isFinite, abs(presencePenalty) <= 2 else { throw bad("presence_penalty \(presencePenalty) must be between -2 and 2") }
        guard frequencyPenalty.isFinite, abs(frequencyPenalty) <= 2 else { throw bad("frequency_penalty \(frequencyPenalty) must be between -2 and 2") }
        for (id, b) in logitBias {
            guard id >= 0, id < vocabularySize else { throw bad("logit_bias names token \(id), outside the vocabulary 0..<\(vocabularySize)") }
            guard b.isFinite, abs(b) <= 100 else { throw bad("logit_bias of token \(id) is \(b); it must be between -100 and 100") }
        }
    }

    var isGreedy: Bool { temperature == 0 }
}

/// A token and its log-probability.
public struct TokenLogprob: Sendable, Hashable, Codable {
    public var token: Int
    public var logprob: Float
    public init(token: Int, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// The per-request sampling state: its random stream and the token counts the penalties read.
///
/// Logprobs are those of the model's own distribution (log-softmax of the raw logits, before bias,
/// penalties and temperature), as vLLM reports them by default.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: SplitMix64
    /// Occurrences of each token in the output so far (presence / frequency penalties).
    private var outputCounts: [Int: Int] = [:]
    /// Tokens seen in the prompt or output (repetition penalty).
    private var seen: Set<Int> = []
    private var work: [Float] = []
    private var order: [Int32] = []

    /// - Parameter promptTokens: the prompt, which the repetition penalty also covers.
    public init(parameters: SamplingParameters, promptTokens: [Int] = []) {
        self.parameters = parameters
        random = SplitMix64(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
        if parameters.repetitionPenalty != 1 { seen = Set(promptTokens) }
    }

    /// Records a token that was emitted without being sampled here (a forced or accepted draft token).
    public mutating func record(_ token: Int) {
        outputCounts[token, default: 0] += 1
        if parameters.repetitionPenalty != 1 { seen.insert(token) }
    }

    /// Picks the next token from `logits` (one row, `vocabularySize` values), never one of `banned`
    /// (EOS and stop tokens while `min_tokens` is not reached). Returns the token and, when
    /// `topLogprobs ≥ 0`, its logprob with the `topLogprobs` most likely alternatives.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, banned: Set<Int> = [], topLogprobs: Int = -1) -> (token: Int, logprob: Float?, top: [TokenLogprob]) {
        let n = logits.count
        let p = parameters
        var buffer = work  // moved out so `draw` may mutate self while the buffer is borrowed
        work = []
        defer { work = buffer }
        if buffer.count != n { buffer = [Float](repeating: 0, count: n) }
        let token: Int = buffer.withUnsafeMutableBufferPointer { w in
            adjust(logits, banned: banned, into: w)
            if p.isGreedy { return Self.argmax(UnsafeBufferPointer(w)) }
            let keep = candidates(w)
            guard keep > 0 else { return 0 }
            return pick(w, keep: keep)
        }
        record(token)
        return withLogprobs(logits, token: token, topLogprobs: topLogprobs)
    }

    /// Speculative verification of one draft token proposed with certainty (an n-gram or prompt-lookup
    /// proposer): accepts `draft` with probability p(draft) under this sampler's distribution for
    /// `logits`, otherwise draws from the residual — p with `draft` removed, renormalised. Emitted
    /// tokens then have exactly the distribution of ``sample(_:banned:topLogprobs:)`` (the
    /// speculative-sampling rule of Leviathan et al. and Chen et al. with a point-mass draft). Greedy
    /// parameters accept exactly when the draft is the argmax. The emitted token is recorded.
    public mutating func verify(_ logits: UnsafeBufferPointer<Float>, draft: Int, banned: Set<Int> = [], topLogprobs: Int = -1) -> (token: Int, accepted: Bool, logprob: Float?, top: [TokenLogprob]) {
        if parameters.isGreedy {
            let r = sample(logits, banned: banned, topLogprobs: topLogprobs)
            return (r.token, r.token == draft, r.logprob, r.top)
        }
        // One pass: the candidate set and its weights, then accept, or draw from the same set without the draft
        // (re-filtering without it would let a token outside the set in, which p never gives).
        let n = logits.count
        var buffer = work
        work = []
        defer { work = buffer }
        if buffer.count != n { buffer = [Float](repeating: 0, count: n) }
        let pick: (token: Int, accepted: Bool) = buffer.withUnsafeMutableBufferPointer { w in
            adjust(logits, banned: banned, into: w)
            let keep = candidates(w)
            guard keep > 0 else { return (0, false) }
            var mass: Double = 0
            var mine: Double = 0
            for j in 0..<keep {
                let i = Int(order[j])
                mass += Double(w[i])
                if i == draft { mine = Double(w[i]) }
            }
            if mine > 0, random.nextUnitDouble() * mass < mine { return (draft, true) }
            if mine > 0 {
                if mine >= mass { return (draft, true) }  // the draft is the only candidate: p(draft) = 1
                w[draft] = 0
            }
            return (self.pick(w, keep: keep), false)
        }
        record(pick.token)
        let r = withLogprobs(logits, token: pick.token, topLogprobs: topLogprobs)
        return (pick.token, pick.accepted, r.logprob, r.top)
    }

    /// The probability this sampler gives `token` for `logits` now (after bias, penalties, bans,
    /// temperature, top-k, top-p and min-p). Greedy: 1 for the argmax, 0 otherwise.
    public mutating func probability(of token: Int, _ logits: UnsafeBufferPointer<Float>, banned: Set<Int> = []) -> Double {
        let n = logits.count
        guard token >= 0, token < n else { return 0 }
        var buffer = work
        work = []
        defer { work = buffer }
        if buffer.count != n { buffer = [Float](repeating: 0, count: n) }
        return buffer.withUnsafeMutableBufferPointer { w in
            adjust(logits, banned: banned, into: w)
            if parameters.isGreedy { return Self.argmax(UnsafeBufferPointer(w)) == token ? 1 : 0 }
            let keep = candidates(w)
            var mass: Double = 0
            var mine: Double = 0
            for j in 0..<keep {
                let i = Int(order[j])
                mass += Double(w[i])
                if i == token { mine = Double(w[i]) }
            }
            return mass > 0 ? mine / mass : 0
        }
    }

    private func withLogprobs(_ logits: UnsafeBufferPointer<Float>, token: Int, topLogprobs: Int) -> (token: Int, logprob: Float?, top: [TokenLogprob]) {
        guard topLogprobs >= 0 else { return (token, nil, []) }
        let (lp, top) = Self.logprobs(logits, token: token, top: topLogprobs)
        return (token, lp, top)
    }

    /// Copies `logits` into `w` with the logit bias, the penalties and the bans applied.
    private func adjust(_ logits: UnsafeBufferPointer<Float>, banned: Set<Int>, into w: UnsafeMutableBufferPointer<Float>) {
        let p = parameters
        let n = logits.count
        for i in 0..<n { w[i] = logits[i] }
        for (id, b) in p.logitBias { w[id] += b }
        if p.repetitionPenalty != 1 {
            for id in seen { w[id] = w[id] > 0 ? w[id] / p.repetitionPenalty : w[id] * p.repetitionPenalty }
        }
        if p.presencePenalty != 0 || p.frequencyPenalty != 0 {
            for (id, c) in outputCounts { w[id] -= p.presencePenalty + p.frequencyPenalty * Float(c) }
        }
        for id in banned where id >= 0 && id < n { w[id] = -.infinity }
    }

    /// The index of the largest value (the first on ties).
    public static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bv = -Float.infinity
        for i in 0..<x.count where x[i] > bv {
            bv = x[i]
            best = i
        }
        return best
    }

    /// log-softmax of `logits` at `token`, and the `top` most likely tokens with theirs.
    public static func logprobs(_ logits: UnsafeBufferPointer<Float>, token: Int, top: Int) -> (Float, [TokenLogprob]) {
        var mx = -Float.infinity
        for v in logits where v > mx { mx = v }
        var sum = 0.0
        for v in logits { sum += Double(expf(v - mx)) }
        let lse = mx + Float(log(sum))
        var best: [TokenLogprob] = []
        if top > 0 {
            for i in 0..<logits.count {
                let v = logits[i]
                if best.count < top || v > best[best.count - 1].logprob {
                    let e = TokenLogprob(token: i, logprob: v)
                    let at = best.firstIndex { $0.logprob < v } ?? best.count
                    best.insert(e, at: at)
                    if best.count > top { best.removeLast() }
                }
            }
            for i in best.indices { best[i].logprob -= lse }
        }
        return (logits[token] - lse, best)
    }

    /// Temperature, top-k, top-p, min-p: leaves the candidates in `order[0 ..< keep]` with their
    /// unnormalised probabilities in `w`, and returns `keep` (0 when every token is banned).
    private mutating func candidates(_ w: UnsafeMutableBufferPointer<Float>) -> Int {
        let p = parameters
        let n = w.count
        let invT = 1 / p.temperature
        var mx = -Float.infinity
        for i in 0..<n where w[i] > mx { mx = w[i] }
        guard mx > -.infinity else { order.removeAll(keepingCapacity: true); return 0 }
        // Candidates: every token, or the top k, sorted by descending logit only as far as needed.
        let k = p.topK > 0 ? min(p.topK, n) : n
        order.removeAll(keepingCapacity: true)
        // Probabilities after temperature (unnormalised, relative to the max).
        for i in 0..<n {
            let v = w[i]
            if v == -.infinity { continue }
            w[i] = expf((v - mx) * invT)
            order.append(Int32(i))
        }
        if order.isEmpty { return 0 }
        let needsSort = k < order.count || p.topP < 1
        if needsSort {
            // A partial sort: the k largest first (all when only top-p is set, but cut early below).
            let limit = min(k, order.count)
            let values = w
            if limit < order.count {
                order.withUnsafeMutableBufferPointer { o in Self.selectLargest(o, count: limit, by: values) }
                order.removeLast(order.count - limit)
            }
            order.sort { (a: Int32, b: Int32) -> Bool in
                let va = values[Int(a)], vb = values[Int(b)]
                return va > vb || (va == vb && a < b)
            }
        }
        var total: Double = 0
        for i in order { total += Double(w[Int(i)]) }
        var keep = order.count
        if p.topP < 1 {
            var acc: Double = 0
            for (j, i) in order.enumerated() {
                acc += Double(w[Int(i)])
                if acc >= Double(p.topP) * total {
                    keep = j + 1
                    break
                }
            }
        }
        if p.minP > 0 {
            // The largest probability is 1 (values are relative to the max logit).
            let cut = p.minP
            var kept = 0
            for j in 0..<keep where w[Int(order[j])] >= cut || j == 0 { kept = j + 1 }
            if !needsSort {
                // Unsorted candidates: filter in place.
                var m = 0
                for j in 0..<order.count where w[Int(order[j])] >= cut {
                    order[m] = order[j]
                    m += 1
                }
                keep = max(m, 1)
            } else {
                keep = kept
            }
        }
        return keep
    }

    /// A draw from the candidates `order[0 ..< keep]`, weighted by `w`.
    private mutating func pick(_ w: UnsafeMutableBufferPointer<Float>, keep: Int) -> Int {
        var mass: Double = 0
        for j in 0..<keep { mass += Double(w[Int(order[j])]) }
        let u = random.nextUnitDouble() * mass
        var acc: Double = 0
        for j in 0..<keep {
            acc += Double(w[Int(order[j])])
            if u < acc { return Int(order[j]) }
        }
        return Int(order[keep - 1])
    }

    /// Moves the `count` largest (by `values`) to the front of `o` (quickselect; order within unspecified).
    private static func selectLargest(_ o: UnsafeMutableBufferPointer<Int32>, count: Int, by values: UnsafeMutableBufferPointer<Float>) {
        var lo = 0, hi = o.count - 1
        let target = count - 1
        while lo < hi {
            let pivot = values[Int(o[(lo + hi) / 2])]
            var i = lo, j = hi
            while i <= j {
                while values[Int(o[i])] > pivot { i += 1 }
                while values[Int(o[j])] < pivot { j -= 1 }
                if i <= j {
                    o.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if target <= j { hi = j } else if target >= i { lo = i } else { return }
        }
    }
}
