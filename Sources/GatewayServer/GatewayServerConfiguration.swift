import HummingbirdTLS
import NIOSSL
import Routing
import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The gateway's configuration file (YAML or JSON), as written by an operator.
///
/// Keys are `snake_case`; unknown keys are errors (a misspelt limit must not be silently
/// ignored); durations are seconds; secrets come from environment variables (`*_env`) or,
/// for local testing, literal values. ``resolve(environment:)`` checks everything and builds
/// the Routing library's `GatewayConfiguration` plus the upstream endpoints.
///
/// ```yaml
/// server: { host: 0.0.0.0, port: 8080, max_body_bytes: 1048576 }
/// upstreams:
///   - { id: ptu-eastus, type: azure, endpoint: "https://east.openai.azure.com",
///       deployment: gpt-4o, api_version: "2024-10-21", api_key_env: AOAI_EAST_KEY }
/// models:
///   - name: gpt-4o
///     backends: [ { upstream: ptu-eastus, priority: 0 } ]
/// api_keys:
///   - { id: team-a, key_env: TEAM_A_KEY, limits: { tokens_per_minute: 100000 } }
/// ```
public struct GatewayServerConfiguration: Sendable, Equatable, Decodable {
    public var server: ServerSection
    public var upstreams: [UpstreamSection]
    public var models: [ModelSection]
    /// Absent: authentication is off (every request is anonymous). Present (even empty): a key is required.
    public var apiKeys: [APIKeySection]?
    public var defaultKeyLimits: LimitsSection?
    public var modelLimits: [String: LimitsSection]
    /// `optimistic` (default) or `strict`.
    public var tokenAdmission: String?
    public var retry: RetrySection?
    public var circuitBreaker: BreakerSection?
    public var responseCache: ResponseCacheSection?
    public var semanticCache: SemanticCacheSection?
    /// Routing of a virtual model (e.g. `auto`) to the cheapest capable model by query class.
    public var modelRouting: ModelRoutingSection?
    /// Log prompt text at trace level (off: prompts are user data).
    public var logPrompts: Bool
    /// The directory of the file this was loaded from (relative `weights_file` paths start there);
    /// `nil` when parsed from text (then they start in the working directory).
    public var sourceDirectory: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case server, upstreams, models
        case apiKeys = "api_keys"
        case defaultKeyLimits = "default_key_limits"
        case modelLimits = "model_limits"
        case tokenAdmission = "token_admission"
        case retry
        case circuitBreaker = "circuit_breaker"
        case responseCache = "response_cache"
        case semanticCache = "semantic_cache"
        case modelRouting = "model_routing"
        case logPrompts = "log_prompts"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, section: "top level")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        server = try c.decodeIfPresent(ServerSection.self, forKey: .server) ?? ServerSection()
        upstreams = try c.decode([UpstreamSection].self, forKey: .upstreams)
        models = try c.decode([ModelSection].self, forKey: .models)
        apiKeys = try c.decodeIfPresent([APIKeySection].self, forKey: .apiKeys)
        defaultKeyLimits = try c.decodeIfPresent(LimitsSection.self, forKey: .defaultKeyLimits)
        modelLimits = try c.decodeIfPresent([String: LimitsSection].self, forKey: .modelLimits) ?? [:]
        tokenAdmission = try c.decodeIfPresent(String.self, forKey: .tokenAdmission)
        retry = try c.decodeIfPresent(RetrySection.self, forKey: .retry)
        circuitBreaker = try c.decodeIfPresent(BreakerSection.self, forKey: .circuitBreaker)
        responseCache = try c.decodeIfPresent(ResponseCacheSection.self, forKey: .responseCache)
        semanticCache = try c.decodeIfPresent(SemanticCacheSection.self, forKey: .semanticCache)
        modelRouting = try c.decodeIfPresent(ModelRoutingSection.self, forKey: .modelRouting)
        logPrompts = try c.decodeIfPresent(Bool.self, forKey: .logPrompts) ?? false
        sourceDirectory = nil
    }

    /// `server:` — the HTTP listener.
    public struct ServerSection: Sendable, Equatable, Decodable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// Largest request body (default 4 MiB); larger bodies get 413.
        public var maxBodyBytes = 4 << 20
        /// Seconds in-flight requests get to finish on SIGTERM/SIGINT (default 30).
        public var shutdownGraceSeconds = 30.0
        /// Seconds to establish an upstream connection (default 2).
        public var connectTimeoutSeconds = 2.0
        /// Longest silence while reading an upstream response, seconds (default 120).
        public var readIdleTimeoutSeconds = 120.0
        /// Keep-alive connections per upstream host (default 512).
        public var maxConnectionsPerUpstream = 512
        /// Seconds an idle client connection is kept open (default 75; 0 disables the limit).
        public var clientIdleTimeoutSeconds = 75.0
        /// Serve HTTPS with these PEM files (absent: plain HTTP).
        public var tls: TLSSection?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case host, port
            case maxBodyBytes = "max_body_bytes"
            case shutdownGraceSeconds = "shutdown_grace_seconds"
            case connectTimeoutSeconds = "connect_timeout_seconds"
            case readIdleTimeoutSeconds = "read_idle_timeout_seconds"
            case maxConnectionsPerUpstream = "max_connections_per_upstream"
            case clientIdleTimeoutSeconds = "client_idle_timeout_seconds"
            case tls
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "server")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            host = try c.decodeIfPresent(String.self, forKey: .host) ?? host
            port = try c.decodeIfPresent(Int.self, forKey: .port) ?? port
            maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? maxBodyBytes
            shutdownGraceSeconds = try c.decodeIfPresent(Double.self, forKey: .shutdownGraceSeconds) ?? shutdownGraceSeconds
            connectTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .connectTimeoutSeconds) ?? connectTimeoutSeconds
            readIdleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .readIdleTimeoutSeconds) ?? readIdleTimeoutSeconds
            maxConnectionsPerUpstream = try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerUpstream) ?? maxConnectionsPerUpstream
            clientIdleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .clientIdleTimeoutSeconds) ?? clientIdleTimeoutSeconds
            tls = try c.decodeIfPresent(TLSSection.self, forKey: .tls)
        }
    }

    /// `server.tls:` — `cert_file` (PEM, the certificate then its chain) and `key_file` (PEM);
    /// relative paths start beside the configuration file.
    public struct TLSSection: Sendable, Equatable, Decodable {
        public var certFile: String
        public var keyFile: String
        enum CodingKeys: String, CodingKey, CaseIterable {
            case certFile = "cert_file"
            case keyFile = "key_file"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "server.tls")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            certFile = try c.decode(String.self, forKey: .certFile)
            keyFile = try c.decode(String.self, forKey: .keyFile)
        }
    }

    /// `upstreams:` — one HTTP endpoint each.
    public struct UpstreamSection: Sendable, Equatable, Decodable {
        public var id: String
        /// `openai` (OpenAI-compatible: OpenAI, vLLM, llama.cpp, Ollama) or `azure`.
        public var type: String
        /// `openai`: the base URL, normally ending in `/v1`.
        public var baseURL: String?
        /// `azure`: `https://NAME.openai.azure.com`.
        public var endpoint: String?
        public var deployment: String?
        public var apiVersion: String?
        /// Name of the environment variable holding the key (preferred).
        public var apiKeyEnv: String?
        /// The key itself (for local testing; prefer `api_key_env`).
        public var apiKey: String?
        /// Attempt timeout, seconds, for every backend on this upstream that sets none itself
        /// (absent: `retry.attempt_timeout_seconds`). Give slow regions or large models more time.
        public var timeoutSeconds: Double?
        /// Extra headers sent on every request.
        public var headers: [String: String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, type, endpoint, deployment, headers
            case baseURL = "base_url"
            case apiVersion = "api_version"
            case apiKeyEnv = "api_key_env"
            case apiKey = "api_key"
            case timeoutSeconds = "timeout_seconds"
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "upstreams[]")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? "openai"
            baseURL = try c.decodeIfPresent(String.self, forKey: .baseURL)
            endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint)
            deployment = try c.decodeIfPresent(String.self, forKey: .deployment)
            apiVersion = try c.decodeIfPresent(String.self, forKey: .apiVersion)
            apiKeyEnv = try c.decodeIfPresent(String.self, forKey: .apiKeyEnv)
            apiKey = try c.decodeIfPresent(String.self, forKey: .apiKey)
            timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds)
            headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        }
    }

    /// `models[].backends[]` — one upstream serving one public model.
    public struct BackendSection: Sendable, Equatable, Decodable {
        /// The `upstreams[].id` to call.
        public var upstream: String
        /// The backend id (metric label, breaker identity); defaults to the upstream id. Backend ids
        /// are unique across all models, so an upstream serving two models needs an explicit id in one.
        public var id: String?
        /// The model (deployment) name sent upstream; absent sends the public name.
        public var model: String?
        public var priority: Int?
        public var weight: Int?
        public var maxConcurrentRequests: Int?
        public var region: String?
        public var pricing: PricingSection?
        /// This backend's attempt timeout in seconds (default: its upstream's `timeout_seconds`,
        /// else `retry.attempt_timeout_seconds`).
        public var timeoutSeconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case upstream, id, model, priority, weight, region, pricing
            case maxConcurrentRequests = "max_concurrent_requests"
            case timeoutSeconds = "timeout_seconds"
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "models[].backends[]")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            upstream = try c.decode(String.self, forKey: .upstream)
            id = try c.decodeIfPresent(String.self, forKey: .id)
            model = try c.decodeIfPresent(String.self, forKey: .model)
            priority = try c.decodeIfPresent(Int.self, forKey: .priority)
            weight = try c.decodeIfPresent(Int.self, forKey: .weight)
            maxConcurrentRequests = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentRequests)
            region = try c.decodeIfPresent(String.self, forKey: .region)
            pricing = try c.decodeIfPresent(PricingSection.self, forKey: .pricing)
            timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds)
        }
    }

    /// `pricing:` — per million tokens.
    public struct PricingSection: Sendable, Equatable, Decodable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double
        enum CodingKeys: String, CodingKey, CaseIterable {
            case inputPerMillion = "input_per_million"
            case outputPerMillion = "output_per_million"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "pricing")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputPerMillion = try c.decode(Double.self, forKey: .inputPerMillion)
            outputPerMillion = try c.decode(Double.self, forKey: .outputPerMillion)
        }
        var value: TokenPricing { TokenPricing(inputPerMillion: inputPerMillion, outputPerMillion: outputPerMillion) }
    }

    /// `models[]` — a public model name and its pool.
    public struct ModelSection: Sendable, Equatable, Decodable {
        public var name: String
        /// `round_robin` (default), `weighted`, `least_outstanding`, `latency_aware`, `cost_aware`.
        public var strategy: String?
        /// EWMA weight of the newest sample for `latency_aware` (default 0.3).
        public var latencyAlpha: Double?
        public var contextWindow: Int?
        public var fallbacks: [String]?
        public var pricing: PricingSection?
        public var backends: [BackendSection]

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, strategy, fallbacks, pricing, backends
            case latencyAlpha = "latency_alpha"
            case contextWindow = "context_window"
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "models[]")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            strategy = try c.decodeIfPresent(String.self, forKey: .strategy)
            latencyAlpha = try c.decodeIfPresent(Double.self, forKey: .latencyAlpha)
            contextWindow = try c.decodeIfPresent(Int.self, forKey: .contextWindow)
            fallbacks = try c.decodeIfPresent([String].self, forKey: .fallbacks)
            pricing = try c.decodeIfPresent(PricingSection.self, forKey: .pricing)
            backends = try c.decode([BackendSection].self, forKey: .backends)
        }
    }

    /// `limits:` — requests/tokens per minute and a quota.
    public struct LimitsSection: Sendable, Equatable, Decodable {
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        public var quota: QuotaSection?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case quota
            case requestsPerMinute = "requests_per_minute"
            case tokensPerMinute = "tokens_per_minute"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "limits")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            requestsPerMinute = try c.decodeIfPresent(Int.self, forKey: .requestsPerMinute)
            tokensPerMinute = try c.decodeIfPresent(Int.self, forKey: .tokensPerMinute)
            quota = try c.decodeIfPresent(QuotaSection.self, forKey: .quota)
        }
        func value() throws -> RateLimit {
            RateLimit(requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute, quota: try quota?.value())
        }
    }

    /// `quota:` — per fixed period.
    public struct QuotaSection: Sendable, Equatable, Decodable {
        public var periodSeconds: Double
        public var maxTokens: Int?
        public var maxRequests: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case periodSeconds = "period_seconds"
            case maxTokens = "max_tokens"
            case maxRequests = "max_requests"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "quota")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            periodSeconds = try c.decode(Double.self, forKey: .periodSeconds)
            maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
            maxRequests = try c.decodeIfPresent(Int.self, forKey: .maxRequests)
        }
        func value() throws -> Quota {
            Quota(period: try seconds(periodSeconds, "quota.period_seconds"), maxTokens: maxTokens, maxRequests: maxRequests)
        }
    }

    /// `api_keys[]`.
    public struct APIKeySection: Sendable, Equatable, Decodable {
        /// A short non-secret name, used in metrics and logs.
        public var id: String
        /// Environment variable holding the key (preferred).
        public var keyEnv: String?
        /// The key itself (local testing only).
        public var key: String?
        /// Models this key may use (absent: all).
        public var models: [String]?
        public var limits: LimitsSection?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, key, models, limits
            case keyEnv = "key_env"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "api_keys[]")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            keyEnv = try c.decodeIfPresent(String.self, forKey: .keyEnv)
            key = try c.decodeIfPresent(String.self, forKey: .key)
            models = try c.decodeIfPresent([String].self, forKey: .models)
            limits = try c.decodeIfPresent(LimitsSection.self, forKey: .limits)
        }
    }

    /// `retry:` — all optional; defaults are the Routing library's.
    public struct RetrySection: Sendable, Equatable, Decodable {
        public var maxAttempts: Int?
        public var timeBudgetSeconds: Double?
        public var attemptTimeoutSeconds: Double?
        public var initialBackoffSeconds: Double?
        public var maxBackoffSeconds: Double?
        public var multiplier: Double?
        public var jitter: Double?
        public var retryableStatuses: [Int]?
        public var retryOnTimeout: Bool?
        public var retryOnConnectionFailure: Bool?
        public var maxRetryAfterWaitSeconds: Double?
        public var streamIdleTimeoutSeconds: Double?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case multiplier, jitter
            case streamIdleTimeoutSeconds = "stream_idle_timeout_seconds"
            case maxAttempts = "max_attempts"
            case timeBudgetSeconds = "time_budget_seconds"
            case attemptTimeoutSeconds = "attempt_timeout_seconds"
            case initialBackoffSeconds = "initial_backoff_seconds"
            case maxBackoffSeconds = "max_backoff_seconds"
            case retryableStatuses = "retryable_statuses"
            case retryOnTimeout = "retry_on_timeout"
            case retryOnConnectionFailure = "retry_on_connection_failure"
            case maxRetryAfterWaitSeconds = "max_retry_after_wait_seconds"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "retry")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts)
            timeBudgetSeconds = try c.decodeIfPresent(Double.self, forKey: .timeBudgetSeconds)
            attemptTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .attemptTimeoutSeconds)
            initialBackoffSeconds = try c.decodeIfPresent(Double.self, forKey: .initialBackoffSeconds)
            maxBackoffSeconds = try c.decodeIfPresent(Double.self, forKey: .maxBackoffSeconds)
            multiplier = try c.decodeIfPresent(Double.self, forKey: .multiplier)
            jitter = try c.decodeIfPresent(Double.self, forKey: .jitter)
            retryableStatuses = try c.decodeIfPresent([Int].self, forKey: .retryableStatuses)
            retryOnTimeout = try c.decodeIfPresent(Bool.self, forKey: .retryOnTimeout)
            retryOnConnectionFailure = try c.decodeIfPresent(Bool.self, forKey: .retryOnConnectionFailure)
            maxRetryAfterWaitSeconds = try c.decodeIfPresent(Double.self, forKey: .maxRetryAfterWaitSeconds)
            streamIdleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .streamIdleTimeoutSeconds)
        }
        func value() throws -> RetryPolicy {
            var p = RetryPolicy()
            if let maxAttempts { p.maxAttempts = maxAttempts }
            if let v = timeBudgetSeconds { p.timeBudget = try seconds(v, "retry.time_budget_seconds") }
            if let v = attemptTimeoutSeconds { p.attemptTimeout = try seconds(v, "retry.attempt_timeout_seconds") }
            if let v = initialBackoffSeconds { p.initialBackoff = try seconds(v, "retry.initial_backoff_seconds", allowZero: true) }
            if let v = maxBackoffSeconds { p.maxBackoff = try seconds(v, "retry.max_backoff_seconds", allowZero: true) }
            if let multiplier { p.multiplier = multiplier }
            if let jitter { p.jitter = jitter }
            if let retryableStatuses { p.retryableStatuses = Set(retryableStatuses) }
            if let retryOnTimeout { p.retryOnTimeout = retryOnTimeout }
            if let retryOnConnectionFailure { p.retryOnConnectionFailure = retryOnConnectionFailure }
            if let v = maxRetryAfterWaitSeconds { p.maxRetryAfterWait = try seconds(v, "retry.max_retry_after_wait_seconds", allowZero: true) }
            if let v = streamIdleTimeoutSeconds { p.streamIdleTimeout = try seconds(v, "retry.stream_idle_timeout_seconds") }
            return p
        }
    }

    /// `circuit_breaker:` — all optional; defaults are the Routing library's.
    public struct BreakerSection: Sendable, Equatable, Decodable {
        public var failureThreshold: Int?
        public var failureRateThreshold: Double?
        public var minimumRequests: Int?
        public var intervalSeconds: Double?
        public var tripSeconds: Double?
        public var honourRetryAfter: Bool?
        public var maxRetryAfterTripSeconds: Double?
        public var halfOpenProbes: Int?
        public var successesToClose: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case failureThreshold = "failure_threshold"
            case failureRateThreshold = "failure_rate_threshold"
            case minimumRequests = "minimum_requests"
            case intervalSeconds = "interval_seconds"
            case tripSeconds = "trip_seconds"
            case honourRetryAfter = "honour_retry_after"
            case maxRetryAfterTripSeconds = "max_retry_after_trip_seconds"
            case halfOpenProbes = "half_open_probes"
            case successesToClose = "successes_to_close"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "circuit_breaker")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            failureThreshold = try c.decodeIfPresent(Int.self, forKey: .failureThreshold)
            failureRateThreshold = try c.decodeIfPresent(Double.self, forKey: .failureRateThreshold)
            minimumRequests = try c.decodeIfPresent(Int.self, forKey: .minimumRequests)
            intervalSeconds = try c.decodeIfPresent(Double.self, forKey: .intervalSeconds)
            tripSeconds = try c.decodeIfPresent(Double.self, forKey: .tripSeconds)
            honourRetryAfter = try c.decodeIfPresent(Bool.self, forKey: .honourRetryAfter)
            maxRetryAfterTripSeconds = try c.decodeIfPresent(Double.self, forKey: .maxRetryAfterTripSeconds)
            halfOpenProbes = try c.decodeIfPresent(Int.self, forKey: .halfOpenProbes)
            successesToClose = try c.decodeIfPresent(Int.self, forKey: .successesToClose)
        }
        func value() throws -> CircuitBreakerConfiguration {
            var b = CircuitBreakerConfiguration()
            if let failureThreshold { b.failureThreshold = failureThreshold }
            if let failureRateThreshold { b.failureRateThreshold = failureRateThreshold }
            if let minimumRequests { b.minimumRequests = minimumRequests }
            if let v = intervalSeconds { b.interval = try seconds(v, "circuit_breaker.interval_seconds") }
            if let v = tripSeconds { b.tripDuration = try seconds(v, "circuit_breaker.trip_seconds") }
            if let honourRetryAfter { b.honourRetryAfter = honourRetryAfter }
            if let v = maxRetryAfterTripSeconds { b.maxRetryAfterTrip = try seconds(v, "circuit_breaker.max_retry_after_trip_seconds", allowZero: true) }
            if let halfOpenProbes { b.halfOpenProbes = halfOpenProbes }
            if let successesToClose { b.successesToClose = successesToClose }
            return b
        }
    }

    /// `response_cache:` — exact-match cache.
    public struct ResponseCacheSection: Sendable, Equatable, Decodable {
        public var capacity: Int?
        public var ttlSeconds: Double?
        public var maxTemperature: Double?
        public var partitionByKey: Bool?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case capacity
            case ttlSeconds = "ttl_seconds"
            case maxTemperature = "max_temperature"
            case partitionByKey = "partition_by_key"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "response_cache")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            capacity = try c.decodeIfPresent(Int.self, forKey: .capacity)
            ttlSeconds = try c.decodeIfPresent(Double.self, forKey: .ttlSeconds)
            maxTemperature = try c.decodeIfPresent(Double.self, forKey: .maxTemperature)
            partitionByKey = try c.decodeIfPresent(Bool.self, forKey: .partitionByKey)
        }
        func value() throws -> ResponseCacheConfiguration {
            var r = ResponseCacheConfiguration()
            if let capacity { r.capacity = capacity }
            if let v = ttlSeconds { r.ttl = try seconds(v, "response_cache.ttl_seconds") }
            r.maxTemperature = maxTemperature
            if let partitionByKey { r.partitionByKey = partitionByKey }
            return r
        }
    }

    /// `semantic_cache:` — similarity cache over the built-in embedder.
    public struct SemanticCacheSection: Sendable, Equatable, Decodable {
        public var threshold: Double?
        public var ttlSeconds: Double?
        public var capacityPerPartition: Int?
        public var maxTemperature: Double?
        public var partitionByKey: Bool?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case threshold
            case ttlSeconds = "ttl_seconds"
            case capacityPerPartition = "capacity_per_partition"
            case maxTemperature = "max_temperature"
            case partitionByKey = "partition_by_key"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "semantic_cache")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
            ttlSeconds = try c.decodeIfPresent(Double.self, forKey: .ttlSeconds)
            capacityPerPartition = try c.decodeIfPresent(Int.self, forKey: .capacityPerPartition)
            maxTemperature = try c.decodeIfPresent(Double.self, forKey: .maxTemperature)
            partitionByKey = try c.decodeIfPresent(Bool.self, forKey: .partitionByKey)
        }
        func value() throws -> SemanticCacheConfiguration {
            var s = SemanticCacheConfiguration()
            if let threshold { s.threshold = threshold }
            if let v = ttlSeconds { s.ttl = try seconds(v, "semantic_cache.ttl_seconds") }
            if let capacityPerPartition { s.capacityPerPartition = capacityPerPartition }
            if let maxTemperature { s.maxTemperature = maxTemperature }
            if let partitionByKey { s.partitionByKey = partitionByKey }
            return s
        }
    }
}

