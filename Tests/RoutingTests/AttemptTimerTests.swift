import Synchronization
import Testing
@testable import Routing

/// An upstream that hangs for real (ignores `context.timeout`, never touches the clock) but stops
/// on cancellation. Without the gateway's own timer it gives up by itself after `realHang` with an
/// `invalidResponse`, so a test against a gateway lacking the timer fails instead of hanging.
final class HungUpstream: Upstream {
    let calls = Mutex(0)
    let cancelled = Mutex(0)
    let realHang: Duration
    init(realHang: Duration = .seconds(3)) { self.realHang = realHang }

    func hang() async throws {
        calls.withLock { $0 += 1 }
        do { try await Task.sleep(for: realHang) } catch {
            cancelled.withLock { $0 += 1 }
            throw error
        }
        throw UpstreamError(kind: .invalidResponse, message: "hung upstream gave up by itself")
    }

    func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse {
        try await hang()
        throw UpstreamError(kind: .invalidResponse)
    }

    func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext) -> AsyncThrowingStream<ChatCompletionChunk, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do { try await self.hang() } catch { continuation.finish(throwing: error) }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

@Suite struct AttemptTimerTests {
    final class Errors: Sendable {
        let list = Mutex<[String: UpstreamError]>([:])
    }

    /// Yields until `condition` holds (bounded: records an issue instead of spinning forever).
    static func until(_ condition: () -> Bool) async {
        for _ in 0..<200_000 where !condition() { await Task.yield() }
        #expect(condition(), "condition never held")
    }

    func setUp(retry: RetryPolicy) throws -> (ManualClock, HungUpstream, Gateway, Errors) {
        let clock = ManualClock()
        let hung = HungUpstream()
        let errors = Errors()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "hung", priority: 0), Backend(id: "ok", priority: 1)])],
                retry: retry),
            upstreams: ["hung": hung, "ok": InMemoryUpstream(id: "ok", clock: clock, replying: "fine")],
            clock: clock,
            observer: { event in
                if case .attemptFinished(_, let backend, let error?, _) = event { errors.list.withLock { $0[backend] = error } }
            })
        return (clock, hung, gateway, errors)
    }

    /// The hung attempt is cut at its 10 s timeout (virtual), cancelled, and the request fails over.
    @Test func hungUpstreamIsCutAtTheAttemptTimeoutAndFailsOver() async throws {
        let policy = RetryPolicy(maxAttempts: 3, timeBudget: .seconds(60), attemptTimeout: .seconds(10), jitter: 0)
        let (clock, hung, gateway, errors) = try setUp(retry: policy)
        let task = Task { try await gateway.complete(ask("hi")) }
        await Self.until { hung.calls.withLock { $0 } == 1 && clock.pendingTimers == 1 }
        clock.advance(by: .seconds(10))  // exactly at the timeout: not yet passed
        await Task.yield()
        #expect(errors.list.withLock { $0["hung"] } == nil)
        clock.advance(by: .milliseconds(1))
        let result = try await task.value
        #expect(result.backendID == "ok" && result.attempts == 2)
        #expect(errors.list.withLock { $0["hung"]?.kind } == .timeout)
        #expect(hung.cancelled.withLock { $0 } == 1)  // the hung call was cancelled, not left running
        #expect(clock.pendingTimers == 0)  // the winning attempt's timer was cancelled too
    }

    /// With no attempt timeout the timer is the rest of the time budget: a lone hung backend
    /// answers 504-style `upstreamTimeout` once the budget has passed, never later.
    @Test func hungUpstreamCannotOutliveTheTimeBudget() async throws {
        let clock = ManualClock()
        let hung = HungUpstream()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "hung")])],
                retry: RetryPolicy(maxAttempts: 1, timeBudget: .seconds(5), attemptTimeout: nil)),
            upstreams: ["hung": hung], clock: clock)
        let task = Task { try await gateway.complete(ask("hi")) }
        await Self.until { hung.calls.withLock { $0 } == 1 && clock.pendingTimers == 1 }
        clock.advance(by: .seconds(5) + .microseconds(1))
        let error = await routingError { _ = try await task.value }
        #expect(error?.code == .upstreamTimeout)
        #expect(error?.upstream?.kind == .timeout)
    }

    /// Streams: the timer covers the wait for the first chunk.
    @Test func hungStreamIsCutBeforeItsFirstChunk() async throws {
        let policy = RetryPolicy(maxAttempts: 3, timeBudget: .seconds(60), attemptTimeout: .seconds(2), jitter: 0)
        let (clock, hung, gateway, errors) = try setUp(retry: policy)
        var request = ask("hi")
        request.stream = true
        let task = Task { try await gateway.stream(request) }
        await Self.until { hung.calls.withLock { $0 } == 1 && clock.pendingTimers == 1 }
        clock.advance(by: .seconds(3))
        let stream = try await task.value
        #expect(stream.backendID == "ok")
        var text = ""
        for try await chunk in stream.chunks { text += chunk.choices.first?.delta.content ?? "" }
        #expect(text == "fine")
        #expect(errors.list.withLock { $0["hung"]?.kind } == .timeout)
    }

    /// A manual-clock timer cancelled before or while waiting resumes with CancellationError.
    @Test func manualClockTimerHonoursCancellation() async {
        let clock = ManualClock()
        let task = Task { try await clock.waitUntil(RoutingInstant(.seconds(1))) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.pendingTimers == 0)
        // Already past: returns at once.
        clock.advance(by: .seconds(2))
        await #expect(throws: Never.self) { try await clock.waitUntil(RoutingInstant(.seconds(1))) }
    }
}

