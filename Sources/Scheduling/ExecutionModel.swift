import Foundation

/// What one engine step computes: the aggregate shape an execution model prices.
///
/// A step runs a batch of sequences through the model once. Sequences in
/// *prefill* (a prompt chunk, or recomputation after preemption) contribute
/// many tokens; sequences in *decode* contribute exactly one token each.
public struct StepShape: Sendable, Hashable, Codable {
    /// Tokens processed for sequences in prefill (prompt chunks and recomputation).
    public var prefillTokens: Int
    /// Number of sequences in prefill this step.
    public var prefillSequences: Int
    /// Decode tokens, which equals the number of decoding sequences.
    public var decodeTokens: Int
    /// Σ over every scheduled sequence of the tokens already in its KV cache before the step
    /// (the cached context the step reads; a decode at position `n` contributes `n`).
    public var contextTokens: Int
    /// Tokens whose KV is copied host → device before the step (swap-in).
    public var swapInTokens: Int
    /// Tokens whose KV is copied device → host before the step (swap-out).
    public var swapOutTokens: Int
    /// Speculative decoding: draft tokens the target verifies this step, on top of one token per
    /// decoding sequence (γ per decoding sequence, fewer near the end of an output).
    public var draftTokens: Int = 0

    public init(prefillTokens: Int = 0, prefillSequences: Int = 0, decodeTokens: Int = 0, contextTokens: Int = 0, swapInTokens: Int = 0, swapOutTokens: Int = 0) {
        self.prefillTokens = prefillTokens
        self.prefillSequences = prefillSequences
        self.decodeTokens = decodeTokens
        self.contextTokens = contextTokens
        self.swapInTokens = swapInTokens
        self.swapOutTokens = swapOutTokens
    }

    /// Sequences in the step (`[B]` in kernel terms).
    public var batchSize: Int { prefillSequences + decodeTokens }
    /// Every token the step processes.
    public var totalTokens: Int { prefillTokens + decodeTokens }
}

/// Prices an engine step in seconds: the seam between the scheduler and the hardware.
///
/// Implementations: ``LinearStepModel`` (fitted from a real engine's step
/// timings), ``RooflineStepModel`` (derived from a model, a GPU, a precision and a
/// tensor-parallel degree through CostModel). A real engine plugs in here too.
public protocol ExecutionModel: Sendable {
    /// Seconds one step of this shape takes. Must be finite and > 0 for a non-empty step.
    func stepTime(_ shape: StepShape) -> Double
    /// A one-line description for reports.
    var summary: String { get }
}

/// `t = β0 + β1·prefillTokens + β2·decodeTokens + β3·contextTokens (+ βswap·swappedTokens)`.
///
/// The simplest model that separates the three costs of a step: fixed launch
/// and weight-streaming overhead (β0), compute-bound prefill (β1 per token),
/// decode (β2 per sequence) and attention over the KV cache (β3 per context
/// token). Fit it to a real engine's measured steps with ``fit(_:includeContext:)``.
/// With only β0 it is a constant step time, which makes hand-checked timelines easy.
public struct LinearStepModel: ExecutionModel, Hashable, Codable {
    public var beta0: Double
    public var beta1: Double
    public var beta2: Double
    public var beta3: Double
    /// Seconds per swapped token (host ↔ device copy). Default 0.
    public var swapSecondsPerToken: Double

    public init(beta0: Double, beta1: Double = 0, beta2: Double = 0, beta3: Double = 0, swapSecondsPerToken: Double = 0) throws {
        for (n, v) in [("β0", beta0), ("β1", beta1), ("β2", beta2), ("β3", beta3), ("swap seconds per token", swapSecondsPerToken)] {
            try requireFinite(v, "linear step model \(n)", nonNegative: n != "β0")
        }
        guard beta0 > 0 || beta1 > 0 || beta2 > 0 else {
            throw SchedulingError(.invalidConfiguration, "linear step model has β0 = β1 = β2 = 0, so steps would take no time; give a positive fixed cost or per-token cost")
        }
        self.beta0 = beta0
        self.beta1 = beta1
        self.beta2 = beta2
        self.beta3 = beta3
        self.swapSecondsPerToken = swapSecondsPerToken
    }

    /// A constant step time (every step takes `seconds`).
    public static func constant(_ seconds: Double) throws -> LinearStepModel { try LinearStepModel(beta0: seconds) }