extension GatewayServerConfiguration {
    /// `model_routing:` — requests for the virtual model `model` (default `auto`) are classified
    /// and sent to the cheapest model whose capability tier the class needs.
    ///
    /// ```yaml
    /// model_routing:
    ///   model: auto
    ///   classifier: rules            # or: logistic (with weights_file)
    ///   weights_file: router.json    # LogisticRegressionClassifier JSON (relative to this file)
    ///   tiers: { gpt-4o-mini: 1, gpt-4o: 3 }
    ///   class_tiers: { simple: 1, standard: 1, code: 2, complex: 3 }
    ///   default_tier: 3              # classes not listed (default: the highest tier)
    ///   rules: { simple_max_tokens: 12, complex_min_tokens: 400 }
    /// ```
    /// Among capable models the price decides: a tiered model's own `pricing:`, else its cheapest
    /// priced backend. API keys that list `models` must list the virtual model to use it; a request
    /// for it may then reach any tiered model.
    public struct ModelRoutingSection: Sendable, Equatable, Decodable {
        public var model: String?
        public var classifier: String?
        public var weightsFile: String?
        public var tiers: [String: Int]
        public var classTiers: [String: Int]?
        public var defaultTier: Int?
        public var rules: RulesSection?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case model, classifier, tiers, rules
            case weightsFile = "weights_file"
            case classTiers = "class_tiers"
            case defaultTier = "default_tier"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "model_routing")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            model = try c.decodeIfPresent(String.self, forKey: .model)
            classifier = try c.decodeIfPresent(String.self, forKey: .classifier)
            weightsFile = try c.decodeIfPresent(String.self, forKey: .weightsFile)
            tiers = try c.decode([String: Int].self, forKey: .tiers)
            classTiers = try c.decodeIfPresent([String: Int].self, forKey: .classTiers)
            defaultTier = try c.decodeIfPresent(Int.self, forKey: .defaultTier)
            rules = try c.decodeIfPresent(RulesSection.self, forKey: .rules)
        }
    }

    /// `model_routing.rules:` — thresholds of the rule-based classifier.
    public struct RulesSection: Sendable, Equatable, Decodable {
        public var simpleMaxTokens: Int?
        public var complexMinTokens: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case simpleMaxTokens = "simple_max_tokens"
            case complexMinTokens = "complex_min_tokens"
        }
        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self, section: "model_routing.rules")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            simpleMaxTokens = try c.decodeIfPresent(Int.self, forKey: .simpleMaxTokens)
            complexMinTokens = try c.decodeIfPresent(Int.self, forKey: .complexMinTokens)
        }
    }

    /// Checks the section against the configured models and builds the router and classifier.
    func resolveModelRouting(_ section: ModelRoutingSection, routes: [ModelRoute]) throws -> (ModelRoutingConfiguration, any QueryClassifier) {
        let virtual = section.model ?? "auto"
        guard !virtual.isEmpty, !routes.contains(where: { $0.name == virtual }) else {
            throw GatewayError(.invalidConfiguration, "model_routing.model '\(virtual)' must be non-empty and not the name of a configured model")
        }
        guard !section.tiers.isEmpty else {
            throw GatewayError(.invalidConfiguration, "model_routing.tiers must list at least one configured model with its tier")
        }
        var tiers: [ModelTier] = []
        for (name, tier) in section.tiers.sorted(by: { $0.key < $1.key }) {
            guard let route = routes.first(where: { $0.name == name }) else {
                throw GatewayError(.invalidConfiguration, "model_routing.tiers: '\(name)' is not a configured model")
            }
            guard (0...1000).contains(tier) else {
                throw GatewayError(.invalidConfiguration, "model_routing.tiers: the tier of '\(name)' must be in 0…1000 (got \(tier))")
            }
            // The model's list price: its own `pricing`, else the cheapest priced backend (a PTU
            // backend without a price does not make the model free: overflow is paid at list price).
            let cheapest = route.backends.compactMap(\.pricing).min { $0.blended < $1.blended }
            guard let pricing = route.pricing ?? cheapest else {
                throw GatewayError(
                    .invalidConfiguration,
                    "model_routing.tiers: model '\(name)' has no price; give it or one of its backends a 'pricing:' so the router can pick the cheapest capable model")
            }
            tiers.append(ModelTier(model: name, tier: tier, pricing: pricing))
        }
        guard let classTiers = section.classTiers, !classTiers.isEmpty else {
            throw GatewayError(
                .invalidConfiguration,
                "model_routing.class_tiers must give the tier each query class needs, e.g. { simple: 1, standard: 1, code: 2, complex: 3 }")
        }
        var required: [QueryClass: Int] = [:]
        for (label, tier) in classTiers {
            guard !label.isEmpty else { throw GatewayError(.invalidConfiguration, "model_routing.class_tiers: class names must not be empty") }
            required[QueryClass(rawValue: label)] = tier
        }
        let top = tiers.map(\.tier).max() ?? 0
        let router: ModelTierRouter
        do {
            router = try ModelTierRouter(models: tiers, requiredTier: required, defaultTier: section.defaultTier ?? top)
        } catch {
            throw GatewayError(.invalidConfiguration, "model_routing: \(error.message)")
        }
        let classifier: any QueryClassifier
        switch (section.classifier ?? (section.weightsFile == nil ? "rules" : "logistic")).lowercased() {
        case "rules", "rule_based":
            guard section.weightsFile == nil else {
                throw GatewayError(.invalidConfiguration, "model_routing.weights_file is for classifier: logistic, not rules")
            }
            var rules = RuleBasedClassifier()
            if let v = section.rules?.simpleMaxTokens {
                guard v >= 0 else { throw GatewayError(.invalidConfiguration, "model_routing.rules.simple_max_tokens must be ≥ 0") }
                rules.simpleMaxTokens = v
            }
            if let v = section.rules?.complexMinTokens {
                guard v > rules.simpleMaxTokens else {
                    throw GatewayError(.invalidConfiguration, "model_routing.rules.complex_min_tokens must be above simple_max_tokens")
                }
                rules.complexMinTokens = v
            }
            classifier = rules
        case "logistic", "logistic_regression":
            guard section.rules == nil else {
                throw GatewayError(.invalidConfiguration, "model_routing.rules applies to classifier: rules, not logistic")
            }
            guard let file = section.weightsFile, !file.isEmpty else {
                throw GatewayError(.invalidConfiguration, "model_routing: classifier logistic needs weights_file (a LogisticRegressionClassifier JSON)")
            }
            let path = resolvePath(file)
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw GatewayError(.invalidConfiguration, "model_routing.weights_file '\(path)' cannot be read: check the path and permissions")
            }
            do {
                classifier = try LogisticRegressionClassifier(json: data)
            } catch {
                throw GatewayError(.invalidConfiguration, "model_routing.weights_file '\(path)': \(error.message)")
            }
        default:
            throw GatewayError(.invalidConfiguration, "model_routing.classifier must be 'rules' or 'logistic' (got '\(section.classifier ?? "")')")
        }
        return (ModelRoutingConfiguration(modelName: virtual, router: router), classifier)
    }
}

