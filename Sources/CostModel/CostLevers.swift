/// A monthly AI bill split into the parts cost levers act on.
public struct MonthlyBill: Sendable, Hashable, Codable {
    /// Hosted-model token spend (Azure OpenAI, serverless APIs), USD/month.
    public var apiMonthly: Double
    /// Self-hosted GPU spend (VMs, AKS GPU node pools), USD/month.
    public var gpuMonthly: Double
    /// Fraction of the API spend paid for input tokens (the rest is output).
    public var inputShareOfAPI: Double

    public init(apiMonthly: Double, gpuMonthly: Double = 0, inputShareOfAPI: Double = 0.5) {
        self.apiMonthly = apiMonthly
        self.gpuMonthly = gpuMonthly
        self.inputShareOfAPI = inputShareOfAPI
    }

    public var total: Double { apiMonthly + gpuMonthly }

    func validate() throws(CostModelError) {
        try Check.nonNegative(apiMonthly, "API spend per month", max: 1e10)
        try Check.nonNegative(gpuMonthly, "GPU spend per month", max: 1e10)
        guard apiMonthly + gpuMonthly > 0 else {
            throw CostModelError(.invalidInput, "The baseline bill is zero; give the monthly API spend and/or GPU spend in USD.")
        }
        try Check.fraction(inputShareOfAPI, "Input share of the API bill")
    }
}

/// How far each lever is pushed. Every share is a fraction of the traffic or spend it names.
public struct LeverSettings: Sendable, Hashable, Codable {
    /// Share of API traffic a router sends to the cheap model.
    public var routedShare: Double
    public var premiumModel: String
    public var cheapModel: String
    /// Share of queries that repeat closely enough for a semantic cache to answer.
    public var repeatedQueryShare: Double
    /// Share of API traffic that can wait for the 24-hour Batch API.
    public var batchEligibleShare: Double
    /// Share of GPU spend that can run on evictable spot VMs.
    public var spotEligibleShare: Double
    /// Share of GPU spend steady enough to reserve for 1–3 years.
    public var reservedShare: Double

    public init(routedShare: Double = 0.5, premiumModel: String = "gpt-4o", cheapModel: String = "gpt-4o-mini",
                repeatedQueryShare: Double = 0.3, batchEligibleShare: Double = 0.2, spotEligibleShare: Double = 0.3,
                reservedShare: Double = 0.7) {
        self.routedShare = routedShare
        self.premiumModel = premiumModel
        self.cheapModel = cheapModel
        self.repeatedQueryShare = repeatedQueryShare
        self.batchEligibleShare = batchEligibleShare
        self.spotEligibleShare = spotEligibleShare
        self.reservedShare = reservedShare
    }

    func validate() throws(CostModelError) {
        try Check.fraction(routedShare, "Routed share")
        try Check.fraction(repeatedQueryShare, "Repeated-query share")
        try Check.fraction(batchEligibleShare, "Batch-eligible share")
        try Check.fraction(spotEligibleShare, "Spot-eligible share")
        try Check.fraction(reservedShare, "Reserved share")
    }
}

/// One lever applied alone to the baseline bill.
public struct LeverProjection: Sendable, Hashable, Codable {
    public var lever: CostLeverSpec
    /// The part of the bill the lever acts on, USD/month.
    public var addressable: Double
    public var savingsLow: Double
    public var savingsHigh: Double
    /// Bill after the lever at its low and high savings.
    public var projectedHigh: Double
    public var projectedLow: Double
    /// How the addressable part was derived.
    public var basis: String
}

/// Every lever, alone and combined.
public struct LeverAnalysis: Sendable, Hashable, Codable {
    public var baseline: MonthlyBill
    public var settings: LeverSettings
    public var projections: [LeverProjection]
    /// All levers together, assuming each acts on what the previous left (savings compound, never add past 100%).
    public var combinedLow: Double
    public var combinedHigh: Double
}