    @inline(__always)
    public func stepTime(_ s: StepShape) -> Double {
        let t = beta0 + beta1 * Double(s.prefillTokens) + beta2 * Double(s.decodeTokens) + beta3 * Double(s.contextTokens)
            + swapSecondsPerToken * Double(s.swapInTokens + s.swapOutTokens)
        // A fitted β0 can be slightly negative; a step never takes less than a microsecond.
        return max(t, 1e-6)
    }

    public var summary: String {
        String(format: "linear: t = %.4g s + %.4g s·prefill + %.4g s·decode + %.4g s·context", beta0, beta1, beta2, beta3)
    }

    /// One measured engine step.
    public struct Sample: Sendable, Hashable, Codable {
        public var shape: StepShape
        /// Measured seconds.
        public var seconds: Double
        public init(shape: StepShape, seconds: Double) {
            self.shape = shape
            self.seconds = seconds
        }
    }

    /// How well a fit reproduces its samples.
    public struct FitReport: Sendable, Hashable, Codable {
        public var model: LinearStepModel
        public var samples: Int
        /// Root-mean-square error in seconds.
        public var rmse: Double
        /// Mean absolute percentage error (0.05 = 5 %).
        public var meanAbsolutePercentageError: Double
        /// Largest relative error over the samples.
        public var maxRelativeError: Double
        /// Coefficient of determination.
        public var rSquared: Double
    }

    /// Ordinary least squares fit of the coefficients to measured steps.
    ///
    /// Solves the normal equations in Float64 with columns scaled to unit
    /// norm (so token counts in the thousands do not swamp the intercept) and
    /// partial pivoting. Coefficients are not constrained to be positive; a
    /// negative per-token coefficient usually means the samples do not vary that
    /// quantity enough, and the fit is rejected with a message saying so.
    public static func fit(_ samples: [Sample], includeContext: Bool = true) throws -> FitReport {
        let k = includeContext ? 4 : 3
        guard samples.count >= k + 1 else {
            throw SchedulingError(.fitFailed, "\(samples.count) step timings are too few to fit \(k) coefficients; measure at least \(k + 1) steps with varied batch shapes")
        }
        for (i, s) in samples.enumerated() {
            guard s.seconds.isFinite, s.seconds > 0 else {
                throw SchedulingError(.fitFailed, "sample \(i + 1) has step time \(s.seconds); times must be finite and > 0")
            }
        }
        func row(_ s: StepShape) -> [Double] {
            var r = [1, Double(s.prefillTokens), Double(s.decodeTokens)]
            if includeContext { r.append(Double(s.contextTokens)) }
            return r
        }
        let rows = samples.map { row($0.shape) }
        var scale = [Double](repeating: 0, count: k)
        for r in rows { for j in 0..<k { scale[j] += r[j] * r[j] } }
        let names = ["intercept", "prefill tokens", "decode tokens", "context tokens"]
        for j in 0..<k {
            guard scale[j] > 0 else {
                throw SchedulingError(.fitFailed, "every sample has zero \(names[j]); vary it in the measurements or fit without it")
            }
            scale[j] = scale[j].squareRoot()
        }
        // Normal equations A x = b with scaled columns.
        var a = [[Double]](repeating: [Double](repeating: 0, count: k + 1), count: k)
        for (r, s) in zip(rows, samples) {
            for i in 0..<k {
                let ri = r[i] / scale[i]
                for j in 0..<k { a[i][j] += ri * r[j] / scale[j] }
                a[i][k] += ri * s.seconds
            }
        }
        // Gaussian elimination with partial pivoting.
        for c in 0..<k {
            var p = c
            for r in (c + 1)..<k where abs(a[r][c]) > abs(a[p][c]) { p = r }
            guard abs(a[p][c]) > 1e-10 else {
                throw SchedulingError(.fitFailed, "the samples cannot separate the \(names[c]) coefficient from the others (collinear columns); vary prefill and decode tokens independently")
            }
            a.swapAt(c, p)
            for r in 0..<k where r != c {
                let f = a[r][c] / a[c][c]
                if f != 0 { for j in c...k { a[r][j] -= f * a[c][j] } }
            }
        }
        var beta = (0..<k).map { a[$0][k] / a[$0][$0] / scale[$0] }
        if !includeContext { beta.append(0) }
        for j in 1..<4 where beta[j] < -1e-12 {
            throw SchedulingError(.fitFailed, String(format: "fitted %@ coefficient is negative (%.3g s/token); the samples do not vary it enough or the engine is not linear in it", names[j], beta[j]))
        }
        let model = try LinearStepModel(beta0: beta[0], beta1: max(0, beta[1]), beta2: max(0, beta[2]), beta3: max(0, beta[3]))
        var sse = 0.0, ape = 0.0, maxRel = 0.0, mean = 0.0
        for s in samples { mean += s.seconds }
        mean /= Double(samples.count)
        var sst = 0.0
        for s in samples {
            let pred = beta[0] + beta[1] * Double(s.shape.prefillTokens) + beta[2] * Double(s.shape.decodeTokens) + beta[3] * Double(s.shape.contextTokens)
            let e = pred - s.seconds
            sse += e * e
            sst += (s.seconds - mean) * (s.seconds - mean)
            let rel = abs(e) / s.seconds
            ape += rel
            maxRel = max(maxRel, rel)
        }
        let n = Double(samples.count)
        return FitReport(model: model, samples: samples.count, rmse: (sse / n).squareRoot(),
                         meanAbsolutePercentageError: ape / n, maxRelativeError: maxRel,
                         rSquared: sst > 0 ? 1 - sse / sst : 1)
    }

