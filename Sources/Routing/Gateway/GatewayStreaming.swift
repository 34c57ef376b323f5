import Synchronization

/// Holds a stream iterator handed from the task that opened the stream to the relay task.
/// `@unchecked Sendable`: after the hand-off only the relay task touches it, one `next()` at a time.
final class ChunkIteratorBox: @unchecked Sendable {
    var iterator: AsyncThrowingStream<ChatCompletionChunk, any Error>.Iterator
    init(_ iterator: AsyncThrowingStream<ChatCompletionChunk, any Error>.Iterator) { self.iterator = iterator }
    func next() async throws -> ChatCompletionChunk? { try await iterator.next() }
}

struct OpenedStream: Sendable {
    var first: ChatCompletionChunk
    var rest: ChunkIteratorBox
}

extension Gateway {
    /// Answers a chat completion as a stream of chunks.
    ///
    /// Retries, failover and fallbacks apply until the first chunk arrives; after that the stream
    /// is committed to its backend and an upstream failure ends it with a ``RoutingError``
    /// (`upstreamFailed`). The upstream is always asked for a final usage chunk (for rate limits and
    /// accounting); it is passed on only when the client set `stream_options.include_usage`.
    /// Cache hits are replayed as one content chunk; a stream that ends normally (every choice
    /// finished with `stop`, no tool calls) is assembled into a response and stored in the caches,
    /// so a later JSON or streamed request can be answered from it.
    /// - Parameters:
    ///   - request: the client's request.
    ///   - key: the authenticated key.
    ///   - requestID: the id to use; generated when nil or unusable.
    /// - Throws: ``RoutingError`` (with the request id) when no first chunk could be obtained.
    public func stream(_ request: ChatCompletionRequest, key: APIKey? = nil, requestID: String? = nil)
        async throws(RoutingError) -> GatewayStream
    {
        let admitted = try admit(request, key: key, requestID: requestID)
        let wantsUsage = request.streamOptions?.includeUsage ?? false
        let lookup = await cacheLookup(request, admitted: admitted)
        if let hit = lookup.hit {
            let now = recordCacheHit(admitted, kind: lookup.kindLabel)
            observer?(.answered(requestID: admitted.requestID, error: nil, at: now))
            let id = "chatcmpl-" + admitted.requestID
            var chunks = [ChatCompletionChunk(
                id: id, created: hit.created, model: hit.model,
                choices: hit.choices.map {
                    .init(index: $0.index, delta: ChatDelta(role: .assistant, content: $0.message.text, toolCalls: $0.message.toolCalls),
                          finishReason: $0.finishReason ?? "stop")
                })]
            if wantsUsage, let usage = hit.usage {
                chunks.append(ChatCompletionChunk(id: id, created: hit.created, model: hit.model, choices: [], usage: usage))
            }
            let replay = AsyncThrowingStream<ChatCompletionChunk, any Error> { continuation in
                for chunk in chunks { continuation.yield(chunk) }
                continuation.finish()
            }
            return GatewayStream(requestID: admitted.requestID, model: admitted.chain[0], backendID: nil, attempts: 0,
                                 cache: lookup.outcome, chunks: replay)
        }

        var upstreamRequest = request
        upstreamRequest.stream = true
        upstreamRequest.streamOptions = StreamOptions(includeUsage: true)
        let opened: OpenedStream, model: String, backendID: String, attempts: Int, held: HeldLease?
        do {
            (opened, model, backendID, attempts, held) = try await run(upstreamRequest, admitted: admitted, keepLease: true) {
                upstream, upstreamRequest, context throws -> OpenedStream in
                var iterator = upstream.stream(upstreamRequest, context: context).makeAsyncIterator()
                guard let first = try await iterator.next() else {
                    throw UpstreamError(kind: .invalidResponse, message: "the stream ended before its first chunk")
                }
                return OpenedStream(first: first, rest: ChunkIteratorBox(iterator))
            }
        } catch {
            fail(error, admitted: admitted)
            throw error
        }

        let (out, continuation) = AsyncThrowingStream<ChatCompletionChunk, any Error>.makeStream()
        let estimator = configuration.estimator
        let idleLimit = configuration.retry.streamIdleTimeout
        let idle = StreamIdleWatch()
        let relay = Task { [self] in
            var usage: Usage?
            var completionText = ""
            var assembly = StreamAssembly(first: opened.first, cacheable: lookup.exactKey != nil || lookup.semantic != nil)
            func forward(_ chunk: ChatCompletionChunk) {
                if let reported = chunk.usage { usage = reported }
                for choice in chunk.choices { completionText += choice.delta.content ?? "" }
                assembly.add(chunk)
                if !wantsUsage, chunk.usage != nil {
                    if chunk.choices.isEmpty { return }
                    var stripped = chunk
                    stripped.usage = nil
                    continuation.yield(stripped)
                } else {
                    continuation.yield(chunk)
                }
            }
            forward(opened.first)
            var failure: UpstreamError?
            do {
                while true {
                    // Between chunks, a timer on the gateway's clock cancels the relay when the
                    // upstream stays silent for longer than the idle limit.
                    let timer = idleLimit.map { limit in
                        let wait = idle.arm()
                        return clock.scheduleTimer(at: clock.now + limit) { idle.fire(wait) }
                    }
                    let chunk = try await opened.rest.next()
                    timer?.cancel()
                    // Either the chunk disarms the wait or the timer has fired, never both.
                    guard let chunk, idle.disarm() else { break }
                    forward(chunk)
                }
            } catch {
                failure = Self.upstreamError(from: error)
            }
            if idle.fired, let limit = idleLimit {
                failure = UpstreamError(kind: .timeout, message: "the stream was silent for more than \(limit) after its first chunk")
            }
            let cancelled = (Task.isCancelled && !idle.fired) || failure?.kind == .cancelled
            let outcome: CircuitBreaker.Outcome = cancelled ? .ignored : (failure.map(Self.breakerOutcome) ?? .success)
            if let held { release(held, outcome: outcome, error: failure) }
            let finalUsage = usage ?? Usage(promptTokens: admitted.promptEstimate,
                                            completionTokens: estimator.tokens(in: completionText))
            let now = clock.now
            let answer = failure == nil && !cancelled ? assembly.response(id: "chatcmpl-" + admitted.requestID, usage: finalUsage) : nil
            state.withLock { state in
                account(&state, admitted: admitted, model: model, backendID: backendID, usage: finalUsage, now: now)
                if let answer {
                    if let key = lookup.exactKey { state.cache?.store(answer, for: key, now: now) }
                    if let (partition, vector) = lookup.semantic { state.semantic?.store(answer, partition: partition, vector: vector, now: now) }
                }
            }
            if let failure, !cancelled {
                let error = failure.kind == .timeout
                    ? RoutingError(.upstreamTimeout, "the upstream stream stalled (\(failure.message)): retry the request",
                                   requestID: admitted.requestID, upstream: failure)
                    : RoutingError(.upstreamFailed, "the upstream stream broke off (\(failure.kind)): retry the request",
                                   requestID: admitted.requestID, upstream: failure)
                logger.warning("stream interrupted", metadata: ["request_id": "\(admitted.requestID)", "backend": "\(backendID)"])
                observer?(.answered(requestID: admitted.requestID, error: error, at: now))
                continuation.finish(throwing: error)
            } else {
                observer?(.answered(requestID: admitted.requestID, error: nil, at: now))
                continuation.finish()
            }
        }
        idle.attach(relay)
        continuation.onTermination = { _ in relay.cancel() }
        return GatewayStream(requestID: admitted.requestID, model: model, backendID: backendID, attempts: attempts,
                             cache: lookup.outcome, chunks: out)
    }
}