extension GatewayServerConfiguration {
    /// `path` as written, or beside the configuration file when relative and the file's directory is known.
    func resolvePath(_ path: String) -> String {
        guard !path.hasPrefix("/"), let sourceDirectory else { return path }
        return sourceDirectory + "/" + path
    }

    /// The server's TLS configuration from `server.tls` (nil without it).
    /// - Throws: ``GatewayError`` naming the file that cannot be read or is not PEM.
    func tlsConfiguration() throws -> TLSConfiguration? {
        guard let tls = server.tls else { return nil }
        let certPath = resolvePath(tls.certFile), keyPath = resolvePath(tls.keyFile)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certPath)
        } catch {
            throw GatewayError(.invalidConfiguration, "server.tls.cert_file '\(certPath)' cannot be read as PEM certificates: check the path and the file")
        }
        guard !chain.isEmpty else {
            throw GatewayError(.invalidConfiguration, "server.tls.cert_file '\(certPath)' holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw GatewayError(.invalidConfiguration, "server.tls.key_file '\(keyPath)' cannot be read as a PEM private key: check the path and the file")
        }
        let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // Build a context now, so a key that does not belong to the certificate is a configuration
        // error (also for `--check`) rather than a failure to start the listener.
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw GatewayError(
                .invalidConfiguration,
                "server.tls: the private key in '\(keyPath)' does not match the certificate in '\(certPath)', or the pair is unusable (\(error))")
        }
        return configuration
    }
}

