import Synchronization

/// The events of one request, as an `AsyncSequence` with a bounded buffer.
///
/// The engine appends events from its thread; when ``EngineConfiguration/streamBufferLimit``
/// events wait unread, the engine holds the request out of its batches until the consumer has read
/// half of them, so a slow consumer costs neither memory nor compute. Cancelling the consuming task,
/// or dropping the stream and every iterator, cancels the request: its K/V blocks are freed at the
/// engine's next step.
public struct GenerationStream: AsyncSequence, Sendable {
    public typealias Element = GenerationEvent

    let handle: Handle

    init(channel: EventChannel) { handle = Handle(channel) }

    public func makeAsyncIterator() -> Iterator { Iterator(handle: handle) }

    public struct Iterator: AsyncIteratorProtocol {
        let handle: Handle
        public mutating func next() async throws -> GenerationEvent? { try await handle.channel.next() }
    }

    /// Cancels the request (as dropping the stream does).
    public func cancel() { handle.channel.cancel() }

    /// Reference to the channel whose end of life cancels the request.
    final class Handle: Sendable {
        let channel: EventChannel
        init(_ channel: EventChannel) { self.channel = channel }
        deinit { channel.cancel() }
    }
}

/// The buffer between the engine thread and one consumer.
final class EventChannel: Sendable {
    private struct State {
        var buffer: [GenerationEvent] = []
        var head = 0
        var finished = false
        var failure: (any Error)?
        var cancelled = false
        var waiter: CheckedContinuation<GenerationEvent?, any Error>?
        var held = false
    }

    private let state = Mutex(State())
    let limit: Int
    /// Called (on the consumer's side) when the request must be cancelled, or when a held request may go on.
    private let onCancel: @Sendable () -> Void
    private let onDrain: @Sendable () -> Void

    init(limit: Int, onCancel: @escaping @Sendable () -> Void, onDrain: @escaping @Sendable () -> Void) {
        self.limit = max(2, limit)
        self.onCancel = onCancel
        self.onDrain = onDrain
    }

    /// Appends an event (engine thread). Returns true when the buffer is at its limit: hold the request.
    @discardableResult
    func push(_ event: GenerationEvent) -> Bool {
        let (waiter, full): (CheckedContinuation<GenerationEvent?, any Error>?, Bool) = state.withLock { s in
            guard !s.finished, !s.cancelled else { return (nil, false) }
            if let w = s.waiter {
                s.waiter = nil
                return (w, false)
            }
            s.buffer.append(event)
            let full = s.buffer.count - s.head >= limit
            if full { s.held = true }
            return (nil, full)
        }
        waiter?.resume(returning: event)
        return full
    }

    /// Whether the engine should keep the request out of its batches.
    var isHeld: Bool { state.withLock { $0.held } }

    /// Ends the stream after the buffered events, normally or with `error` (engine thread).
    func finish(throwing error: (any Error)? = nil) {
        let waiter: CheckedContinuation<GenerationEvent?, any Error>? = state.withLock { s in
            guard !s.finished else { return nil }
            s.finished = true
            s.failure = error
            defer { s.waiter = nil }
            return s.waiter
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    /// The consumer gave up: end the stream and tell the engine.
    func cancel() {
        let (waiter, first): (CheckedContinuation<GenerationEvent?, any Error>?, Bool) = state.withLock { s in
            guard !s.cancelled else { return (nil, false) }
            s.cancelled = true
            s.buffer = []
            s.head = 0
            defer { s.waiter = nil }
            return (s.waiter, !s.finished)
        }
        waiter?.resume(throwing: CancellationError())
        if first { onCancel() }
    }

    func next() async throws -> GenerationEvent? {
        enum Step { case event(GenerationEvent, drained: Bool), end, fail(any Error), wait }
        let step: Step = state.withLock { s in
            if s.cancelled { return .fail(CancellationError()) }
            if s.head < s.buffer.count {
                let e = s.buffer[s.head]
                s.head += 1
                if s.head == s.buffer.count {
                    s.buffer.removeAll(keepingCapacity: true)
                    s.head = 0
                } else if s.head > 64 && s.head * 2 > s.buffer.count {
                    s.buffer.removeFirst(s.head)
                    s.head = 0
                }
                var drained = false
                if s.held && s.buffer.count - s.head <= limit / 2 {
                    s.held = false
                    drained = true
                }
                return .event(e, drained: drained)
            }
            if s.finished { return s.failure.map { .fail($0) } ?? .end }
            return .wait
        }
        switch step {
        case let .event(e, drained):
            if drained { onDrain() }
            return e
        case .end: return nil
        case let .fail(e): throw e
        case .wait: break
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<GenerationEvent?, any Error>) in
                let immediate: Result<GenerationEvent?, any Error>? = state.withLock { s in
                    if s.cancelled { return .failure(CancellationError()) }
                    if s.head < s.buffer.count {
                        let e = s.buffer[s.head]
                        s.head += 1
                        return .success(e)
                    }
                    if s.finished { return s.failure.map { .failure($0) } ?? .success(nil) }
                    s.waiter = c
                    return nil
                }
                if let immediate { c.resume(with: immediate) }
            }
        } onCancel: {
            self.cancel()
        }
    }
}
