/// One public model name and the backends that serve it.
public struct ModelRoute: Sendable, Hashable {
    /// The name clients put in `model`.
    public var name: String
    public var backends: [Backend]
    public var strategy: BalancingStrategy
    /// Prompt + completion tokens the model accepts (nil: unknown, never skipped).
    public var contextWindow: Int?
    /// Models tried, in order, when this one cannot answer (all backends failed or unhealthy).
    /// Each must be another configured route; a fallback whose context window is too small for
    /// the request is skipped.
    public var fallbacks: [String]
    /// Price of tokens on backends that do not set their own (for cost accounting).
    public var pricing: TokenPricing?

    public init(name: String, backends: [Backend], strategy: BalancingStrategy = .roundRobin,
                contextWindow: Int? = nil, fallbacks: [String] = [], pricing: TokenPricing? = nil) {
        self.name = name
        self.backends = backends
        self.strategy = strategy
        self.contextWindow = contextWindow
        self.fallbacks = fallbacks
        self.pricing = pricing
    }
}

/// A client API key.
public struct APIKey: Sendable, Hashable {
    /// A short, stable, non-secret name (used in metrics, logs and usage reports).
    public var id: String
    /// The bearer token clients send. Never logged.
    public var secret: String
    /// Models this key may use (nil: all).
    public var allowedModels: Set<String>?
    /// This key's limits (nil: the gateway's default key limit).
    public var limit: RateLimit?

    public init(id: String, secret: String, allowedModels: Set<String>? = nil, limit: RateLimit? = nil) {
        self.id = id
        self.secret = secret
        self.allowedModels = allowedModels
        self.limit = limit
    }
}

/// Routing by query class: requests for `modelName` are classified and sent to the cheapest capable model.
public struct ModelRoutingConfiguration: Sendable, Hashable {
    /// The virtual model name that triggers classification (e.g. "auto").
    public var modelName: String
    public var router: ModelTierRouter
    public init(modelName: String = "auto", router: ModelTierRouter) {
        self.modelName = modelName
        self.router = router
    }
}

/// Everything the gateway does, as a plain value. Nothing here reads files or the network.
public struct GatewayConfiguration: Sendable {
    public var models: [ModelRoute]
    /// Known keys; nil turns authentication off (every request is "anonymous").
    public var apiKeys: [APIKey]?
    /// Limits for keys that do not set their own.
    public var defaultKeyLimit: RateLimit?
    /// Limits per public model name, shared by all keys.
    public var modelLimits: [String: RateLimit]
    public var tokenAdmission: TokenAdmission
    public var retry: RetryPolicy
    /// Retries shared across all requests (nil: each request retries up to its policy alone).
    /// With a budget, a retry the budget cannot pay for is not made: the request gets its last error.
    public var retryBudget: RetryBudgetConfiguration?
    public var breaker: CircuitBreakerConfiguration
    public var responseCache: ResponseCacheConfiguration?
    public var semanticCache: SemanticCacheConfiguration?
    public var modelRouting: ModelRoutingConfiguration?
    public var estimator: TokenEstimator
    /// Log prompt text at trace level. Off by default: prompts are user data.
    public var logPrompts: Bool
    /// Prefix of every metric name.
    public var metricsPrefix: String

    public init(
        models: [ModelRoute], apiKeys: [APIKey]? = nil, defaultKeyLimit: RateLimit? = nil,
        modelLimits: [String: RateLimit] = [:], tokenAdmission: TokenAdmission = .optimistic,
        retry: RetryPolicy = .init(), breaker: CircuitBreakerConfiguration = .init(),
        responseCache: ResponseCacheConfiguration? = nil, semanticCache: SemanticCacheConfiguration? = nil,
        modelRouting: ModelRoutingConfiguration? = nil, estimator: TokenEstimator = .init(),
        logPrompts: Bool = false, metricsPrefix: String = "inferencekit_gateway",
        retryBudget: RetryBudgetConfiguration? = nil
    ) {
        self.retryBudget = retryBudget
        self.models = models
        self.apiKeys = apiKeys
        self.defaultKeyLimit = defaultKeyLimit
        self.modelLimits = modelLimits
        self.tokenAdmission = tokenAdmission
        self.retry = retry
        self.breaker = breaker
        self.responseCache = responseCache
        self.semanticCache = semanticCache
        self.modelRouting = modelRouting
        self.estimator = estimator
        self.logPrompts = logPrompts
        self.metricsPrefix = metricsPrefix
    }
}
