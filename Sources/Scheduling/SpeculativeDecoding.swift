import Foundation

/// A language model reduced to what sampling needs: a next-token distribution for a context.
///
/// Speculative decoding is defined over this protocol, so the exact algorithm
/// can be checked on small models whose distributions are known in closed form.
public protocol LanguageModel: Sendable {
    /// Tokens are `0 ..< vocabularySize`.
    var vocabularySize: Int { get }
    /// The next-token distribution after `context` (`[V]`, non-negative, summing to 1).
    func nextTokenDistribution(context: [Int]) -> [Double]
}

/// A table-driven bigram model: the next token depends only on the last one.
///
/// Row `t` of ``transitions`` is the distribution after token `t`; ``initial``
/// is the distribution for an empty context. Useful as the toy target and
/// draft model of tests and examples.
public struct BigramLanguageModel: LanguageModel, Hashable {
    public let vocabularySize: Int
    public let initial: [Double]
    public let transitions: [[Double]]

    /// Validates and normalises the rows (each must be non-negative with a positive, finite sum).
    public init(initial: [Double], transitions: [[Double]]) throws {
        let v = initial.count
        guard v >= 1, transitions.count == v, transitions.allSatisfy({ $0.count == v }) else {
            throw SchedulingError(.invalidArgument, "a bigram model needs an initial distribution of V entries and V transition rows of V entries each")
        }
        func normalised(_ row: [Double], _ what: String) throws -> [Double] {
            guard row.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw SchedulingError(.invalidArgument, "\(what) has a negative or non-finite probability")
            }
            let s = row.reduce(0, +)
            guard s > 0 else { throw SchedulingError(.invalidArgument, "\(what) sums to 0; give it some probability mass") }
            return row.map { $0 / s }
        }
        self.vocabularySize = v
        self.initial = try normalised(initial, "initial distribution")
        self.transitions = try transitions.enumerated().map { try normalised($0.element, "transition row \($0.offset)") }
    }

    /// A random bigram model (rows drawn uniformly then raised to `sharpness` to vary entropy).
    public static func random(vocabularySize v: Int, seed: UInt64, sharpness: Double = 1) throws -> BigramLanguageModel {
        var rng = SimulationRandom(seed: seed)
        func row() -> [Double] { (0..<v).map { _ in pow(rng.openUnit(), sharpness) } }
        let initial = row()
        let rows = (0..<v).map { _ in row() }
        return try BigramLanguageModel(initial: initial, transitions: rows)
    }

    public func nextTokenDistribution(context: [Int]) -> [Double] {
        guard let last = context.last, last >= 0, last < vocabularySize else { return initial }
        return transitions[last]
    }

    /// The exact probability of `continuation` after `context`.
    public func probability(of continuation: [Int], after context: [Int]) -> Double {
        var ctx = context, p = 1.0
        for t in continuation {
            p *= nextTokenDistribution(context: ctx)[t]
            ctx.append(t)
        }
        return p
    }
}

/// Draws a token from a probability vector.
@inline(__always)
func sampleToken(_ probs: [Double], _ rng: inout SimulationRandom) -> Int {
    var u = rng.unit() * probs.reduce(0, +)
    for (i, p) in probs.enumerated() {
        if u < p { return i }
        u -= p
    }
    // Rounding left a sliver: return the last token with mass.
    return probs.lastIndex { $0 > 0 } ?? 0
}

/// Speculative decoding (Leviathan, Kalman & Matias 2023; Chen et al. 2023), exactly.
///
/// One iteration:
/// 1. the draft model proposes `γ` tokens autoregressively, `x_i ~ q_i`;
/// 2. the target model scores all `γ + 1` prefixes in one pass, giving `p_0 … p_γ`;
/// 3. for `i = 0 …`: accept `x_i` with probability `min(1, p_i(x_i) / q_i(x_i))`; on the first
///    rejection emit a token drawn from the residual `norm(max(p_i − q_i, 0))` and stop;
/// 4. if all `γ` are accepted, emit a bonus token drawn from `p_γ`.
///
/// Every iteration emits between 1 and `γ + 1` tokens, and the emitted sequence
/// has exactly the target model's distribution whatever the draft model is.
public struct SpeculativeDecoder<Target: LanguageModel, Draft: LanguageModel>: Sendable {
    public let target: Target
    public let draft: Draft
    /// Draft tokens proposed per iteration (γ ≥ 1).
    public let lookahead: Int

    /// Counters over the decoder's lifetime.
    public struct Statistics: Sendable, Hashable {
        public var iterations = 0
        /// Draft tokens the target evaluated (proposals after the first rejection are never evaluated).
        public var proposed = 0
        public var accepted = 0
        public var emitted = 0
        /// Observed acceptance rate of evaluated draft tokens (estimates α).
        public var acceptanceRate: Double { proposed == 0 ? 0 : Double(accepted) / Double(proposed) }
        /// Mean tokens emitted per target pass.
        public var tokensPerIteration: Double { iterations == 0 ? 0 : Double(emitted) / Double(iterations) }
    }

    public private(set) var statistics = Statistics()

