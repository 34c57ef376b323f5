/// A model the router may pick, with its capability tier and price.
public struct ModelTier: Sendable, Hashable {
    /// Public model name (a configured model route).
    public var model: String
    /// Capability: higher tiers can do everything lower tiers can.
    public var tier: Int
    public var pricing: TokenPricing
    public init(model: String, tier: Int, pricing: TokenPricing) {
        self.model = model
        self.tier = tier
        self.pricing = pricing
    }
}

/// Maps query classes to the cheapest model whose tier is high enough.
public struct ModelTierRouter: Sendable, Hashable {
    public let models: [ModelTier]
    /// The tier each class needs; classes not listed need `defaultTier`.
    public let requiredTier: [QueryClass: Int]
    public let defaultTier: Int

    /// - Throws: `invalidConfiguration` when there are no models or a class needs a tier no model has.
    public init(models: [ModelTier], requiredTier: [QueryClass: Int], defaultTier: Int) throws(RoutingError) {
        guard !models.isEmpty else { throw RoutingError(.invalidConfiguration, "model routing needs at least one model tier") }
        let top = models.map(\.tier).max() ?? 0
        for (label, tier) in requiredTier where tier > top {
            throw RoutingError(.invalidConfiguration, "class '\(label)' needs tier \(tier) but the best model has tier \(top)")
        }
        guard defaultTier <= top else {
            throw RoutingError(.invalidConfiguration, "default tier \(defaultTier) is above the best model's tier \(top)")
        }
        self.models = models
        self.requiredTier = requiredTier
        self.defaultTier = defaultTier
    }

    public func tier(for label: QueryClass) -> Int { requiredTier[label] ?? defaultTier }

    /// The cheapest capable model (ties: the lower tier, then the name).
    public func model(for label: QueryClass) -> ModelTier {
        let needed = tier(for: label)
        let capable = models.filter { $0.tier >= needed }
        return capable.min { a, b in
            if a.pricing.blended != b.pricing.blended { return a.pricing.blended < b.pricing.blended }
            if a.tier != b.tier { return a.tier < b.tier }
            return a.model < b.model
        } ?? mostCapable
    }

    /// The most capable model (the baseline an evaluation compares against).
    public var mostCapable: ModelTier {
        // `models` is non-empty (checked in init).
        models.max { a, b in a.tier != b.tier ? a.tier < b.tier : a.pricing.blended > b.pricing.blended } ?? models[0]
    }
}

/// What routing by class would have saved, and what it would have risked, on a labelled set.
public struct RoutingEvaluation: Sendable, Hashable, CustomStringConvertible {
    public var count: Int
    /// Fraction of queries whose predicted class equals the label.
    public var accuracy: Double
    /// Cost of sending everything to the most capable model.
    public var baselineCost: Double
    /// Cost with routing by predicted class.
    public var routedCost: Double
    /// The quality proxy: fraction of queries sent to a model at least as capable as the label needs.
    public var capableFraction: Double
    /// Queries sent to a model below the needed tier (the quality risk).
    public var underRouted: Int
    /// Queries sent to a model above the needed tier (money left on the table).
    public var overRouted: Int
    /// `confusion[label][predicted]` counts.
    public var confusion: [QueryClass: [QueryClass: Int]]

    /// `1 - routedCost / baselineCost`.
    public var savedFraction: Double { baselineCost > 0 ? 1 - routedCost / baselineCost : 0 }

    public var description: String {
        let pct = { (x: Double) in String(Int((x * 1000).rounded())) .leftPaddedTenths }
        return "\(count) queries: accuracy \(pct(accuracy)) %, cost saved \(pct(savedFraction)) %, "
            + "capable \(pct(capableFraction)) % (under-routed \(underRouted), over-routed \(overRouted))"
    }
}

extension String {
    /// "1234" (tenths of a percent) → "123.4".
    fileprivate var leftPaddedTenths: String {
        let negative = hasPrefix("-")
        var digits = negative ? String(dropFirst()) : self
        while digits.count < 2 { digits = "0" + digits }
        return (negative ? "-" : "") + digits.dropLast() + "." + digits.suffix(1)
    }
}

/// Evaluates a classifier plus tier router offline on labelled queries.
public struct RoutingEvaluator: Sendable {
    public var router: ModelTierRouter
    public var estimator: TokenEstimator
    /// Completion tokens assumed per class (classes not listed: `defaultCompletionTokens`).
    public var completionTokens: [QueryClass: Int]
    public var defaultCompletionTokens: Int

    public init(router: ModelTierRouter, estimator: TokenEstimator = .init(),
                completionTokens: [QueryClass: Int] = [.simple: 60, .standard: 300, .complex: 800, .code: 600],
                defaultCompletionTokens: Int = 300) {
        self.router = router
        self.estimator = estimator
        self.completionTokens = completionTokens
        self.defaultCompletionTokens = defaultCompletionTokens
    }

    public func evaluate(_ examples: [LabelledQuery], classifier: some QueryClassifier) -> RoutingEvaluation {
        var result = RoutingEvaluation(count: examples.count, accuracy: 0, baselineCost: 0, routedCost: 0,
                                       capableFraction: 0, underRouted: 0, overRouted: 0, confusion: [:])
        guard !examples.isEmpty else { return result }
        let baseline = router.mostCapable
        var correct = 0, capable = 0
        for example in examples {
            let request = ChatCompletionRequest(model: "auto", messages: [.user(example.text)])
            let predicted = classifier.classify(request).label
            let chosen = router.model(for: predicted)
            let prompt = estimator.promptTokens(of: request)
            let completion = completionTokens[example.label] ?? defaultCompletionTokens
            result.baselineCost += baseline.pricing.cost(promptTokens: prompt, completionTokens: completion)
            result.routedCost += chosen.pricing.cost(promptTokens: prompt, completionTokens: completion)
            let needed = router.tier(for: example.label)
            if chosen.tier >= needed { capable += 1 } else { result.underRouted += 1 }
            if chosen.tier > needed, router.model(for: example.label).tier < chosen.tier { result.overRouted += 1 }
            if predicted == example.label { correct += 1 }
            result.confusion[example.label, default: [:]][predicted, default: 0] += 1
        }
        result.accuracy = Double(correct) / Double(examples.count)
        result.capableFraction = Double(capable) / Double(examples.count)
        return result
    }
}
