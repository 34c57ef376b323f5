import Foundation
import KVPaging
import ModelRuntime
import Scheduling
import Synchronization
import Tokenization

/// Serves many generation requests at once on one model: the ``Scheduling`` policies the simulator
/// uses drive real steps of the ``ModelRuntime`` forward pass over a paged K/V cache.
///
/// Each step the scheduler plans which sequences run and how many tokens (continuous batching with
/// chunked prefill by default), the engine runs them as one flat batch, samples each sequence's next
/// token(s), and reports the outcome back. Requests share K/V blocks through the prefix cache (a
/// common system prompt is computed once) and copy-on-write (`n > 1` samples of one prompt); when
/// blocks run out the scheduler preempts and the engine recomputes. With
/// ``EngineConfiguration/speculative`` set, decodes verify prompt-lookup drafts in the same pass.
///
/// Steps run on the engine's own thread, never on the caller's task or a NIO event loop.
///
/// ```swift
/// let engine = try InferenceEngine(model: model)
/// let prompt = try engine.model.chatPrompt([ChatMessage(role: "user", content: "Hello!")])
/// for try await event in try engine.generate(EngineRequest(promptTokens: prompt)) {
///     if case let .token(token, _) = event { print(token.text, terminator: "") }
/// }
/// await engine.shutdown()
/// ```
public final class InferenceEngine: Sendable {
    public let model: LlamaModel
    public let configuration: EngineConfiguration
    /// The K/V pool: blocks of ``EngineConfiguration/blockSize`` positions.
    public let kvConfiguration: KVCacheConfiguration
    /// A pristine scheduler for up-front checks (value type; never mutated).
    private let admission: SchedulerState
    let inbox: Inbox
    private let core: EngineCore

    /// Loads nothing: `model` is already loaded. Allocates the K/V cache and starts the engine thread.
    public init(model: LlamaModel, configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) {
        let c = configuration
        let context = c.contextLength ?? model.configuration.contextLength
        guard context >= 2, context <= model.configuration.contextLength else {
            throw EngineError(.invalidConfiguration, "context length \(context) must be 2 … the model's \(model.configuration.contextLength) tokens")
        }
        guard c.threads >= 1, c.threads <= 1024 else { throw EngineError(.invalidConfiguration, "threads is \(c.threads); use 1 … 1024") }
        guard c.blockSize >= 1, c.blockSize <= 1024 else { throw EngineError(.invalidConfiguration, "block size is \(c.blockSize); use 1 … 1024 positions") }
        guard c.kvCacheTokens >= c.blockSize else {
            throw EngineError(.invalidConfiguration, "the K/V cache holds \(c.kvCacheTokens) tokens, less than one block of \(c.blockSize); give at least a block")
        }
        guard c.streamBufferLimit >= 2 else { throw EngineError(.invalidConfiguration, "stream buffer limit is \(c.streamBufferLimit); use at least 2 events") }
        guard c.maxWaitingRequests >= 1 else { throw EngineError(.invalidConfiguration, "max waiting requests is \(c.maxWaitingRequests); use at least 1") }
        if let s = c.speculative {
            guard s.lookahead >= 1, s.lookahead <= 64, s.minimumMatch >= 1, s.maximumMatch >= s.minimumMatch else {
                throw EngineError(.invalidConfiguration, "speculative decoding: lookahead \(s.lookahead) must be 1 … 64 and 1 ≤ minimum match \(s.minimumMatch) ≤ maximum match \(s.maximumMatch)")
            }
        }
        let blocks = (c.kvCacheTokens + c.blockSize - 1) / c.blockSize
        let kv = KVCacheConfiguration(blockCount: blocks, blockSize: c.blockSize, maxSequenceLength: context,
                                      enablePrefixCaching: c.enablePrefixCaching, watermark: c.watermark)
        var state: SchedulerState
        do {
            try kv.validate()
            state = try SchedulerState(limits: c.limits, kv: kv, drivingModel: c.policy)
            // The scheduler only reserves the draft slots here; acceptance comes from each step's outcome.
            state.speculation = try c.speculative.map { try SpeculativeDecodingModel(acceptanceRate: 0, lookahead: $0.lookahead, costRatio: 0) }
        } catch {
            throw EngineError(.invalidConfiguration, "\(error)")
        }
        let cache: KVCache
        do { cache = try KVCache(configuration: model.configuration, blockCount: blocks, blockSize: c.blockSize, precision: c.kvPrecision) } catch {
            throw EngineError(.invalidConfiguration, error.message)
        }
        self.model = model
        self.configuration = c
        self.kvConfiguration = kv
        self.admission = state
        let inbox = Inbox()
        self.inbox = inbox
        core = EngineCore(model: model, configuration: c, state: state, cache: cache, inbox: inbox)
        let core = self.core
        let thread = Thread { core.run() }
        thread.stackSize = 8 << 20
        thread.name = "inferkit-engine"
        thread.start()
    }

    deinit {
        inbox.requestShutdown(.cancel)
    }

    /// Tokenizes `text` as a raw prompt (BOS added when the model wants one, special tokens parsed).
    public func encode(_ text: String) -> [Int] {
        model.tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
    }

