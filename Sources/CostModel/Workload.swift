/// A token-count distribution summarised by its mean, 95th percentile and maximum.
public struct TokenDistribution: Sendable, Hashable, Codable {
    public var mean: Double
    public var p95: Double
    /// The longest allowed (sets the engine's maximum model length).
    public var max: Int

    public init(mean: Double, p95: Double, max: Int) {
        self.mean = mean
        self.p95 = p95
        self.max = max
    }

    func validate(_ what: String) throws(CostModelError) {
        try Check.positive(mean, "\(what) mean tokens", max: 1e7)
        try Check.positive(p95, "\(what) p95 tokens", max: 1e7)
        try Check.positive(max, "\(what) max tokens", max: 1 << 24)
        guard p95 >= mean else { throw .invalid("\(what) p95 tokens", "\(p95)", expected: "at least the mean (\(mean))") }
        guard Double(max) >= p95 else { throw .invalid("\(what) max tokens", "\(max)", expected: "at least the p95 (\(p95))") }
    }
}

/// Offered load on a deployment.
public struct Workload: Sendable, Hashable, Codable {
    public var requestsPerSecond: Double
    public var prompt: TokenDistribution
    public var output: TokenDistribution

    public init(requestsPerSecond: Double, prompt: TokenDistribution, output: TokenDistribution) {
        self.requestsPerSecond = requestsPerSecond
        self.prompt = prompt
        self.output = output
    }

    /// Longest sequence the engine must accept: max prompt + max output.
    public var maxSequenceTokens: Int { prompt.max + output.max }
    /// Mean tokens per second (prompt + output) the deployment processes.
    public var tokensPerSecond: Double { requestsPerSecond * (prompt.mean + output.mean) }

    func validate() throws(CostModelError) {
        try Check.positive(requestsPerSecond, "Requests per second", max: 1e6)
        try prompt.validate("Prompt")
        try output.validate("Output")
    }
}

/// Latency targets at the 95th percentile.
public struct ServiceLevelObjectives: Sendable, Hashable, Codable {
    /// p95 time to first token, seconds.
    public var p95TimeToFirstToken: Double
    /// p95 time per output token, seconds.
    public var p95TimePerOutputToken: Double

    public init(p95TimeToFirstToken: Double, p95TimePerOutputToken: Double) {
        self.p95TimeToFirstToken = p95TimeToFirstToken
        self.p95TimePerOutputToken = p95TimePerOutputToken
    }

    func validate() throws(CostModelError) {
        try Check.positive(p95TimeToFirstToken, "p95 TTFT SLO (s)", max: 3600)
        try Check.positive(p95TimePerOutputToken, "p95 TPOT SLO (s)", max: 60)
    }
}