    /// Parses step timings from CSV with a header naming `prefill_tokens`, `decode_tokens`,
    /// optionally `context_tokens`, and the time as `step_time` / `seconds` (seconds) or `step_time_ms` (milliseconds).
    public static func parseTimings(csv text: String) throws -> [Sample] {
        var header: (p: Int, d: Int, c: Int?, t: Int, ms: Bool, width: Int)?
        var out: [Sample] = []
        var lineNo = 0
        for raw in TraceReader.textLines(text) {
            lineNo += 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let h = header else {
                let names = cells.map { $0.lowercased() }
                let ms = names.firstIndex(of: "step_time_ms")
                guard let p = names.firstIndex(of: "prefill_tokens"), let d = names.firstIndex(of: "decode_tokens"),
                      let t = ms ?? names.firstIndex(where: { $0 == "step_time" || $0 == "seconds" || $0 == "step_time_s" }) else {
                    throw SchedulingError(.malformedInput, "timing CSV header '\(line)' must name prefill_tokens, decode_tokens and step_time (seconds) or step_time_ms; context_tokens is optional", line: lineNo)
                }
                header = (p, d, names.firstIndex(of: "context_tokens"), t, ms != nil, cells.count)
                continue
            }
            guard cells.count == h.width else {
                throw SchedulingError(.malformedInput, "expected \(h.width) comma-separated fields, found \(cells.count)", line: lineNo)
            }
            func int(_ i: Int, _ what: String) throws -> Int {
                guard let v = Int(cells[i]), v >= 0 else { throw SchedulingError(.malformedInput, "\(what) '\(cells[i])' is not a whole number >= 0", line: lineNo) }
                return v
            }
            guard let t = Double(cells[h.t]), t.isFinite, t > 0 else {
                throw SchedulingError(.malformedInput, "step time '\(cells[h.t])' is not a number > 0", line: lineNo)
            }
            let shape = StepShape(prefillTokens: try int(h.p, "prefill_tokens"), decodeTokens: try int(h.d, "decode_tokens"),
                                  contextTokens: try h.c.map { try int($0, "context_tokens") } ?? 0)
            out.append(Sample(shape: shape, seconds: h.ms ? t / 1000 : t))
        }
        guard header != nil else { throw SchedulingError(.malformedInput, "the timing CSV is empty; it needs a header and measurements") }
        return out
    }
}

/// Prices steps of speculative decoding on top of any execution model.
///
/// A step with `d` decoding sequences and `n` draft tokens costs the target's verification pass
/// over `d + n` decode tokens, plus `γ` draft steps of `c` × the target's plain decode step
/// (the cost ratio `c` of ``SpeculativeDecodingModel``).
public struct SpeculativeExecutionModel: ExecutionModel {
    public let target: any ExecutionModel
    public let speculation: SpeculativeDecodingModel

    public init(target: any ExecutionModel, speculation: SpeculativeDecodingModel) {
        self.target = target
        self.speculation = speculation
    }

    public func stepTime(_ s: StepShape) -> Double {
        guard s.draftTokens > 0 else { return target.stepTime(s) }
        var verify = s
        verify.decodeTokens += s.draftTokens
        verify.draftTokens = 0
        let plainDecode = StepShape(decodeTokens: s.decodeTokens, contextTokens: s.contextTokens)
        let draft = Double(speculation.lookahead) * speculation.costRatio * target.stepTime(plainDecode)
        return target.stepTime(verify) + draft
    }

    public var summary: String {
        target.summary + String(format: " + speculative decoding (α %.2f, γ %d, c %.2f)", speculation.acceptanceRate, speculation.lookahead, speculation.costRatio)
    }
}