/// Applies the reference's cost levers (section 9.10) to a baseline bill.
///
/// Each lever's range from the catalog is applied to the part of the bill it
/// can reach: model routing to the routed share of API spend (upper end capped
/// by the catalog price gap between the premium and the cheap model), semantic
/// caching to the repeated-query share, prompt compression to input spend,
/// output limits to output spend, the Batch API to the batch-eligible share,
/// quantization to GPU spend, spot to the spot-eligible share and reservations
/// to the reserved share.
public enum CostLeverCalculator {
    public static func analyse(_ bill: MonthlyBill, settings: LeverSettings = .init(), catalog: Catalog) throws(CostModelError) -> LeverAnalysis {
        try bill.validate()
        try settings.validate()
        let premium = try catalog.apiPrice(model: settings.premiumModel)
        let cheap = try catalog.apiPrice(model: settings.cheapModel)
        // Blended price ratio with the bill's input/output split.
        let blend = { (p: APIPrice) in bill.inputShareOfAPI * p.inputPer1M / premium.inputPer1M
            + (1 - bill.inputShareOfAPI) * p.outputPer1M / premium.outputPer1M }
        let priceGap = max(0, 1 - blend(cheap) / blend(premium))

        var projections: [LeverProjection] = []
        for lever in catalog.levers {
            let base = lever.appliesTo == .api ? bill.apiMonthly : bill.gpuMonthly
            var addressable = base
            var low = lever.savingsLow, high = lever.savingsHigh
            var basis: String
            switch lever.name {
            case "model-routing":
                addressable = base * settings.routedShare
                // Sending traffic to a model that is x% cheaper cannot save more than x% of it.
                high = min(high, priceGap)
                low = min(low, high)
                basis = "\(pct(settings.routedShare)) of API spend routed from \(premium.model) to \(cheap.model) (\(pct(priceGap)) cheaper per token)"
            case "semantic-cache":
                addressable = base * settings.repeatedQueryShare
                basis = "\(pct(settings.repeatedQueryShare)) of queries repeat"
            case "prompt-compression":
                addressable = base * bill.inputShareOfAPI
                basis = "input-token spend (\(pct(bill.inputShareOfAPI)) of API)"
            case "output-limits":
                addressable = base * (1 - bill.inputShareOfAPI)
                basis = "output-token spend (\(pct(1 - bill.inputShareOfAPI)) of API)"
            case "batch-api":
                addressable = base * settings.batchEligibleShare
                low = premium.batchDiscount
                high = premium.batchDiscount
                basis = "\(pct(settings.batchEligibleShare)) of API traffic can wait 24 h; Batch API discount \(pct(premium.batchDiscount))"
            case "spot":
                addressable = base * settings.spotEligibleShare
                basis = "\(pct(settings.spotEligibleShare)) of GPU spend is interruptible"
            case "reserved":
                addressable = base * settings.reservedShare
                basis = "\(pct(settings.reservedShare)) of GPU spend is steady"
            default:
                basis = lever.appliesTo == .api ? "all API spend" : "all GPU spend"
            }
            let savingsLow = addressable * low, savingsHigh = addressable * high
            projections.append(LeverProjection(lever: lever, addressable: addressable, savingsLow: savingsLow, savingsHigh: savingsHigh,
                                               projectedHigh: bill.total - savingsLow, projectedLow: bill.total - savingsHigh, basis: basis))
        }
        // Combined: each lever removes its fraction of what remains of its part of the bill.
        var apiLow = bill.apiMonthly, apiHigh = bill.apiMonthly, gpuLow = bill.gpuMonthly, gpuHigh = bill.gpuMonthly
        for p in projections {
            let base = p.lever.appliesTo == .api ? bill.apiMonthly : bill.gpuMonthly
            guard base > 0 else { continue }
            let fLow = p.savingsLow / base, fHigh = p.savingsHigh / base
            if p.lever.appliesTo == .api {
                apiHigh *= 1 - fLow
                apiLow *= 1 - fHigh
            } else {
                gpuHigh *= 1 - fLow
                gpuLow *= 1 - fHigh
            }
        }
        return LeverAnalysis(baseline: bill, settings: settings, projections: projections,
                             combinedLow: apiLow + gpuLow, combinedHigh: apiHigh + gpuHigh)
    }
}
