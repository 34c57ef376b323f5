import Logging
import Metrics
import Synchronization

/// How a request was answered from a cache, if it was.
public enum CacheOutcome: Sendable, Hashable {
    case miss
    case exact
    case semantic(similarity: Double)
    /// The request bypassed the caches (not cacheable, or caches off).
    case bypass
}

/// A completed request.
public struct GatewayResult: Sendable {
    public var response: ChatCompletionResponse
    public var requestID: String
    /// The public model that answered (after classification and fallbacks).
    public var model: String
    /// The backend that answered; nil for cache hits.
    public var backendID: String?
    /// Upstream attempts made (0 for cache hits).
    public var attempts: Int
    public var cache: CacheOutcome
    /// The class the request was routed by, when model routing applied.
    public var classification: Classification?
}

/// A streaming request whose first chunk has arrived.
public struct GatewayStream: Sendable {
    public var requestID: String
    public var model: String
    public var backendID: String?
    public var attempts: Int
    public var cache: CacheOutcome
    /// The chunks, in order. Errors after the first chunk are ``RoutingError``s
    /// (`upstreamFailed`) carrying the request id.
    public var chunks: AsyncThrowingStream<ChatCompletionChunk, any Error>
}

/// Something that happened inside the gateway, for tests, tracing and custom telemetry.
public enum GatewayEvent: Sendable, Hashable {
    case attemptStarted(requestID: String, model: String, backendID: String, attempt: Int, at: RoutingInstant, timeout: Duration)
    case attemptFinished(requestID: String, backendID: String, error: UpstreamError?, at: RoutingInstant)
    case breakerTransition(backendID: String, CircuitBreaker.Transition)
    case backoff(requestID: String, wait: Duration, at: RoutingInstant)
    case answered(requestID: String, error: RoutingError?, at: RoutingInstant)
}

/// Health of one backend.
public struct BackendHealth: Sendable, Hashable {
    public var model: String
    public var backendID: String
    public var breaker: String
    public var outstanding: Int
    public var ewmaLatency: Duration?
}

