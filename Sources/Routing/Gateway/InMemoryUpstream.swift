import Synchronization

/// An in-process upstream driven by a script: replies, failures, latencies, hangs and dropped
/// streams on demand. For tests, examples and demos; latency is spent on the given clock, so with a
/// ``ManualClock`` a whole fault-injection run takes no wall time.
public final class InMemoryUpstream: Upstream {
    /// What one call does.
    public enum Action: Sendable, Hashable {
        /// Answer with `text` after `latency`; `usage` nil computes it with ``TokenEstimator``.
        case reply(text: String, latency: Duration = .zero, usage: Usage? = nil)
        /// Fail with `error` after `latency`.
        case fail(UpstreamError, latency: Duration = .zero)
        /// Never answer: the attempt times out after its timeout (or after 1 hour without one).
        case hang
        /// Stream `chunks` chunks of `text`, then drop the connection (non-streaming calls fail at once).
        case dropAfter(chunks: Int, text: String, latency: Duration = .zero)
    }

    /// One call as the upstream saw it.
    public struct Call: Sendable, Hashable {
        public var at: RoutingInstant
        public var requestID: String
        public var attempt: Int
        public var model: String
        public var streaming: Bool
    }

    public let id: String
    private let clock: any RoutingClock
    private let script: @Sendable (_ call: Int, _ request: ChatCompletionRequest) -> Action
    private let log = Mutex<[Call]>([])
    private let estimator = TokenEstimator()

    /// - Parameters:
    ///   - id: a name for messages and response ids.
    ///   - clock: the clock latencies are spent on.
    ///   - script: decides each call's action from its 0-based index and the request.
    public init(id: String, clock: any RoutingClock,
                script: @escaping @Sendable (_ call: Int, _ request: ChatCompletionRequest) -> Action) {
        self.id = id
        self.clock = clock
        self.script = script
    }

    /// An upstream that always answers `text` after `latency`.
    public convenience init(id: String, clock: any RoutingClock, replying text: String, latency: Duration = .zero) {
        self.init(id: id, clock: clock) { _, _ in .reply(text: text, latency: latency) }
    }

    /// Every call so far, in order.
    public var calls: [Call] { log.withLock { $0 } }
    public var callCount: Int { log.withLock { $0.count } }

    private func record(_ request: ChatCompletionRequest, _ context: UpstreamCallContext, streaming: Bool) -> Int {
        let now = clock.now
        return log.withLock {
            $0.append(Call(at: now, requestID: context.requestID, attempt: context.attempt, model: request.model, streaming: streaming))
            return $0.count - 1
        }
    }

    /// Waits `latency`, or the timeout if that is shorter (then throws a timeout).
    private func spend(_ latency: Duration, timeout: Duration?) async throws {
        if let timeout, latency > timeout {
            try await clock.sleep(for: timeout)
            throw UpstreamError(kind: .timeout, message: "\(id) did not answer within \(timeout)")
        }
        try await clock.sleep(for: latency)
    }

    private func usage(_ request: ChatCompletionRequest, _ text: String) -> Usage {
        Usage(promptTokens: estimator.promptTokens(of: request), completionTokens: estimator.tokens(in: text))
    }

    public func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse {
        let index = record(request, context, streaming: false)
        switch script(index, request) {
        case .reply(let text, let latency, let usage):
            try await spend(latency, timeout: context.timeout)
            return ChatCompletionResponse(
                id: "chatcmpl-\(id)-\(index)", created: Int64(clock.unixSeconds), model: request.model,
                choices: [.init(index: 0, message: .assistant(text), finishReason: "stop")],
                usage: usage ?? self.usage(request, text))
        case .fail(let error, let latency):
            try await spend(latency, timeout: context.timeout)
            throw error
        case .hang:
            try await spend(.seconds(3600), timeout: context.timeout)
            throw UpstreamError(kind: .timeout, message: "\(id) hung")
        case .dropAfter:
            throw UpstreamError(kind: .connectionDropped, message: "\(id) dropped the connection")
        }
    }

    public func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext)
        -> AsyncThrowingStream<ChatCompletionChunk, any Error>
    {
        let index = record(request, context, streaming: true)
        let action = script(index, request)
        let (stream, continuation) = AsyncThrowingStream<ChatCompletionChunk, any Error>.makeStream()
        let created = Int64(clock.unixSeconds)
        let chunkID = "chatcmpl-\(id)-\(index)"
        let includeUsage = request.streamOptions?.includeUsage ?? false
        let task = Task { [self] in
            func chunk(_ content: String?, role: ChatRole? = nil, finish: String? = nil) -> ChatCompletionChunk {
                ChatCompletionChunk(id: chunkID, created: created, model: request.model,
                                    choices: [.init(index: 0, delta: ChatDelta(role: role, content: content), finishReason: finish)])
            }
            func pieces(_ text: String) -> [String] {
                let words = text.split(separator: " ", omittingEmptySubsequences: false)
                return words.enumerated().map { $0.offset == words.count - 1 ? String($0.element) : $0.element + " " }
            }
            do {
                switch action {
                case .reply(let text, let latency, let usage):
                    try await spend(latency, timeout: context.timeout)
                    continuation.yield(chunk(nil, role: .assistant))
                    for piece in pieces(text) { continuation.yield(chunk(piece)) }
                    continuation.yield(chunk(nil, finish: "stop"))
                    if includeUsage {
                        continuation.yield(ChatCompletionChunk(id: chunkID, created: created, model: request.model, choices: [],
                                                               usage: usage ?? self.usage(request, text)))
                    }
                    continuation.finish()
                case .fail(let error, let latency):
                    try await spend(latency, timeout: context.timeout)
                    continuation.finish(throwing: error)
                case .hang:
                    try await spend(.seconds(3600), timeout: context.timeout)
                    continuation.finish(throwing: UpstreamError(kind: .timeout, message: "\(id) hung"))
                case .dropAfter(let count, let text, let latency):
                    try await spend(latency, timeout: context.timeout)
                    continuation.yield(chunk(nil, role: .assistant))
                    for piece in pieces(text).prefix(count) { continuation.yield(chunk(piece)) }
                    continuation.finish(throwing: UpstreamError(kind: .connectionDropped, message: "\(id) dropped the stream"))
                }
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