    public init(target: Target, draft: Draft, lookahead: Int) throws {
        guard lookahead >= 1, lookahead <= 64 else {
            throw SchedulingError(.invalidArgument, "speculative lookahead γ is \(lookahead); use 1 … 64 draft tokens per step")
        }
        guard target.vocabularySize == draft.vocabularySize else {
            throw SchedulingError(.invalidArgument, "target vocabulary (\(target.vocabularySize)) and draft vocabulary (\(draft.vocabularySize)) differ; speculative decoding needs one shared vocabulary")
        }
        self.target = target
        self.draft = draft
        self.lookahead = lookahead
    }

    /// One speculative iteration after `context`; returns the emitted tokens (1 … γ + 1).
    public mutating func step(context: [Int], rng: inout SimulationRandom) -> [Int] {
        var ctx = context
        var proposals: [Int] = []
        var q: [[Double]] = []
        for _ in 0..<lookahead {
            let qi = draft.nextTokenDistribution(context: ctx)
            let x = sampleToken(qi, &rng)
            proposals.append(x)
            q.append(qi)
            ctx.append(x)
        }
        // The target's single verification pass: distributions after each prefix.
        var p: [[Double]] = []
        ctx = context
        for i in 0...lookahead {
            p.append(target.nextTokenDistribution(context: ctx))
            if i < lookahead { ctx.append(proposals[i]) }
        }
        statistics.iterations += 1
        var out: [Int] = []
        for i in 0..<lookahead {
            let x = proposals[i]
            statistics.proposed += 1
            let ratio = q[i][x] > 0 ? p[i][x] / q[i][x] : 1
            if rng.unit() < min(1, ratio) {
                out.append(x)
                statistics.accepted += 1
            } else {
                var residual = zip(p[i], q[i]).map { max($0 - $1, 0) }
                if residual.reduce(0, +) <= 0 { residual = p[i] }  // p == q: unreachable rejection, but stay exact
                out.append(sampleToken(residual, &rng))
                statistics.emitted += out.count
                return out
            }
        }
        out.append(sampleToken(p[lookahead], &rng))
        statistics.emitted += out.count
        return out
    }

    /// Generates exactly `count` tokens after `prompt` (the last iteration's surplus is dropped).
    public mutating func generate(prompt: [Int], count: Int, rng: inout SimulationRandom) -> [Int] {
        var out: [Int] = []
        while out.count < count {
            out += step(context: prompt + out, rng: &rng)
        }
        return Array(out.prefix(count))
    }
}

/// Plain autoregressive sampling from one model (the baseline speculative decoding must match).
public func sampleAutoregressively(_ model: some LanguageModel, prompt: [Int], count: Int, rng: inout SimulationRandom) -> [Int] {
    var ctx = prompt
    for _ in 0..<count { ctx.append(sampleToken(model.nextTokenDistribution(context: ctx), &rng)) }
    return Array(ctx.suffix(count))
}

/// The expected acceptance probability of one draft token, `α = Σ_x min(p(x), q(x)) = 1 − TV(p, q)`.
public func acceptanceProbability(target p: [Double], draft q: [Double]) -> Double {
    zip(p, q).reduce(0) { $0 + min($1.0, $1.1) }
}

/// The analytic performance model of speculative decoding (Leviathan et al., 2023, §3.4).
///
/// With per-token acceptance rate `α` (assumed independent across positions),
/// lookahead `γ` and cost ratio `c` (one draft step / one target step):
/// - expected tokens per target pass: `(1 − α^(γ+1)) / (1 − α)` (`γ + 1` when `α = 1`);
/// - cost of an iteration in target-step units: `γ·c + 1`;
/// - expected speed-up over plain decoding: their ratio.
public struct SpeculativeDecodingModel: Sendable, Hashable, Codable {
    public var acceptanceRate: Double
    public var lookahead: Int
    public var costRatio: Double

    public init(acceptanceRate: Double, lookahead: Int, costRatio: Double) throws {
        guard acceptanceRate.isFinite, acceptanceRate >= 0, acceptanceRate <= 1 else {
            throw SchedulingError.invalid("acceptance rate α", acceptanceRate, expected: "a probability in 0 … 1")
        }
        guard lookahead >= 1, lookahead <= 64 else {
            throw SchedulingError(.invalidArgument, "lookahead γ is \(lookahead); use 1 … 64")
        }
        try requireFinite(costRatio, "draft/target cost ratio c", nonNegative: true)
        self.acceptanceRate = acceptanceRate
        self.lookahead = lookahead
        self.costRatio = costRatio
    }

    /// `(1 − α^(γ+1)) / (1 − α)`.
    public var expectedTokensPerStep: Double {
        let a = acceptanceRate, g = Double(lookahead)
        if a >= 1 - 1e-12 { return g + 1 }
        return (1 - pow(a, g + 1)) / (1 - a)
    }

    /// `γ·c + 1` target-step units per iteration.
    public var relativeIterationCost: Double { Double(lookahead) * costRatio + 1 }

    /// Expected wall-clock speed-up over plain decoding.
    public var speedup: Double { expectedTokensPerStep / relativeIterationCost }

    /// The lookahead in `1 … maxLookahead` with the best expected speed-up for this α and c.
    public func bestLookahead(upTo maxLookahead: Int = 16) throws -> SpeculativeDecodingModel {
        var best = self
        for g in 1...max(1, maxLookahead) {
            let m = try SpeculativeDecodingModel(acceptanceRate: acceptanceRate, lookahead: g, costRatio: costRatio)
            if g == 1 || m.speedup > best.speedup { best = m }
        }
        return best
    }
}
