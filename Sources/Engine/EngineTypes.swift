import KVPaging
import ModelRuntime
import Scheduling

/// What went wrong with an engine or one of its requests.
public struct EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// A request field is out of range (sampling, lengths, token ids).
        case invalidRequest
        /// The request can never run here: prompt + `max_tokens` exceed the context or the KV pool.
        case requestTooLarge
        /// The waiting queue is at its bound; retry later.
        case overloaded
        /// The engine is shutting down or shut down.
        case shutDown
        /// The engine's configuration cannot work with this model.
        case invalidConfiguration
        /// The forward pass failed (a kernel error, non-finite logits).
        case modelFailure
    }

    public var code: Code
    /// A sentence that says what was wrong and what to do.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// One generation request.
public struct EngineRequest: Sendable {
    /// The prompt as token ids (see ``InferenceEngine/encode(_:)`` and ``InferenceEngine/chatPrompt(_:)``).
    public var promptTokens: [Int]
    public var parameters: GenerationParameters
    /// Independent samples of the prompt (OpenAI's `n`). They share the prompt's K/V blocks
    /// (copy-on-write); with a seed, sample `k` uses `seed + k`, so `n` samples equal `n` requests
    /// seeded `seed, seed + 1, …`.
    public var samples: Int
    /// Lower values are served first by the priority policy (vLLM's convention).
    public var priority: Int
    /// Separates this tenant's prompts in the prefix cache (vLLM's `cache_salt`).
    public var cacheSalt: String?
    /// Verify n-gram draft tokens for this request when the engine speculates (default true).
    public var speculate: Bool

    public init(promptTokens: [Int], parameters: GenerationParameters = GenerationParameters(), samples: Int = 1,
                priority: Int = 0, cacheSalt: String? = nil, speculate: Bool = true) {
        self.promptTokens = promptTokens
        self.parameters = parameters
        self.samples = samples
        self.priority = priority
        self.cacheSalt = cacheSalt
        self.speculate = speculate
    }
}

/// How a sample ended, with its counts and timings.
public struct GenerationCompletion: Sendable, Hashable {
    /// Which of the request's samples (0 ..< n).
    public var sample: Int
    public var finishReason: FinishReason
    public var promptTokens: Int
    /// Prompt tokens served from the prefix cache at the first admission.
    public var cachedPromptTokens: Int
    /// Tokens generated (EOS and stop tokens not counted).
    public var completionTokens: Int
    /// Text held back at the end (an incomplete stop-string prefix that never matched); append it.
    public var trailingText: String
    /// Seconds from submission to the first token, and to the last.
    public var timeToFirstToken: Double
    public var latency: Double
    /// Times this request was preempted (its K/V recomputed).
    public var preemptions: Int
}

/// What a generation stream delivers.
public enum GenerationEvent: Sendable, Hashable {
    /// The next token of sample `sample`, with the text it completes (possibly empty while a
    /// multi-byte character or a possible stop string is held back).
    case token(GeneratedToken, sample: Int)
    /// Sample `sample` ended. The stream ends after every sample has.
    case finished(GenerationCompletion)
}

/// Prompt-lookup (n-gram) speculative decoding: draft tokens are copied from the earlier context
/// where its last tokens occurred before, then verified by the model in one pass.
public struct SpeculativeConfiguration: Sendable, Hashable {
    /// Most draft tokens per decode step (γ).
    public var lookahead: Int
    /// Longest and shortest suffix to look up (vLLM's `prompt_lookup_max` / `prompt_lookup_min`).
    public var maximumMatch: Int
    public var minimumMatch: Int

    public init(lookahead: Int = 4, maximumMatch: Int = 4, minimumMatch: Int = 2) {
        self.lookahead = lookahead
        self.maximumMatch = maximumMatch
        self.minimumMatch = minimumMatch
    }
}

/// An engine's limits and policies.
public struct EngineConfiguration: Sendable {
    /// Threads of the forward pass.
    public var threads: Int
    /// K/V capacity in tokens over all sequences (rounded up to whole blocks).
    public var kvCacheTokens: Int
    public var blockSize: Int
    /// How K/V are stored: float16 (default, as llama.cpp and vLLM do) halves what attention reads per step.
    public var kvPrecision: KVPrecision
    /// Longest prompt + output of one sequence; default the model's context.
    public var contextLength: Int?
    /// The scheduler's step limits (`max_num_seqs`, `max_num_batched_tokens`, chunked prefill).
    public var limits: SchedulerLimits
    /// Who runs each step: ``ContinuousBatchingPolicy`` (default), ``PriorityBatchingPolicy``,
    /// ``NoBatchingPolicy``, ``StaticBatchingPolicy`` (give it a `launchAfter`: a server's arrivals
    /// never complete) or ``DynamicBatchingPolicy``.
    public var policy: any BatchingPolicy
    public var enablePrefixCaching: Bool
    /// Fraction of blocks admission keeps free for running sequences to grow into (vLLM's watermark).
    public var watermark: Double
    public var speculative: SpeculativeConfiguration?
    /// Events buffered per request before the engine holds that request back (its consumer is slow).
    public var streamBufferLimit: Int
    /// Requests waiting beyond this are refused with ``EngineError/Code/overloaded``.
    public var maxWaitingRequests: Int
    /// Label value of the `model_name` metric dimension.
    public var modelName: String

    public init(threads: Int = 2, kvCacheTokens: Int = 16_384, blockSize: Int = 16, kvPrecision: KVPrecision = .float16, contextLength: Int? = nil,
                limits: SchedulerLimits = SchedulerLimits(maxNumSeqs: 64, maxBatchedTokens: 512),
                policy: any BatchingPolicy = ContinuousBatchingPolicy(), enablePrefixCaching: Bool = true,
                watermark: Double = 0.01, speculative: SpeculativeConfiguration? = nil,
                streamBufferLimit: Int = 256, maxWaitingRequests: Int = 4096, modelName: String = "model") {
        self.threads = threads
        self.kvCacheTokens = kvCacheTokens
        self.blockSize = blockSize
        self.kvPrecision = kvPrecision
        self.contextLength = contextLength
        self.limits = limits
        self.policy = policy
        self.enablePrefixCaching = enablePrefixCaching
        self.watermark = watermark
        self.speculative = speculative
        self.streamBufferLimit = streamBufferLimit
        self.maxWaitingRequests = maxWaitingRequests
        self.modelName = modelName
    }
}

/// A snapshot of the engine's counters (also exported through swift-metrics).
public struct EngineStatistics: Sendable, Hashable {
    public var requestsRunning = 0
    public var requestsWaiting = 0
    /// Requests whose streams are open (all samples counted as one).
    public var liveRequests = 0
    /// Scheduler sequences alive (running or waiting).
    public var liveSequences = 0
    public var totalBlocks = 0
    /// Blocks held by sequences (cached free blocks not counted).
    public var activeBlocks = 0
    public var kvUsage: Double = 0
    public var steps = 0
    public var preemptions = 0
    public var prefixCacheQueriedTokens = 0
    public var prefixCacheHitTokens = 0
    public var draftTokens = 0
    public var acceptedDraftTokens = 0
    public var promptTokens = 0
    public var generationTokens = 0
    public var finishedRequests = 0
    public var abortedRequests = 0
    /// Copy-on-write block copies performed.
    public var blockCopies = 0
}