/// A streamed answer put back together for the caches: text and finish reason per choice.
/// Tool-call deltas (fragments merged by index) are not reassembled: such streams are not stored.
struct StreamAssembly {
    private var created: Int64
    private var model: String
    private var text: [Int: String] = [:]
    private var finish: [Int: String] = [:]
    private var storable: Bool

    init(first: ChatCompletionChunk, cacheable: Bool) {
        created = first.created
        model = first.model
        storable = cacheable
    }

    mutating func add(_ chunk: ChatCompletionChunk) {
        guard storable else { return }
        for choice in chunk.choices {
            if choice.delta.toolCalls != nil {
                storable = false
                return
            }
            text[choice.index, default: ""] += choice.delta.content ?? ""
            if let reason = choice.finishReason { finish[choice.index] = reason }
        }
    }

    /// The assembled response, or nil when it must not be cached (tool calls, a choice that never
    /// finished or stopped for another reason than `stop`, no choices at all).
    func response(id: String, usage: Usage) -> ChatCompletionResponse? {
        guard storable, !text.isEmpty, text.keys.allSatisfy({ finish[$0] == "stop" }) else { return nil }
        let choices = text.keys.sorted().map { index in
            ChatCompletionResponse.Choice(index: index, message: .assistant(text[index] ?? ""), finishReason: "stop")
        }
        return ChatCompletionResponse(id: id, created: created, model: model, choices: choices, usage: usage)
    }
}

/// The idle timer's link to the relay task it cancels (the task exists only after its closure is
/// built, so it is attached afterwards; a timer firing before that still marks the stream idle and
/// the relay stops at its next chunk). Each wait between chunks has a number: a timer fires only the
/// wait it was armed for and only while it is armed, and a chunk disarms it under the same lock, so a
/// chunk arriving as the timer fires is either forwarded (the timer then does nothing) or dropped
/// with the stream ending as timed out — never forwarded and then cut.
final class StreamIdleWatch: Sendable {
    private struct State {
        var fired = false
        var armed: UInt64?
        var waits: UInt64 = 0
        var task: Task<Void, Never>?
    }

    private let state = Mutex(State())

    var fired: Bool { state.withLock { $0.fired } }

    func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            s.task = task
            return s.fired
        }
        if cancelNow { task.cancel() }
    }

    /// Starts a wait for the next chunk; returns its number for the timer.
    func arm() -> UInt64 {
        state.withLock { s in
            s.waits &+= 1
            s.armed = s.waits
            return s.waits
        }
    }

    /// Ends the wait because a chunk (or the end) arrived; false when the timer fired first.
    func disarm() -> Bool {
        state.withLock { s in
            s.armed = nil
            return !s.fired
        }
    }

    /// The timer of wait `wait`: marks the stream idle and cancels the relay, if that wait is still armed.
    func fire(_ wait: UInt64) {
        let task = state.withLock { s -> Task<Void, Never>? in
            guard s.armed == wait, !s.fired else { return nil }
            s.fired = true
            return s.task
        }
        task?.cancel()
    }
}