/// Sends one chunk, then stays silent (for real) until cancelled.
final class StallingUpstream: Upstream {
    let cancelled = Mutex(0)

    func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse {
        throw UpstreamError(kind: .invalidResponse, message: "streaming only")
    }

    func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext) -> AsyncThrowingStream<ChatCompletionChunk, any Error> {
        AsyncThrowingStream { continuation in
            continuation.yield(ChatCompletionChunk(id: "s", created: 0, model: request.model,
                                                   choices: [.init(index: 0, delta: ChatDelta(role: .assistant, content: "first"))]))
            let task = Task {
                do { try await Task.sleep(for: .seconds(3600)) } catch {
                    self.cancelled.withLock { $0 += 1 }
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

@Suite struct StreamIdleTimeoutTests {
    func open(idle: Duration?) async throws -> (ManualClock, StallingUpstream, GatewayStream) {
        let clock = ManualClock()
        let stalling = StallingUpstream()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(models: [ModelRoute(name: "gpt", backends: [Backend(id: "s")])],
                                                retry: RetryPolicy(streamIdleTimeout: idle)),
            upstreams: ["s": stalling], clock: clock)
        var request = ask("hi")
        request.stream = true
        return (clock, stalling, try await gateway.stream(request))
    }

    /// After the first chunk, silence longer than the limit (virtual time) ends the stream with
    /// `upstreamTimeout`, and the upstream call is cancelled rather than left running.
    @Test func aStalledStreamEndsWithUpstreamTimeout() async throws {
        let (clock, stalling, stream) = try await open(idle: .seconds(5))
        var iterator = stream.chunks.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?.choices.first?.delta.content == "first")
        await AttemptTimerTests.until { clock.pendingTimers == 1 }  // the idle timer is armed
        clock.advance(by: .seconds(5) + .milliseconds(1))
        do {
            _ = try await iterator.next()
            Issue.record("the stalled stream did not end")
        } catch let error as RoutingError {
            #expect(error.code == .upstreamTimeout)
            #expect(error.upstream?.kind == .timeout)
        }
        await AttemptTimerTests.until { stalling.cancelled.withLock { $0 } == 1 }
        #expect(clock.pendingTimers == 0)
    }

    /// Without a limit no timer is armed: the gateway does not end a silent stream by itself.
    @Test func noLimitArmsNoTimer() async throws {
        let (clock, stalling, stream) = try await open(idle: nil)
        var iterator = stream.chunks.makeAsyncIterator()
        _ = try await iterator.next()
        for _ in 0..<100 { await Task.yield() }
        #expect(clock.pendingTimers == 0)
        clock.advance(by: .seconds(7200))
        #expect(stalling.cancelled.withLock { $0 } == 0)
    }

    /// A timer fires only the wait it was armed for, and only while armed; a chunk that disarms
    /// first wins, and a timer that fired first makes the chunk's disarm report it.
    @Test func idleWatchFiresOnlyItsArmedWait() async {
        let watch = StreamIdleWatch()
        let relay = Task<Void, Never> { try? await Task.sleep(for: .seconds(3600)) }
        watch.attach(relay)
        let first = watch.arm()
        #expect(watch.disarm())          // the chunk came first
        watch.fire(first)                // its timer, late: nothing
        #expect(!watch.fired && !relay.isCancelled)
        let second = watch.arm()
        watch.fire(first)                // a stale timer of an earlier wait: nothing
        #expect(!watch.fired)
        watch.fire(second)               // the armed wait's timer
        #expect(watch.fired && relay.isCancelled)
        #expect(!watch.disarm())         // the chunk that arrives now is not forwarded
    }

    @Test func aNonPositiveLimitIsAConfigurationError() {
        #expect(throws: RoutingError.self) { try RetryPolicy(streamIdleTimeout: .zero).validate() }
    }
}