    /// Submits a request; its events arrive on the returned stream.
    ///
    /// Throws at once — before any work — when a field is invalid, when prompt + `max_tokens` can
    /// never fit the context or the K/V pool, when the waiting queue is full, or when the engine
    /// is shutting down. Later failures (the engine shut down mid-request, a kernel error) end the
    /// stream with an ``EngineError``.
    public func generate(_ request: EngineRequest) throws(EngineError) -> GenerationStream {
        try validate(request)
        let id = inbox.nextID()
        let inbox = self.inbox
        let channel = EventChannel(limit: configuration.streamBufferLimit,
                                   onCancel: { inbox.cancel(id) },
                                   onDrain: { inbox.wake() })
        try inbox.submit(Submission(id: id, request: request, channel: channel, submitted: DispatchTime.now().uptimeNanoseconds),
                         maxWaiting: configuration.maxWaitingRequests)
        return GenerationStream(channel: channel)
    }

    func validate(_ request: EngineRequest) throws(EngineError) {
        let vocab = model.configuration.vocabularySize
        do { try request.parameters.validate(vocabularySize: vocab) } catch {
            throw EngineError(.invalidRequest, error.message)
        }
        guard !request.promptTokens.isEmpty else { throw EngineError(.invalidRequest, "the prompt is empty; give at least one token") }
        for (i, t) in request.promptTokens.enumerated() where t < 0 || t >= vocab {
            throw EngineError(.invalidRequest, "prompt token \(i) is id \(t), outside the vocabulary 0..<\(vocab)")
        }
        guard request.samples >= 1, request.samples <= 128 else {
            throw EngineError(.invalidRequest, "n is \(request.samples); ask for 1 … 128 samples")
        }
        // The scheduler's own checks (lengths, priority range), then whether it could ever run here.
        let probe = InferenceRequest(id: 0, arrivalTime: 0, promptTokens: request.promptTokens.count,
                                     outputTokens: request.parameters.maxTokens, priority: request.priority, promptTokenIDs: request.promptTokens)
        do { try probe.validate() } catch {
            let message = (error as? SchedulingError)?.message ?? "\(error)"
            throw EngineError(.invalidRequest, message.replacingOccurrences(of: "request 0 ", with: "the request "))
        }
        if let reason = admission.rejectionReason(for: probe) {
            throw EngineError(.requestTooLarge, "\(reason); shorten the prompt or lower max_tokens")
        }
    }

    /// The engine's counters now.
    public func statistics() -> EngineStatistics { core.published.withLock { $0 } }

    /// How ``shutdown(_:)`` treats requests in flight.
    public enum ShutdownMode: Sendable, Hashable {
        /// Refuse new requests; finish those in flight (cancelling what is left at `deadline` seconds).
        case drain(deadline: Double?)
        /// End every stream now with ``EngineError/Code/shutDown`` and free everything.
        case cancel
    }

    /// Stops the engine and waits for its thread to end. Nothing is left behind: every stream has
    /// ended, every block is free.
    public func shutdown(_ mode: ShutdownMode = .drain(deadline: nil)) async {
        inbox.requestShutdown(mode)
        await core.stopped.wait()
    }
}

/// A request handed to the engine thread.
struct Submission: Sendable {
    var id: Int
    var request: EngineRequest
    var channel: EventChannel
    var submitted: UInt64
}

/// The engine thread's mailbox. `@unchecked Sendable`: every field is read and written with
/// `condition` locked.
final class Inbox: @unchecked Sendable {
    let condition = NSCondition()
    private var submissions: [Submission] = []
    private var cancels: [Int] = []
    private var woken = false
    private var shutdown: InferenceEngine.ShutdownMode?
    private var counter = 0
    /// Requests submitted and not yet finished (maintained by the engine thread through `retire`).
    private var outstanding = 0

    func nextID() -> Int {
        condition.lock()
        defer { condition.unlock() }
        counter += 1
        return counter
    }

    func submit(_ s: Submission, maxWaiting: Int) throws(EngineError) {
        condition.lock()
        defer { condition.unlock() }
        guard shutdown == nil else { throw EngineError(.shutDown, "the engine is shutting down; submit to another replica") }
        guard outstanding < maxWaiting else {
            throw EngineError(.overloaded, "\(outstanding) requests are queued or running, the engine's bound; retry later")
        }
        outstanding += 1
        submissions.append(s)
        woken = true
        condition.signal()
    }

    func cancel(_ id: Int) {
        condition.lock()
        cancels.append(id)
        woken = true
        condition.signal()
        condition.unlock()
    }

    func wake() {
        condition.lock()
        woken = true
        condition.signal()
        condition.unlock()
    }

    func requestShutdown(_ mode: InferenceEngine.ShutdownMode) {
        condition.lock()
        if case .cancel = mode { shutdown = mode } else if shutdown == nil { shutdown = mode }
        woken = true
        condition.signal()
        condition.unlock()
    }

    /// A request ended (engine thread).
    func retire(_ count: Int = 1) {
        condition.lock()
        outstanding -= count
        condition.unlock()
    }

    /// Takes everything queued (engine thread).
    func take() -> (submissions: [Submission], cancels: [Int], shutdown: InferenceEngine.ShutdownMode?) {
        condition.lock()
        defer { condition.unlock() }
        let r = (submissions, cancels, shutdown)
        submissions.removeAll()
        cancels.removeAll()
        woken = false
        return r
    }

    /// Sleeps until something arrives or `seconds` pass (nil: no timeout) (engine thread).
    func wait(seconds: Double?) {
        condition.lock()
        defer { condition.unlock() }
        if woken { return }
        if let seconds {
            _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, seconds)))
        } else {
            while !woken { condition.wait() }
        }
    }
}

/// Signals the end of the engine thread to any number of waiters.
final class StopSignal: Sendable {
    private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { s in
            s.done = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s in
                if !s.done { s.waiters.append(c) }
                return s.done
            }
            if done { c.resume() }
        }
    }
}