extension GatewayServerConfiguration {
    /// Environment variable names the file reads secrets from (upstream and API keys).
    public var secretEnvironmentNames: [String] {
        (upstreams.compactMap(\.apiKeyEnv) + (apiKeys ?? []).compactMap(\.keyEnv)).sorted()
    }

    /// Resolves the file for offline use (checking it, evaluating its model routing) where the
    /// secrets may be absent: every secret variable missing from `environment` gets a distinct
    /// placeholder. Never use the result to serve or to call upstreams.
    public func resolveOffline(environment: [String: String]) throws -> Resolved {
        var filled = environment
        for name in secretEnvironmentNames where (filled[name] ?? "").isEmpty {
            filled[name] = "offline-placeholder-" + name
        }
        return try resolve(environment: filled)
    }
}

// MARK: Loading and resolving

extension GatewayServerConfiguration {
    /// Parses YAML (a superset of JSON, so JSON files parse too).
    /// - Throws: ``GatewayError`` `.invalidConfiguration` naming the key path at fault.
    public static func parse(_ text: String) throws -> GatewayServerConfiguration {
        do {
            return try YAMLDecoder().decode(GatewayServerConfiguration.self, from: text)
        } catch let error as GatewayError {
            throw error
        } catch let error as DecodingError {
            // Yams wraps errors thrown while decoding (ours included) as "not valid YAML".
            if case .dataCorrupted(let context) = error, let underlying = context.underlyingError {
                if let gateway = underlying as? GatewayError { throw gateway }
                if let decoding = underlying as? DecodingError { throw GatewayError(.invalidConfiguration, describe(decoding)) }
                throw GatewayError(.invalidConfiguration, "the configuration is not valid YAML or JSON: \(underlying)")
            }
            throw GatewayError(.invalidConfiguration, describe(error))
        } catch {
            throw GatewayError(.invalidConfiguration, "the configuration is not valid YAML or JSON: \(error)")
        }
    }