/// The AI gateway core: authenticates, rate-limits, serves from caches, routes by class, picks a
/// backend, retries and fails over, falls back across models, and accounts usage.
///
/// All policy state (pools, breakers, limiters, caches, ledger) is value types inside one `Mutex`;
/// the lock is held only for short synchronous steps, never across an upstream call.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    let upstreams: [String: any Upstream]
    let clock: any RoutingClock
    let embedder: (any Embedder)?
    let classifier: (any QueryClassifier)?
    let logger: Logger
    let observer: (@Sendable (GatewayEvent) -> Void)?
    let routes: [String: ModelRoute]
    let keysBySecret: [String: APIKey]
    /// Each model followed by its fallbacks, theirs, and so on (breadth first, each once).
    let fallbackOrder: [String: [String]]
    let state: Mutex<State>

    struct State: Sendable {
        var pools: [String: BackendPool]
        var limiter: RateLimiter
        var cache: ResponseCache?
        var semantic: SemanticCache?
        var random: SplitMixGenerator
        var retryBudget: RetryBudget?
        var ledger = UsageLedger()
        var metrics: GatewayMetrics
        var counter: UInt64 = 0
    }

    /// - Parameters:
    ///   - configuration: models, keys, limits, policies and caches.
    ///   - upstreams: the endpoint of every backend, by backend id.
    ///   - clock: time source (``SystemRoutingClock`` in production, ``ManualClock`` in tests).
    ///   - embedder: needed when the semantic cache is configured.
    ///   - classifier: needed when model routing is configured.
    ///   - logger: where the gateway logs (never prompt text unless ``GatewayConfiguration/logPrompts``).
    ///   - seed: seeds backoff jitter and request ids.
    ///   - observer: called synchronously for every ``GatewayEvent``; keep it cheap.
    ///   - metricsFactory: where metrics go; nil uses the process-wide `MetricsSystem` (which the
    ///     executable bootstraps). Pass one to keep a gateway's metrics in its own registry.
    /// - Throws: `invalidConfiguration` naming what is wrong.
    public init(
        configuration: GatewayConfiguration, upstreams: [String: any Upstream],
        clock: any RoutingClock = SystemRoutingClock(), embedder: (any Embedder)? = nil,
        classifier: (any QueryClassifier)? = nil, logger: Logger = Logger(label: "inferencekit.gateway"),
        seed: UInt64 = 0x5EED, observer: (@Sendable (GatewayEvent) -> Void)? = nil,
        metricsFactory: (any MetricsFactory)? = nil
    ) throws(RoutingError) {
        try configuration.retry.validate()
        try configuration.breaker.validate()
        var routes: [String: ModelRoute] = [:]
        var pools: [String: BackendPool] = [:]
        var backendIDs: Set<String> = []
        guard !configuration.models.isEmpty else {
            throw RoutingError(.invalidConfiguration, "configure at least one model")
        }
        for route in configuration.models {
            guard !route.name.isEmpty, routes[route.name] == nil else {
                throw RoutingError(.invalidConfiguration, "model name '\(route.name)' is empty or configured twice")
            }
            if let window = route.contextWindow, window < 1 {
                throw RoutingError(.invalidConfiguration, "model '\(route.name)' contextWindow must be ≥ 1")
            }
            for backend in route.backends {
                guard backendIDs.insert(backend.id).inserted else {
                    throw RoutingError(.invalidConfiguration, "backend id '\(backend.id)' is used by more than one backend")
                }
                guard upstreams[backend.id] != nil else {
                    throw RoutingError(.invalidConfiguration, "backend '\(backend.id)' of model '\(route.name)' has no upstream")
                }
            }
            routes[route.name] = route
            pools[route.name] = try BackendPool(backends: route.backends, strategy: route.strategy, breaker: configuration.breaker)
        }
        for route in configuration.models {
            for fallback in route.fallbacks where routes[fallback] == nil || fallback == route.name {
                throw RoutingError(.invalidConfiguration, "fallback '\(fallback)' of model '\(route.name)' is not another configured model")
            }
        }
        if let routing = configuration.modelRouting {
            guard classifier != nil else {
                throw RoutingError(.invalidConfiguration, "model routing is configured but no classifier was given")
            }
            guard routes[routing.modelName] == nil else {
                throw RoutingError(.invalidConfiguration, "the routing model name '\(routing.modelName)' is also a configured model")
            }
            for tier in routing.router.models where routes[tier.model] == nil {
                throw RoutingError(.invalidConfiguration, "model tier '\(tier.model)' is not a configured model")
            }
        }
        if configuration.semanticCache != nil, embedder == nil {
            throw RoutingError(.invalidConfiguration, "the semantic cache is configured but no embedder was given")
        }
        var keysBySecret: [String: APIKey] = [:]
        var keyLimits: [String: RateLimit] = [:]
        var keyIDs: Set<String> = []
        for key in configuration.apiKeys ?? [] {
            guard !key.secret.isEmpty, !key.id.isEmpty, keysBySecret[key.secret] == nil, keyIDs.insert(key.id).inserted else {
                throw RoutingError(.invalidConfiguration, "API key '\(key.id)' has an empty or duplicate id or secret")
            }
            keysBySecret[key.secret] = key
            if let limit = key.limit { keyLimits[key.id] = limit }
        }
        for name in configuration.modelLimits.keys where routes[name] == nil {
            throw RoutingError(.invalidConfiguration, "model limit for unknown model '\(name)'")
        }
        let limiter = try RateLimiter(keyLimits: keyLimits, defaultKeyLimit: configuration.defaultKeyLimit,
                                      modelLimits: configuration.modelLimits, admission: configuration.tokenAdmission,
                                      unixTimeAtOrigin: Self.unixTimeAtOrigin(of: clock))
        let cache = try configuration.responseCache.map { (c) throws(RoutingError) in try ResponseCache(configuration: c) }
        let semantic = try configuration.semanticCache.map { (c) throws(RoutingError) in try SemanticCache(configuration: c) }
        let retryBudget = try configuration.retryBudget.map { (c) throws(RoutingError) in
            try RetryBudget(configuration: c, now: clock.now)
        }

        self.configuration = configuration
        self.upstreams = upstreams
        self.clock = clock
        self.embedder = embedder
        self.classifier = classifier
        self.logger = logger
        self.observer = observer
        self.routes = routes
        self.keysBySecret = keysBySecret
        var order: [String: [String]] = [:]
        for route in configuration.models {
            var chain: [String] = []
            var queue = [route.name]
            var seen: Set<String> = []
            while !queue.isEmpty {
                let name = queue.removeFirst()
                guard seen.insert(name).inserted, let candidate = routes[name] else { continue }
                chain.append(name)
                queue.append(contentsOf: candidate.fallbacks)
            }
            order[route.name] = chain
        }
        self.fallbackOrder = order
        self.state = Mutex(State(pools: pools, limiter: limiter, cache: cache, semantic: semantic,
                                 random: SplitMixGenerator(seed: seed), retryBudget: retryBudget,
                                 metrics: GatewayMetrics(prefix: configuration.metricsPrefix, factory: metricsFactory)))
    }

    /// The wall-clock time of the clock's origin, clamped to what ``RateLimiter`` accepts.
    static func unixTimeAtOrigin(of clock: any RoutingClock) -> Double {
        let value = clock.unixSeconds - clock.now.sinceOrigin.secondsDouble
        return value.isFinite ? min(max(0, value), 1e11) : 0
    }

    // MARK: - Authentication and discovery

    /// Whether API keys are required.
    public var requiresAuthentication: Bool { configuration.apiKeys != nil }

    /// Resolves an `Authorization` header value (`Bearer <key>`) or an Azure-style `api-key` value.
    /// Returns nil when authentication is off.
    /// - Throws: `missingAPIKey` or `invalidAPIKey` (401). The key is never echoed.
    public func authenticate(authorization: String?, apiKeyHeader: String? = nil) throws(RoutingError) -> APIKey? {
        guard configuration.apiKeys != nil else { return nil }
        var token = apiKeyHeader?.trimmingSpaces ?? ""
        if token.isEmpty, let header = authorization?.trimmingSpaces, !header.isEmpty {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw RoutingError(.invalidAPIKey, "the Authorization header must be 'Bearer <API key>'")
            }
            token = String(parts[1]).trimmingSpaces
        }
        guard !token.isEmpty else {
            throw RoutingError(.missingAPIKey, "no API key given: send 'Authorization: Bearer <API key>'")
        }
        // A seeded-hash lookup, then a constant-time comparison, so timing reveals nothing about prefixes.
        guard let found = keysBySecret[token], Self.constantTimeEquals(found.secret, token) else {
            throw RoutingError(.invalidAPIKey, "the API key is not valid: check it, or ask for a new one")
        }
        return found
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    /// The models a key may use (plus the routing model name, when configured).
    public func modelList(for key: APIKey?) -> ModelList {
        var names = configuration.models.map(\.name)
        if let routing = configuration.modelRouting { names.append(routing.modelName) }
        if let allowed = key?.allowedModels { names = names.filter { allowed.contains($0) } }
        return ModelList(data: names.map { ModelListEntry(id: $0, created: 0) })
    }

    /// Breaker state and load of every backend.
    public func health() -> [BackendHealth] {
        let now = clock.now
        return state.withLock { state in
            configuration.models.flatMap { route in
                (state.pools[route.name]?.health ?? []).map {
                    // An open breaker whose trip time is over admits a probe on the next request.
                    let name: String
                    if case .open(let until) = $0.state, now >= until { name = "half_open" } else { name = $0.state.name }
                    return BackendHealth(model: route.name, backendID: $0.backend.id, breaker: name,
                                  outstanding: $0.outstanding, ewmaLatency: $0.ewmaLatency)
                }
            }
        }
    }

    /// Usage totals so far.
    public func usage() -> UsageLedger { state.withLock { $0.ledger } }

    // MARK: - Admission

    struct Admitted {
        var requestID: String
        var keyID: String
        var chain: [String]
        var ticket: RateLimiter.Ticket
        var promptEstimate: Int
        var classification: Classification?
        var start: RoutingInstant
    }

    func nextRequestID(_ state: inout State) -> String {
        state.counter &+= 1
        let bits = state.random.next()
        return "req_" + String(state.counter, radix: 36) + String(bits & 0xFFFF_FFFF, radix: 36)
    }

    func validate(_ request: ChatCompletionRequest) throws(RoutingError) {
        guard !request.model.isEmpty else {
            throw RoutingError(.invalidRequest, "'model' is required", param: "model")
        }
        guard !request.messages.isEmpty else {
            throw RoutingError(.invalidRequest, "'messages' must contain at least one message", param: "messages")
        }
        if let t = request.temperature, !(t.isFinite && (0...2).contains(t)) {
            throw RoutingError(.invalidRequest, "'temperature' must be between 0 and 2", param: "temperature")
        }
        if let p = request.topP, !(p.isFinite && p > 0 && p <= 1) {
            throw RoutingError(.invalidRequest, "'top_p' must be in (0, 1]", param: "top_p")
        }
        if let n = request.n, !(1...128).contains(n) {
            throw RoutingError(.invalidRequest, "'n' must be between 1 and 128", param: "n")
        }
        if let m = request.requestedCompletionTokens, m < 1 || m > ChatCompletionRequest.maxCompletionTokenLimit {
            throw RoutingError(.invalidRequest,
                               "'max_tokens' must be between 1 and \(ChatCompletionRequest.maxCompletionTokenLimit)",
                               param: request.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens")
        }
        for penalty in [request.presencePenalty, request.frequencyPenalty].compactMap({ $0 })
        where !(penalty.isFinite && (-2...2).contains(penalty)) {
            throw RoutingError(.invalidRequest, "penalties must be between -2 and 2")
        }
    }

    func admit(_ request: ChatCompletionRequest, key: APIKey?, requestID: String?) throws(RoutingError) -> Admitted {
        let start = clock.now
        // A client-supplied id is used only when it is short printable ASCII (it goes into logs and headers).
        let usable = requestID.flatMap { id in
            (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { (0x21...0x7E).contains($0) } ? id : nil
        }
        let id = usable ?? state.withLock { nextRequestID(&$0) }
        do throws(RoutingError) {
            try validate(request)
            if configuration.apiKeys != nil, key == nil {
                throw RoutingError(.missingAPIKey, "no API key given: send 'Authorization: Bearer <API key>'")
            }
            if let allowed = key?.allowedModels, !allowed.contains(request.model) {
                throw RoutingError(.permissionDenied, "this API key may not use model '\(request.model)'", param: "model")
            }
            var classification: Classification?
            var primary = request.model
            if let routing = configuration.modelRouting, request.model == routing.modelName, let classifier {
                let verdict = classifier.classify(request)
                classification = verdict
                primary = routing.router.model(for: verdict.label).model
            }
            guard let route = routes[primary] else {
                throw RoutingError(.modelNotFound, "model '\(request.model)' does not exist: GET /v1/models lists the models", param: "model")
            }
            // The chain: the primary, then its fallbacks (and theirs), each once, skipping windows too small.
            let prompt = configuration.estimator.promptTokens(of: request)
            let needed = prompt + (request.requestedCompletionTokens ?? 0)
            let chain = (fallbackOrder[route.name] ?? [route.name]).filter { name in
                routes[name]?.contextWindow.map { needed <= $0 } ?? true
            }
            guard !chain.isEmpty else {
                throw RoutingError(
                    .contextLengthExceeded,
                    "the request needs about \(needed) tokens (prompt + max_tokens) but model '\(primary)' accepts \(route.contextWindow ?? 0) and no fallback accepts more: shorten the messages or lower max_tokens",
                    param: "messages")
            }
            let keyID = key?.id ?? "anonymous"
            let decision = state.withLock {
                $0.limiter.admit(apiKey: key?.id, model: chain[0],
                                 estimatedTokens: prompt, now: start)
            }
            switch decision {
            case .admitted(let ticket):
                return Admitted(requestID: id, keyID: keyID, chain: chain, ticket: ticket, promptEstimate: prompt,
                                classification: classification, start: start)
            case .rateLimited(let scope, let retryAfter, let what):
                throw RoutingError(.rateLimited, "rate limit of \(scope) reached (\(what)): retry after the Retry-After time",
                                   retryAfter: retryAfter)
            case .tooLarge(let scope, let tokens, let limit):
                throw RoutingError(.rateLimited, "the request needs about \(tokens) tokens but \(scope) allows \(limit) tokens per minute: send a smaller request", param: "messages")
            case .quotaExhausted(let scope, let resetIn, let what):
                throw RoutingError(.quotaExhausted, "the quota of \(scope) (\(what)) is used up: it resets in \(Int(resetIn.secondsDouble.rounded(.up))) s", retryAfter: resetIn)
            }
        } catch {
            let stamped = error.with(requestID: id)
            finishRejected(stamped, keyID: key?.id ?? "anonymous", model: request.model)
            throw stamped
        }
    }

    func finishRejected(_ error: RoutingError, keyID: String, model: String) {
        let now = clock.now
        state.withLock {
            $0.metrics.increment("requests_total", [("api_key", keyID), ("model", routes[model] != nil ? model : "unknown"),
                                                    ("backend", "none"), ("outcome", error.code.rawValue)])
        }
        logger.log(level: error.httpStatus >= 500 ? .warning : .debug, "request rejected", metadata: ["request_id": "\(error.requestID ?? "")", "code": "\(error.code.rawValue)",
                                                   "status": "\(error.httpStatus)"])
        observer?(.answered(requestID: error.requestID ?? "", error: error, at: now))
    }

    // MARK: - Non-streaming

    /// Answers a chat completion: from a cache, or from the first backend that succeeds.
    /// - Parameters:
    ///   - request: the client's request (its `model` is a public model name or the routing model).
    ///   - key: the authenticated key (from ``authenticate(authorization:apiKeyHeader:)``).
    ///   - requestID: the id to use (e.g. from an `x-request-id` header); generated when nil.
    /// - Throws: ``RoutingError`` with the request id set.
    public func complete(_ request: ChatCompletionRequest, key: APIKey? = nil, requestID: String? = nil)
        async throws(RoutingError) -> GatewayResult
    {
        let admitted = try admit(request, key: key, requestID: requestID)
        if configuration.logPrompts {
            logger.trace("prompt", metadata: ["request_id": "\(admitted.requestID)", "prompt": "\(request.lastUserText)"])
        }
        // Caches (keyed by the public model the client asked for).
        let lookup = await cacheLookup(request, admitted: admitted)
        if let hit = lookup.hit {
            let now = recordCacheHit(admitted, kind: lookup.kindLabel)
            var response = hit
            response.id = "chatcmpl-" + admitted.requestID
            observer?(.answered(requestID: admitted.requestID, error: nil, at: now))
            return GatewayResult(response: response, requestID: admitted.requestID, model: admitted.chain[0],
                                 backendID: nil, attempts: 0, cache: lookup.outcome, classification: admitted.classification)
        }
        do {
            var plain = request
            plain.stream = nil
            plain.streamOptions = nil
            let (response, model, backendID, attempts, _) = try await run(plain, admitted: admitted) {
                upstream, upstreamRequest, context throws -> ChatCompletionResponse in
                try await upstream.send(upstreamRequest, context: context)
            }
            let usage = response.usage ?? Usage(
                promptTokens: admitted.promptEstimate,
                completionTokens: configuration.estimator.tokens(in: response.choices.map(\.message.text).joined()))
            let now = clock.now
            state.withLock { state in
                account(&state, admitted: admitted, model: model, backendID: backendID, usage: usage, now: now)
                if let key = lookup.exactKey { state.cache?.store(response, for: key, now: now) }
                if let (partition, vector) = lookup.semantic { state.semantic?.store(response, partition: partition, vector: vector, now: now) }
            }
            observer?(.answered(requestID: admitted.requestID, error: nil, at: now))
            return GatewayResult(response: response, requestID: admitted.requestID, model: model, backendID: backendID,
                                 attempts: attempts, cache: lookup.outcome, classification: admitted.classification)
        } catch {
            fail(error, admitted: admitted)
            throw error
        }
    }

    func account(_ state: inout State, admitted: Admitted, model: String, backendID: String, usage reported: Usage,
                         now: RoutingInstant) {
        // Usage comes from the upstream: clamp it so a hostile or broken count cannot overflow sums.
        var usage = reported
        usage.promptTokens = Self.saneTokenCount(reported.promptTokens)
        usage.completionTokens = Self.saneTokenCount(reported.completionTokens)
        state.limiter.reconcile(admitted.ticket, actualTokens: usage.promptTokens + usage.completionTokens, now: now)
        let backend = routes[model]?.backends.first { $0.id == backendID }
        let pricing = backend?.pricing ?? routes[model]?.pricing
        let cost = pricing?.cost(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens) ?? 0
        state.ledger.record(UsageKey(apiKeyID: admitted.keyID, model: model, backend: backendID),
                            promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, cost: cost, failed: false)
        let labels = [("api_key", admitted.keyID), ("model", model), ("backend", backendID)]
        state.metrics.increment("requests_total", labels + [("outcome", "ok")])
        state.metrics.increment("prompt_tokens_total", by: usage.promptTokens, labels)
        state.metrics.increment("completion_tokens_total", by: usage.completionTokens, labels)
        state.metrics.add("cost_total", cost, labels)
        state.metrics.record("request_duration_seconds", now - admitted.start, [("model", model)])
    }

    /// A token count from outside, clamped to `0...2³²` (counts above that are not real usage).
    static func saneTokenCount(_ count: Int) -> Int { min(max(0, count), 1 << 32) }

    func fail(_ error: RoutingError, admitted: Admitted) {
        let now = clock.now
        state.withLock {
            $0.limiter.reconcile(admitted.ticket, actualTokens: 0, now: now)
            $0.ledger.record(UsageKey(apiKeyID: admitted.keyID, model: admitted.chain[0], backend: "none"),
                             promptTokens: 0, completionTokens: 0, cost: 0, failed: true)
            $0.metrics.increment("requests_total", [("api_key", admitted.keyID), ("model", admitted.chain[0]),
                                                    ("backend", "none"), ("outcome", error.code.rawValue)])
        }
        logger.log(level: error.code == .cancelled || error.httpStatus < 500 ? .debug : .warning, "request failed", metadata: [
            "request_id": "\(admitted.requestID)", "code": "\(error.code.rawValue)", "status": "\(error.httpStatus)",
            "upstream": "\(error.upstream?.kind.description ?? "-")",
        ])
        observer?(.answered(requestID: admitted.requestID, error: error, at: now))
    }

    // MARK: - Caches

    struct CacheLookup {
        var hit: ChatCompletionResponse?
        var outcome: CacheOutcome = .bypass
        var exactKey: String?
        var semantic: (SemanticPartition, [Float])?
        var kindLabel: String {
            switch outcome {
            case .exact: return "exact"
            case .semantic: return "semantic"
            default: return "none"
            }
        }
    }

    /// Accounts a request answered from a cache (JSON or streamed): no upstream tokens, the
    /// admission estimate returned to the limiter, and the cache-hit and request counters.
    /// Returns the time of the answer.
    func recordCacheHit(_ admitted: Admitted, kind: String) -> RoutingInstant {
        let now = clock.now
        state.withLock {
            $0.limiter.reconcile(admitted.ticket, actualTokens: 0, now: now)
            $0.ledger.record(UsageKey(apiKeyID: admitted.keyID, model: admitted.chain[0], backend: "cache"),
                             promptTokens: 0, completionTokens: 0, cost: 0, failed: false)
            $0.metrics.increment("cache_hits_total", [("model", admitted.chain[0]), ("kind", kind)])
            $0.metrics.increment("requests_total", [("api_key", admitted.keyID), ("model", admitted.chain[0]),
                                                    ("backend", "cache"), ("outcome", "ok")])
        }
        return now
    }

    func cacheLookup(_ request: ChatCompletionRequest, admitted: Admitted) async -> CacheLookup {
        var lookup = CacheLookup()
        let now = clock.now
        if let exactKey = state.withLock({ $0.cache?.key(for: request, apiKeyID: admitted.keyID) }) {
            lookup.exactKey = exactKey
            lookup.outcome = .miss
            if let hit = state.withLock({ $0.cache?.lookup(exactKey, now: now) }) {
                lookup.hit = hit
                lookup.outcome = .exact
                return lookup
            }
        }
        if let embedder, let plan = state.withLock({ $0.semantic?.plan(for: request, apiKeyID: admitted.keyID) }) {
            lookup.outcome = .miss
            do {
                let vectors = try await embedder.embed([plan.1])
                guard let vector = vectors.first else { return lookup }
                lookup.semantic = (plan.0, vector)
                if let (hit, similarity) = state.withLock({ $0.semantic?.lookup(plan.0, vector: vector, now: now) }) {
                    lookup.hit = hit
                    lookup.outcome = .semantic(similarity: similarity)
                }
            } catch {
                logger.warning("embedding failed; semantic cache skipped", metadata: ["request_id": "\(admitted.requestID)"])
            }
        }
        return lookup
    }

    // MARK: - The attempt loop

    /// How the breaker should count an upstream failure.
    static func breakerOutcome(_ error: UpstreamError) -> CircuitBreaker.Outcome {
        switch error.kind {
        case .cancelled: return .ignored
        case .timeout, .connectionFailed, .connectionDropped, .invalidResponse: return .failure(retryAfter: nil)
        case .status(let code):
            if code == 429 || code == 408 || code >= 500 { return .failure(retryAfter: error.retryAfter) }
            return .success  // a 4xx about the request proves the backend is alive
        }
    }

    static func upstreamError(from error: any Error) -> UpstreamError {
        if let error = error as? UpstreamError { return error }
        if error is CancellationError { return UpstreamError(kind: .cancelled, message: "cancelled") }
        if let error = error as? RoutingError, error.code == .cancelled { return UpstreamError(kind: .cancelled) }
        return UpstreamError(kind: .connectionFailed, message: "upstream failed: \(type(of: error))")
    }

    /// Runs attempts until one succeeds or the retry policy gives up.
    func run<T: Sendable>(
        _ request: ChatCompletionRequest, admitted: Admitted, keepLease: Bool = false,
        attempt: @escaping @Sendable (any Upstream, ChatCompletionRequest, UpstreamCallContext) async throws -> T
    ) async throws(RoutingError) -> (T, model: String, backendID: String, attempts: Int, lease: HeldLease?) {
        var retry = RetryState(policy: configuration.retry, start: admitted.start)
        var tried: [String: Set<Int>] = [:]
        var lastError: UpstreamError?
        var waitedForBreakers = 0
        var chain = admitted.chain
        if configuration.retryBudget != nil {
            let now = clock.now
            state.withLock { $0.retryBudget?.deposit(now: now) }
        }
        while true {
            if Task.isCancelled {
                throw RoutingError(.cancelled, "the client went away", requestID: admitted.requestID)
            }
            let now = clock.now
            // Lease the first eligible backend along the chain, and count the attempt.
            let leased: (String, BackendPool.Lease, Duration)?? = state.withLock { state in
                for model in chain {
                    guard var pool = state.pools[model] else { continue }
                    guard let (lease, transition) = pool.lease(now: now, excluding: tried[model] ?? []) else { continue }
                    let backendTimeout = routes[model]?.backends[lease.index].attemptTimeout
                    guard let timeout = retry.beginAttempt(now: now, timeout: backendTimeout) else {
                        pool.complete(lease, outcome: .ignored, latency: nil, now: now)
                        state.pools[model] = pool
                        return .some(nil)
                    }
                    state.pools[model] = pool
                    if let transition { noteTransition(&state, backendID: lease.backendID, transition) }
                    return (model, lease, timeout ?? retry.policy.timeBudget)
                }
                return nil
            }
            guard let leased else {
                // Nothing eligible now: wait for a breaker or backoff, or give up.
                let availableIn = state.withLock { state in
                    chain.compactMap { state.pools[$0]?.nextAvailableIn(now: now) }.min()
                }
                guard let error = lastError else {
                    // Nothing tried yet and every breaker open: wait for the first to let a probe
                    // through when that is soon enough, as for a Retry-After.
                    if let wait = availableIn, wait > .zero, wait <= retry.policy.maxRetryAfterWait,
                       now + wait < retry.deadline, waitedForBreakers < retry.policy.maxAttempts
                    {
                        waitedForBreakers += 1
                        observer?(.backoff(requestID: admitted.requestID, wait: wait, at: now))
                        do { try await clock.sleep(for: wait) } catch {
                            throw RoutingError(.cancelled, "the client went away", requestID: admitted.requestID)
                        }
                        continue
                    }
                    throw RoutingError(.noHealthyBackend,
                                       "no backend of model '\(admitted.chain[0])' or its fallbacks is available (circuit breakers open or all saturated): retry later",
                                       httpStatus: 503, retryAfter: availableIn, requestID: admitted.requestID)
                }
                let decision = state.withLock { state in
                    let decision = retry.decide(after: error, now: now, alternativeAvailable: false, availableIn: availableIn,
                                                random: &state.random)
                    return Self.charge(decision, to: &state, model: admitted.chain[0], now: now)
                }
                switch decision {
                case .retryNow:
                    tried = [:]
                case .wait(let wait):
                    observer?(.backoff(requestID: admitted.requestID, wait: wait, at: now))
                    do { try await clock.sleep(for: wait) } catch {
                        throw RoutingError(.cancelled, "the client went away", requestID: admitted.requestID)
                    }
                    tried = [:]
                case .giveUp(let reason):
                    throw finalError(error, reason: reason, admitted: admitted, retry: retry)
                }
                continue
            }
            guard let (model, lease, timeout) = leased else {
                throw finalError(lastError ?? UpstreamError(kind: .timeout), reason: .budgetExhausted, admitted: admitted, retry: retry)
            }
            guard let upstream = upstreams[lease.backendID], let backend = routes[model]?.backends[lease.index] else {
                throw RoutingError(.internalError, "backend '\(lease.backendID)' has no upstream", requestID: admitted.requestID)
            }
            var upstreamRequest = request
            upstreamRequest.model = backend.upstreamModel ?? model
            let context = UpstreamCallContext(requestID: admitted.requestID, timeout: timeout, attempt: retry.attempts)
            observer?(.attemptStarted(requestID: admitted.requestID, model: model, backendID: lease.backendID,
                                      attempt: retry.attempts, at: now, timeout: timeout))
            let started = clock.now
            let result: Result<T, UpstreamError>
            do {
                let request = upstreamRequest
                result = .success(try await withAttemptTimer(timeout, started: started) {
                    try await attempt(upstream, request, context)
                })
            } catch {
                result = .failure(Self.upstreamError(from: error))
            }
            let finished = clock.now
            let latency = finished - started
            switch result {
            case .success(let value):
                if keepLease {
                    return (value, model, lease.backendID, retry.attempts,
                            HeldLease(requestID: admitted.requestID, model: model, lease: lease, started: started))
                }
                observer?(.attemptFinished(requestID: admitted.requestID, backendID: lease.backendID, error: nil, at: finished))
                state.withLock { state in
                    if let transition = state.pools[model]?.complete(lease, outcome: .success, latency: latency, now: finished) {
                        noteTransition(&state, backendID: lease.backendID, transition)
                    }
                    state.metrics.record("upstream_duration_seconds", latency, [("backend", lease.backendID), ("outcome", "ok")])
                }
                logger.debug("attempt succeeded", metadata: ["request_id": "\(admitted.requestID)", "backend": "\(lease.backendID)",
                                                            "attempt": "\(retry.attempts)"])
                return (value, model, lease.backendID, retry.attempts, nil)
            case .failure(let error):
                lastError = error
                tried[model, default: []].insert(lease.index)
                let outcome = Self.breakerOutcome(error)
                observer?(.attemptFinished(requestID: admitted.requestID, backendID: lease.backendID, error: error, at: finished))
                logger.debug("attempt failed", metadata: ["request_id": "\(admitted.requestID)", "backend": "\(lease.backendID)",
                                                         "attempt": "\(retry.attempts)", "error": "\(error.kind)"])
                // The model's real window was smaller than the estimate: drop it from the chain, so a
                // fallback with a larger window can answer.
                let contextTooSmall = Self.isContextLengthError(error)
                if contextTooSmall { chain.removeAll { $0 == model } }
                let remainingChain = chain
                let decision: RetryState.Decision = state.withLock { state in
                    if let transition = state.pools[model]?.complete(lease, outcome: outcome, latency: latency, now: finished) {
                        noteTransition(&state, backendID: lease.backendID, transition)
                    }
                    state.metrics.record("upstream_duration_seconds", latency, [("backend", lease.backendID), ("outcome", "error")])
                    state.metrics.increment("upstream_errors_total", [("backend", lease.backendID), ("kind", Self.kindLabel(error))])
                    if error.kind == .cancelled || Task.isCancelled { return .giveUp(.notRetryable) }
                    let alternative = remainingChain.contains {
                        state.pools[$0]?.hasAvailable(now: finished, excluding: tried[$0] ?? []) ?? false
                    }
                    if contextTooSmall {
                        let canTry = alternative && retry.attempts < retry.policy.maxAttempts && finished < retry.deadline
                        return canTry ? Self.charge(.retryNow, to: &state, model: model, now: finished) : .giveUp(.notRetryable)
                    }
                    let availableIn = remainingChain.compactMap { state.pools[$0]?.nextAvailableIn(now: finished) }.min()
                    let decision = retry.decide(after: error, now: finished, alternativeAvailable: alternative,
                                                availableIn: availableIn, random: &state.random)
                    return Self.charge(decision, to: &state, model: model, now: finished)
                }
                if error.kind == .cancelled || Task.isCancelled {
                    throw RoutingError(.cancelled, "the client went away", requestID: admitted.requestID, upstream: error)
                }
                switch decision {
                case .retryNow:
                    state.withLock { $0.metrics.increment("retries_total", [("model", model), ("kind", "switch")]) }
                case .wait(let wait):
                    state.withLock { $0.metrics.increment("retries_total", [("model", model), ("kind", "backoff")]) }
                    observer?(.backoff(requestID: admitted.requestID, wait: wait, at: finished))
                    do { try await clock.sleep(for: wait) } catch {
                        throw RoutingError(.cancelled, "the client went away", requestID: admitted.requestID)
                    }
                    tried = [:]
                case .giveUp(let reason):
                    throw finalError(error, reason: reason, admitted: admitted, retry: retry)
                }
            }
        }
    }

    /// Pays for a retry from the shared budget, if there is one; a retry it cannot pay for becomes
    /// a give-up (`attemptsExhausted`: the request gets its last upstream error).
    static func charge(_ decision: RetryState.Decision, to state: inout State, model: String,
                       now: RoutingInstant) -> RetryState.Decision {
        switch decision {
        case .giveUp: return decision
        case .retryNow, .wait:
            guard state.retryBudget != nil else { return decision }
            if state.retryBudget?.withdraw(now: now) == true { return decision }
            state.metrics.increment("retry_budget_exhausted_total", [("model", model)])
            return .giveUp(.attemptsExhausted)
        }
    }

    /// Runs one attempt against a timer on the gateway's clock: when the timer passes first, the
    /// attempt is cancelled and fails with ``UpstreamError/Kind/timeout``, so an upstream that hangs
    /// (and ignores `context.timeout`) cannot hold a request past its attempt timeout or time budget.
    /// The attempt runs in its own task (cancelling it must not cancel the request, which may retry
    /// elsewhere) and is awaited to its end, cancelled or not, before this returns: an upstream must
    /// stop on cancellation, as `URLSession`, AsyncHTTPClient and `Task.sleep` do. The timer is a
    /// clock callback, not a task (see ``RoutingClock/scheduleTimer(at:_:)``).
    func withAttemptTimer<T: Sendable>(
        _ timeout: Duration, started: RoutingInstant, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let attempt = Task { try await body() }
        let fired = AttemptTimerFlag()
        let timer = clock.scheduleTimer(at: started + timeout) {
            fired.set()
            attempt.cancel()
        }
        let result = await withTaskCancellationHandler {
            await attempt.result
        } onCancel: {
            attempt.cancel()
        }
        timer.cancel()
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            if fired.isSet {
                throw UpstreamError(kind: .timeout, message: "no answer within \(timeout) (attempt timer of the gateway)")
            }
            throw error
        }
    }

    /// A backend reservation kept past the first chunk of a stream.
    struct HeldLease: Sendable {
        var requestID: String
        var model: String
        var lease: BackendPool.Lease
        var started: RoutingInstant
    }

    /// Releases a lease kept by a stream.
    func release(_ held: HeldLease, outcome: CircuitBreaker.Outcome, error: UpstreamError?) {
        let now = clock.now
        observer?(.attemptFinished(requestID: held.requestID, backendID: held.lease.backendID, error: error, at: now))
        state.withLock { state in
            if let transition = state.pools[held.model]?.complete(held.lease, outcome: outcome, latency: now - held.started, now: now) {
                noteTransition(&state, backendID: held.lease.backendID, transition)
            }
            state.metrics.record("upstream_duration_seconds", now - held.started,
                                 [("backend", held.lease.backendID), ("outcome", error == nil ? "ok" : "error")])
            if let error {
                state.metrics.increment("upstream_errors_total", [("backend", held.lease.backendID), ("kind", Self.kindLabel(error))])
            }
        }
    }

    /// Whether an upstream said the request does not fit its context window (OpenAI's
    /// `context_length_exceeded` code, or vLLM's "maximum context length" message).
    static func isContextLengthError(_ error: UpstreamError) -> Bool {
        guard let status = error.httpStatus, status == 400 || status == 413 else { return false }
        if error.body?.error.code == "context_length_exceeded" { return true }
        return error.message.lowercased().contains("maximum context length")
    }

    static func kindLabel(_ error: UpstreamError) -> String {
        switch error.kind {
        case .status(let code): return code == 429 ? "429" : (code >= 500 ? "5xx" : "4xx")
        case .timeout: return "timeout"
        case .connectionFailed: return "connect"
        case .connectionDropped: return "dropped"
        case .invalidResponse: return "invalid"
        case .cancelled: return "cancelled"
        }
    }

    func noteTransition(_ state: inout State, backendID: String, _ transition: CircuitBreaker.Transition) {
        state.metrics.increment("breaker_transitions_total", [("backend", backendID), ("to", transition.to)])
        state.metrics.gauge("breaker_open", transition.to == "closed" ? 0 : 1, [("backend", backendID)])
        logger.warning("circuit breaker \(transition.from) → \(transition.to)", metadata: [
            "backend": "\(backendID)", "reason": "\(transition.reason)",
        ])
        observer?(.breakerTransition(backendID: backendID, transition))
    }

    func finalError(_ error: UpstreamError, reason: RetryState.GiveUpReason, admitted: Admitted,
                            retry: RetryState) -> RoutingError {
        let id = admitted.requestID
        let tries = "after \(retry.attempts) attempt\(retry.attempts == 1 ? "" : "s")"
        if case .retryAfterTooLong(let wait) = reason {
            if error.httpStatus == 503 {
                return RoutingError(.noHealthyBackend, "upstreams are unavailable and asked to wait \(wait) \(tries): retry later",
                                    retryAfter: wait, requestID: id, upstream: error)
            }
            return RoutingError(.upstreamRateLimited, "upstreams are throttling (\(error.kind)) \(tries): retry after the Retry-After time",
                                retryAfter: wait, requestID: id, upstream: error)
        }
        switch error.kind {
        case .status(let code) where code == 429:
            return RoutingError(.upstreamRateLimited, "upstreams are throttling \(tries): retry after the Retry-After time",
                                retryAfter: error.retryAfter ?? .seconds(1), requestID: id, upstream: error)
        case .status(let code) where (400..<500).contains(code) && reason == .notRetryable:
            return RoutingError(.upstreamRejected, "the upstream rejected the request: \(error.body?.error.message ?? error.message)",
                                httpStatus: code, param: error.body?.error.param, requestID: id, upstream: error)
        case .timeout:
            return RoutingError(.upstreamTimeout, "upstreams did not answer in time \(tries)", requestID: id, upstream: error)
        case .cancelled:
            return RoutingError(.cancelled, "the client went away", requestID: id, upstream: error)
        default:
            return RoutingError(.upstreamFailed, "upstreams failed (\(error.kind)) \(tries): retry later", requestID: id, upstream: error)
        }
    }
}

/// Set once by an attempt timer's callback, read by the attempt's owner.
final class AttemptTimerFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
