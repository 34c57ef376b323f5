/// A service-level objective: the latency limits a request must meet to count towards goodput.
///
/// A `nil` limit is not checked. Limits are in seconds of simulated time.
public struct ServiceLevelObjective: Sendable, Hashable, Codable {
    /// A short label for tables ("interactive", "batch").
    public var name: String
    /// Maximum time to first token.
    public var maxTTFT: Double?
    /// Maximum time per output token, `(E2E − TTFT) / (output − 1)`.
    public var maxTPOT: Double?
    /// Maximum end-to-end latency (arrival to last token).
    public var maxE2E: Double?

    public init(name: String = "default", maxTTFT: Double? = nil, maxTPOT: Double? = nil, maxE2E: Double? = nil) {
        self.name = name
        self.maxTTFT = maxTTFT
        self.maxTPOT = maxTPOT
        self.maxE2E = maxE2E
    }

    /// The reference's interactive targets: TTFT under 1 s, E2E under 5 s (plus a 100 ms TPOT, ≈ 10 tokens/s).
    public static let interactive = ServiceLevelObjective(name: "interactive", maxTTFT: 1.0, maxTPOT: 0.1, maxE2E: nil)

    /// Validates that every limit is finite and positive.
    public func validate() throws {
        for (what, v) in [("maxTTFT", maxTTFT), ("maxTPOT", maxTPOT), ("maxE2E", maxE2E)] {
            if let v { try requireFinite(v, "SLO \(name) \(what)", positive: true) }
        }
    }
}

/// A prompt prefix shared by a group of requests (a system prompt, a few-shot preamble).
///
/// Requests with the same `group` share their first `length` prompt tokens
/// exactly, so a prefix cache can serve those tokens' KV blocks without recomputing them.
public struct SharedPrefix: Sendable, Hashable, Codable {
    public var group: Int
    public var length: Int
    public init(group: Int, length: Int) {
        self.group = group
        self.length = length
    }
}

/// One inference request as the scheduler sees it.
///
/// The simulator generates exactly ``outputTokens`` tokens for it (the
/// maximum number of new tokens; a real engine may stop earlier at an
/// end-of-sequence token, which a trace records as a shorter output).
public struct InferenceRequest: Sendable, Hashable, Codable {
    /// A caller-chosen identifier, reported back in per-request results.
    public var id: Int
    /// Arrival time in seconds of simulated time.
    public var arrivalTime: Double
    /// Prompt length in tokens (≥ 1).
    public var promptTokens: Int
    /// Tokens to generate (≥ 1).
    public var outputTokens: Int
    /// Scheduling priority; **lower values are served first** (vLLM's convention). Default 0.
    public var priority: Int
    /// Index into the simulation's SLO classes (``SimulationConfiguration/sloClasses``). Default 0.
    public var sloClass: Int
    /// Optional deadline in seconds after arrival; a request finishing later misses its SLO.
    public var deadline: Double?
    /// Optional shared prompt prefix, for prefix caching.
    public var sharedPrefix: SharedPrefix?
    /// The prompt's token ids, when known (`count == promptTokens`). Prefix caching then matches real
    /// prompts block by block; without them only ``sharedPrefix`` groups share cached blocks.
    public var promptTokenIDs: [Int]?
    /// Separates tenants in the prefix cache: prompts with different salts never share cached blocks
    /// (vLLM's `cache_salt`). `nil` shares with every other unsalted prompt.
    public var cacheSalt: UInt64?

    public init(
        id: Int, arrivalTime: Double, promptTokens: Int, outputTokens: Int,
        priority: Int = 0, sloClass: Int = 0, deadline: Double? = nil, sharedPrefix: SharedPrefix? = nil,
        promptTokenIDs: [Int]? = nil, cacheSalt: UInt64? = nil
    ) {
        self.promptTokenIDs = promptTokenIDs
        self.cacheSalt = cacheSalt
        self.id = id
        self.arrivalTime = arrivalTime
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.priority = priority
        self.sloClass = sloClass
        self.deadline = deadline
        self.sharedPrefix = sharedPrefix
    }

    /// The most prompt or output tokens one request may carry (10⁹): far beyond any model's context, and
    /// small enough that sums of token counts can never overflow `Int`.
    public static let maximumTokens = 1_000_000_000
    /// The largest priority magnitude accepted (10⁹).
    public static let maximumPriorityMagnitude = 1_000_000_000

    /// Checks the request's numbers; the simulator calls this for every request before it starts.
    public func validate() throws {
        try requireFinite(arrivalTime, "request \(id) arrival time", nonNegative: true)
        guard promptTokens >= 1, promptTokens <= Self.maximumTokens else {
            throw SchedulingError(.invalidArgument, "request \(id) has \(promptTokens) prompt tokens; use 1 … \(Self.maximumTokens)")
        }
        guard outputTokens >= 1, outputTokens <= Self.maximumTokens else {
            throw SchedulingError(.invalidArgument, "request \(id) asks for \(outputTokens) output tokens; ask for 1 … \(Self.maximumTokens)")
        }
        guard priority.magnitude <= UInt(Self.maximumPriorityMagnitude) else {
            throw SchedulingError(.invalidArgument, "request \(id) has priority \(priority); use a value within ±\(Self.maximumPriorityMagnitude)")
        }
        guard sloClass >= 0 else {
            throw SchedulingError(.invalidArgument, "request \(id) has SLO class \(sloClass); classes are numbered from 0")
        }
        if let deadline { try requireFinite(deadline, "request \(id) deadline", positive: true) }
        if let ids = promptTokenIDs, ids.count != promptTokens {
            throw SchedulingError(.invalidArgument, "request \(id) gives \(ids.count) prompt token ids for \(promptTokens) prompt tokens; give one id per token")
        }
        if let p = sharedPrefix, p.length < 0 || p.length > promptTokens {
            throw SchedulingError(.invalidArgument, "request \(id) shares a \(p.length)-token prefix but its prompt has \(promptTokens) tokens; the prefix must fit in the prompt")
        }
    }
}

/// Where a request is in its lifecycle.
///
/// ```
/// waiting ──admit──▶ running ──last token──▶ finished
///    ▲                  │
///    └────preempted─────┘   (recompute: KV freed; swap: KV moved to host memory)
/// waiting ──cannot ever fit──▶ rejected
/// ```
public enum RequestPhase: UInt8, Sendable, Hashable, Codable {
    /// Not yet arrived (future arrival in the simulation).
    case pending
    /// Arrived and queued, not holding KV blocks.
    case waiting
    /// Holding KV blocks and scheduled step by step.
    case running
    /// Evicted from the running set to free KV blocks or a sequence slot; queued again.
    case preempted
    /// Generated all its tokens.
    case finished
    /// Can never be served (larger than the KV pool or the model's context); see the rejection reason.
    case rejected
}