    /// Reads and parses a YAML or JSON file.
    public static func load(path: String) throws -> GatewayServerConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw GatewayError(.invalidConfiguration, "cannot read the configuration file '\(path)': check the path and permissions")
        }
        var configuration = try parse(text)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        configuration.sourceDirectory = directory.isEmpty ? "." : directory
        return configuration
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the top level" : String(text.drop(while: { $0 == "." }))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context.codingPath)
            return "missing required key '\(key.stringValue)' in \(at)"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) should be of type \(type)"
        case .dataCorrupted(let context):
            return "invalid value at \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// What the server needs to run: the Routing library's configuration and an endpoint per upstream id.
    public struct Resolved: Sendable {
        public var routing: GatewayConfiguration
        /// Endpoints by upstream id.
        public var upstreams: [String: ResolvedUpstream]
        /// The upstream id of every backend id.
        public var backendUpstreams: [String: String]
        public var server: ServerSection
        /// The classifier of `model_routing` (nil without it).
        public var classifier: (any QueryClassifier)?
    }

    /// One upstream with its key read from the environment.
    public struct ResolvedUpstream: Sendable {
        public var id: String
        public var endpoint: HTTPUpstreamEndpoint
        public var apiKey: String?
        public var timeout: Duration
        public var headers: [(String, String)]
    }

    /// Validates references and ranges, reads secrets from `environment`, and builds the Routing
    /// configuration. Error messages name keys and environment variables, never secret values.
    public func resolve(environment: [String: String]) throws -> Resolved {
        let s = server
        guard !s.host.isEmpty else { throw GatewayError(.invalidConfiguration, "server.host must not be empty") }
        guard (0...65535).contains(s.port) else {
            throw GatewayError(.invalidConfiguration, "server.port must be in 0…65535 (got \(s.port))")
        }
        guard s.maxBodyBytes >= 1024, s.maxBodyBytes <= 1 << 30 else {
            throw GatewayError(.invalidConfiguration, "server.max_body_bytes must be in 1 KiB…1 GiB (got \(s.maxBodyBytes))")
        }
        _ = try seconds(s.shutdownGraceSeconds, "server.shutdown_grace_seconds", allowZero: true)
        _ = try seconds(s.connectTimeoutSeconds, "server.connect_timeout_seconds")
        _ = try seconds(s.readIdleTimeoutSeconds, "server.read_idle_timeout_seconds")
        _ = try seconds(s.clientIdleTimeoutSeconds, "server.client_idle_timeout_seconds", allowZero: true)
        guard (1...100_000).contains(s.maxConnectionsPerUpstream) else {
            throw GatewayError(.invalidConfiguration, "server.max_connections_per_upstream must be in 1…100,000")
        }

        func secret(env: String?, literal: String?, what: String) throws -> String? {
            if let env {
                guard let value = environment[env], !value.isEmpty else {
                    throw GatewayError(.invalidConfiguration, "\(what): environment variable \(env) is not set or empty")
                }
                return value
            }
            return literal
        }

        var upstreams: [String: ResolvedUpstream] = [:]
        for u in self.upstreams {
            guard !u.id.isEmpty else { throw GatewayError(.invalidConfiguration, "upstreams[].id must not be empty") }
            guard upstreams[u.id] == nil else {
                throw GatewayError(.invalidConfiguration, "upstream id '\(u.id)' is defined twice")
            }
            let endpoint: HTTPUpstreamEndpoint
            switch u.type.lowercased() {
            case "openai", "openai_compatible", "vllm", "llamacpp", "ollama":
                guard let base = u.baseURL, base.hasPrefix("http://") || base.hasPrefix("https://") else {
                    throw GatewayError(.invalidConfiguration, "upstream '\(u.id)': base_url must be an http(s) URL such as http://10.0.0.5:8000/v1")
                }
                endpoint = .openAICompatible(baseURL: base)
            case "azure", "azure_openai":
                guard let e = u.endpoint, e.hasPrefix("http://") || e.hasPrefix("https://") else {
                    throw GatewayError(.invalidConfiguration, "upstream '\(u.id)': endpoint must be an http(s) URL such as https://NAME.openai.azure.com")
                }
                guard let d = u.deployment, !d.isEmpty else {
                    throw GatewayError(.invalidConfiguration, "upstream '\(u.id)': an Azure upstream needs 'deployment'")
                }
                endpoint = .azureOpenAI(endpoint: e, deployment: d, apiVersion: u.apiVersion ?? "2024-10-21")
            default:
                throw GatewayError(.invalidConfiguration, "upstream '\(u.id)': type must be 'openai' or 'azure' (got '\(u.type)')")
            }
            let key = try secret(env: u.apiKeyEnv, literal: u.apiKey, what: "upstream '\(u.id)' api key")
            let timeout = try seconds(u.timeoutSeconds ?? 600, "upstream '\(u.id)'.timeout_seconds")
            upstreams[u.id] = ResolvedUpstream(
                id: u.id, endpoint: endpoint, apiKey: key, timeout: timeout,
                headers: (u.headers ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            )
        }

        guard !models.isEmpty else { throw GatewayError(.invalidConfiguration, "configure at least one entry under 'models'") }
        var routes: [ModelRoute] = []
        var names = Set<String>()
        var backendUpstreams: [String: String] = [:]
        for m in models {
            guard !m.name.isEmpty, names.insert(m.name).inserted else {
                throw GatewayError(.invalidConfiguration, "model names must be non-empty and unique ('\(m.name)')")
            }
            guard !m.backends.isEmpty else {
                throw GatewayError(.invalidConfiguration, "model '\(m.name)' needs at least one backend")
            }
            var backends: [Backend] = []
            for b in m.backends {
                guard upstreams[b.upstream] != nil else {
                    throw GatewayError(.invalidConfiguration, "model '\(m.name)': backend upstream '\(b.upstream)' is not defined under 'upstreams'")
                }
                let id = b.id ?? b.upstream
                guard !id.isEmpty, backendUpstreams[id] == nil else {
                    throw GatewayError(
                        .invalidConfiguration,
                        "model '\(m.name)': backend id '\(id)' is used twice; backend ids are unique across models, so give one of them an explicit 'id'"
                    )
                }
                backendUpstreams[id] = b.upstream
                let upstreamTimeout = self.upstreams.first { $0.id == b.upstream }?.timeoutSeconds
                let attemptTimeout = try (b.timeoutSeconds ?? upstreamTimeout).map {
                    try seconds($0, "model '\(m.name)' backend '\(id)' timeout_seconds")
                }
                backends.append(Backend(
                    id: id, upstreamModel: b.model, priority: b.priority ?? 0, weight: b.weight ?? 1,
                    maxConcurrentRequests: b.maxConcurrentRequests, pricing: b.pricing?.value, region: b.region,
                    attemptTimeout: attemptTimeout
                ))
            }
            let strategy: BalancingStrategy
            switch (m.strategy ?? "round_robin").lowercased() {
            case "round_robin", "roundrobin": strategy = .roundRobin
            case "weighted": strategy = .weighted
            case "least_outstanding", "least_requests": strategy = .leastOutstanding
            case "latency_aware", "latency": strategy = .latencyAware(alpha: m.latencyAlpha ?? 0.3)
            case "cost_aware", "cost": strategy = .costAware
            default:
                throw GatewayError(
                    .invalidConfiguration,
                    "model '\(m.name)': strategy must be round_robin, weighted, least_outstanding, latency_aware or cost_aware (got '\(m.strategy ?? "")')"
                )
            }
            routes.append(ModelRoute(
                name: m.name, backends: backends, strategy: strategy, contextWindow: m.contextWindow,
                fallbacks: m.fallbacks ?? [], pricing: m.pricing?.value
            ))
        }
        for m in models {
            for f in m.fallbacks ?? [] where !names.contains(f) {
                throw GatewayError(.invalidConfiguration, "model '\(m.name)': fallback '\(f)' is not a configured model")
            }
        }

        var keys: [APIKey]?
        if let apiKeys {
            var ids = Set<String>()
            var secrets = Set<String>()
            keys = try apiKeys.map { k in
                guard !k.id.isEmpty, ids.insert(k.id).inserted else {
                    throw GatewayError(.invalidConfiguration, "api key ids must be non-empty and unique ('\(k.id)')")
                }
                guard let value = try secret(env: k.keyEnv, literal: k.key, what: "api key '\(k.id)'"), value.utf8.count >= 8 else {
                    throw GatewayError(.invalidConfiguration, "api key '\(k.id)': set key_env (or key) to a secret of at least 8 characters")
                }
                guard secrets.insert(value).inserted else {
                    throw GatewayError(.invalidConfiguration, "api key '\(k.id)' has the same secret as another key")
                }
                let virtualModel = modelRouting.map { $0.model ?? "auto" }
                for model in k.models ?? [] where !names.contains(model) && model != virtualModel {
                    throw GatewayError(.invalidConfiguration, "api key '\(k.id)': model '\(model)' is not configured")
                }
                return APIKey(id: k.id, secret: value, allowedModels: k.models.map(Set.init), limit: try k.limits?.value())
            }
        }
        var modelLimits: [String: RateLimit] = [:]
        for (name, limit) in self.modelLimits {
            guard names.contains(name) else {
                throw GatewayError(.invalidConfiguration, "model_limits: '\(name)' is not a configured model")
            }
            modelLimits[name] = try limit.value()
        }
        let admission: TokenAdmission
        switch (tokenAdmission ?? "optimistic").lowercased() {
        case "optimistic": admission = .optimistic
        case "strict": admission = .strict
        default: throw GatewayError(.invalidConfiguration, "token_admission must be 'optimistic' or 'strict'")
        }
        let routed = try modelRouting.map { try resolveModelRouting($0, routes: routes) }
        let routing = GatewayConfiguration(
            models: routes, apiKeys: keys, defaultKeyLimit: try defaultKeyLimits?.value(), modelLimits: modelLimits,
            tokenAdmission: admission, retry: try retry?.value() ?? RetryPolicy(),
            breaker: try circuitBreaker?.value() ?? CircuitBreakerConfiguration(),
            responseCache: try responseCache?.value(), semanticCache: try semanticCache?.value(),
            modelRouting: routed?.0, logPrompts: logPrompts
        )
        return Resolved(routing: routing, upstreams: upstreams, backendUpstreams: backendUpstreams, server: s, classifier: routed?.1)
    }
}

/// Seconds from a configuration value, checked finite, non-negative and at most 30 days.
func seconds(_ value: Double, _ key: String, allowZero: Bool = false) throws -> Duration {
    guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= 30 * 86_400 else {
        throw GatewayError(.invalidConfiguration, "\(key) must be \(allowZero ? "≥ 0" : "> 0") and at most 30 days of seconds (got \(value))")
    }
    return .seconds(double: value)
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// Throws when the object being decoded has keys outside `Keys`.
private func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _: Keys.Type, section: String) throws {
    guard let container = try? decoder.container(keyedBy: AnyKey.self) else { return }
    let known = Set(Keys.allCases.map(\.stringValue))
    if let unknown = container.allKeys.first(where: { !known.contains($0.stringValue) }) {
        throw GatewayError(
            .invalidConfiguration,
            "unknown key '\(unknown.stringValue)' in \(section); known keys: \(known.sorted().joined(separator: ", "))"
        )
    }
}
