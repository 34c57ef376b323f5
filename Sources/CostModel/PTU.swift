import Foundation

/// Traffic to an Azure OpenAI deployment, for the PTU vs pay-as-you-go decision.
public struct PTUWorkload: Sendable, Hashable, Codable {
    /// Requests per minute at the busiest time; PTUs must be sized for it.
    public var peakRequestsPerMinute: Double
    /// Average requests per minute over the month; PAYG bills this.
    public var averageRequestsPerMinute: Double
    public var inputTokensPerRequest: Double
    public var outputTokensPerRequest: Double
    /// Fraction of input tokens billed at the cached-input price (prompt caching).
    public var cachedInputFraction: Double
    /// Hours in a billing month (Azure uses 730).
    public var hoursPerMonth: Double

    public init(peakRequestsPerMinute: Double, averageRequestsPerMinute: Double, inputTokensPerRequest: Double,
                outputTokensPerRequest: Double, cachedInputFraction: Double = 0, hoursPerMonth: Double = 730) {
        self.peakRequestsPerMinute = peakRequestsPerMinute
        self.averageRequestsPerMinute = averageRequestsPerMinute
        self.inputTokensPerRequest = inputTokensPerRequest
        self.outputTokensPerRequest = outputTokensPerRequest
        self.cachedInputFraction = cachedInputFraction
        self.hoursPerMonth = hoursPerMonth
    }

    func validate() throws(CostModelError) {
        try Check.positive(peakRequestsPerMinute, "Peak requests per minute", max: 1e8)
        try Check.positive(averageRequestsPerMinute, "Average requests per minute", max: 1e8)
        guard averageRequestsPerMinute <= peakRequestsPerMinute else {
            throw .invalid("Average requests per minute", "\(averageRequestsPerMinute)", expected: "at most the peak (\(peakRequestsPerMinute))")
        }
        try Check.positive(inputTokensPerRequest, "Input tokens per request", max: 1e7)
        try Check.nonNegative(outputTokensPerRequest, "Output tokens per request", max: 1e7)
        try Check.fraction(cachedInputFraction, "Cached input fraction")
        try Check.positive(hoursPerMonth, "Hours per month", max: 744)
    }
}

/// One way of paying for provisioned throughput.
public enum PTUBilling: String, Sendable, Hashable, Codable, CaseIterable {
    case hourly, monthlyReservation, yearlyReservation

    public var label: String {
        switch self {
        case .hourly: "PTU hourly"
        case .monthlyReservation: "PTU monthly reservation"
        case .yearlyReservation: "PTU yearly reservation"
        }
    }
}

/// The cost of one PTU billing option and the utilisation at which it breaks even with PAYG.
public struct PTUOption: Sendable, Hashable, Codable {
    public var billing: PTUBilling
    public var monthlyCost: Double
    /// Average utilisation of the provisioned capacity at which PAYG would cost the same.
    /// Above 1 means PTU never beats PAYG at this size.
    public var breakEvenUtilisation: Double
}

/// What the calculator recommends.
public enum PTURecommendation: String, Sendable, Hashable, Codable {
    case payAsYouGo, provisioned
}

/// The result of ``PTUCalculator/analyse(_:profile:price:)``.
public struct PTUAnalysis: Sendable, Hashable, Codable {
    public var profile: PTUProfile
    public var price: APIPrice
    public var workload: PTUWorkload
    /// Input tokens + output tokens × the output weight.
    public var weightedTokensPerRequest: Double
    /// PTUs before the minimum and the increment were applied.
    public var rawPTUs: Double
    public var ptus: Int
    public var capacityRequestsPerMinute: Double
    /// Average load / capacity.
    public var utilisation: Double
    public var paygCostPerRequest: Double
    public var paygMonthly: Double
    public var options: [PTUOption]
    public var recommendation: PTURecommendation
    /// The cheapest option's label ("PAYG" or a PTU billing).
    public var cheapest: String
    public var reasons: [String]
}

/// PTU sizing and the PTU-vs-PAYG break-even (reference section 9.10).
///
/// PTUs = ⌈peak RPM × (input + w × output) / TPM-per-PTU⌉, raised to the
/// minimum and rounded up to the increment. PAYG monthly = average RPM × 60 ×
/// hours × per-request price. A PTU option's break-even utilisation is its
/// monthly cost divided by what PAYG would charge for the provisioned capacity
/// used 100% of the month.
public enum PTUCalculator {
    public static func analyse(_ workload: PTUWorkload, profile: PTUProfile, price: APIPrice) throws(CostModelError) -> PTUAnalysis {
        try workload.validate()
        // Profiles and prices built in code skip the catalog parser's checks: check what is divided by or counted.
        try Check.positive(profile.tokensPerMinutePerPTU, "PTU profile '\(profile.name)' tokens per minute per PTU", max: 1e9)
        try Check.positive(profile.outputTokenWeight, "PTU profile '\(profile.name)' output token weight", max: 100)
        try Check.positive(profile.pricePerPTUHour, "PTU profile '\(profile.name)' price per PTU-hour", max: 1e4)
        try Check.positive(profile.minimumPTUs, "PTU profile '\(profile.name)' minimum PTUs", max: 100_000)
        try Check.positive(profile.increment, "PTU profile '\(profile.name)' PTU increment", max: 100_000)
        for (value, what) in [(profile.monthlyReservationPerPTU, "monthly reservation"), (profile.yearlyReservationPerPTUMonth, "yearly reservation")] {
            if let value { try Check.positive(value, "PTU profile '\(profile.name)' \(what) per PTU", max: 1e6) }
        }
        try Check.positive(price.inputPer1M, "API price '\(price.model)' input per 1M", max: 1e4)
        try Check.nonNegative(price.outputPer1M, "API price '\(price.model)' output per 1M", max: 1e4)
        if let cached = price.cachedInputPer1M { try Check.nonNegative(cached, "API price '\(price.model)' cached input per 1M", max: 1e4) }
        let weighted = workload.inputTokensPerRequest + profile.outputTokenWeight * workload.outputTokensPerRequest
        let raw = workload.peakRequestsPerMinute * weighted / profile.tokensPerMinutePerPTU
        guard raw.isFinite, raw <= 1e9 else {
            throw CostModelError(.invalidInput, "Peak \(fmt(workload.peakRequestsPerMinute)) RPM × \(fmt(weighted)) weighted tokens would need \(fmt(raw, 0)) PTUs (more than 10⁹); check the request rate and token counts.")
        }
        var ptus = max(profile.minimumPTUs, Int(raw.rounded(.up)))
        let step = max(1, profile.increment)
        ptus = (ptus + step - 1) / step * step
        let capacityRPM = Double(ptus) * profile.tokensPerMinutePerPTU / weighted
        let utilisation = workload.averageRequestsPerMinute / capacityRPM
        let cachedPrice = price.cachedInputPer1M ?? price.inputPer1M
        let perRequest = (workload.inputTokensPerRequest * (1 - workload.cachedInputFraction) * price.inputPer1M
            + workload.inputTokensPerRequest * workload.cachedInputFraction * cachedPrice
            + workload.outputTokensPerRequest * price.outputPer1M) / 1e6
        let minutes = 60 * workload.hoursPerMonth
        let payg = workload.averageRequestsPerMinute * minutes * perRequest
        let paygAtFullCapacity = capacityRPM * minutes * perRequest

        var options = [PTUOption(billing: .hourly, monthlyCost: Double(ptus) * profile.pricePerPTUHour * workload.hoursPerMonth,
                                 breakEvenUtilisation: 0)]
        if let monthly = profile.monthlyReservationPerPTU {
            options.append(PTUOption(billing: .monthlyReservation, monthlyCost: Double(ptus) * monthly, breakEvenUtilisation: 0))
        }
        if let yearly = profile.yearlyReservationPerPTUMonth {
            options.append(PTUOption(billing: .yearlyReservation, monthlyCost: Double(ptus) * yearly, breakEvenUtilisation: 0))
        }
        for i in options.indices { options[i].breakEvenUtilisation = options[i].monthlyCost / paygAtFullCapacity }

        let bestPTU = options.min { $0.monthlyCost < $1.monthlyCost }!  // options is never empty (hourly is always present)
        var reasons: [String] = []
        let recommendation: PTURecommendation
        reasons.append("Peak \(fmt(workload.peakRequestsPerMinute)) RPM × \(fmt(weighted)) weighted tokens needs \(fmt(raw, 2)) PTUs; provisioned \(ptus) (minimum \(profile.minimumPTUs), increments of \(profile.increment)).")
        reasons.append("Average load uses \(pct(utilisation)) of that capacity; PAYG for it costs $\(fmt(payg, 0))/month.")
        if bestPTU.monthlyCost < payg {
            recommendation = .provisioned
            reasons.append("\(bestPTU.billing.label) costs $\(fmt(bestPTU.monthlyCost, 0))/month, below PAYG: utilisation \(pct(utilisation)) is above its break-even \(pct(bestPTU.breakEvenUtilisation)).")
            reasons.append("PTU also guarantees capacity (no 429 throttling); keep PAYG in a second region for overflow and outages.")
            if utilisation < 0.6 {
                reasons.append("Utilisation is under 60%: the saving is sensitive to traffic forecasts — the reference advises 2–4 weeks of PAYG data before committing.")
            }
        } else {
            recommendation = .payAsYouGo
            if bestPTU.breakEvenUtilisation > 1 {
                reasons.append("Even fully used, \(ptus) PTUs (\(bestPTU.billing.label), $\(fmt(bestPTU.monthlyCost, 0))/month) cost more than PAYG would for the same tokens ($\(fmt(paygAtFullCapacity, 0))): at these prices PTU only buys guaranteed capacity.")
            } else {
                reasons.append("PAYG is cheaper: utilisation \(pct(utilisation)) is below the \(pct(bestPTU.breakEvenUtilisation)) break-even of the cheapest PTU option (\(bestPTU.billing.label), $\(fmt(bestPTU.monthlyCost, 0))/month).")
            }
            if workload.peakRequestsPerMinute > 2 * workload.averageRequestsPerMinute {
                reasons.append("Traffic is spiky (peak \(fmt(workload.peakRequestsPerMinute / workload.averageRequestsPerMinute, 1))× average): PTUs sized for the peak sit idle most of the month.")
            }
            reasons.append("Choose PTU anyway only if 429 throttling at peak is unacceptable; consider PTU for the baseline with PAYG overflow.")
        }
        let cheapest = bestPTU.monthlyCost < payg ? bestPTU.billing.label : "PAYG"
        return PTUAnalysis(profile: profile, price: price, workload: workload, weightedTokensPerRequest: weighted, rawPTUs: raw,
                           ptus: ptus, capacityRequestsPerMinute: capacityRPM, utilisation: utilisation,
                           paygCostPerRequest: perRequest, paygMonthly: payg, options: options,
                           recommendation: recommendation, cheapest: cheapest, reasons: reasons)
    }
}

// MARK: - Formatting helpers shared by the module's human-readable text

func fmt(_ value: Double, _ decimals: Int = 1) -> String {
    guard value.isFinite else { return "∞" }
    // Beyond 10¹⁵ digit grouping is unreadable (and Int64 overflows past 9.2 × 10¹⁸): scientific notation.
    guard abs(value) < 1e15 else { return String(format: "%.3g", value) }
    let rounded = (value * pow10(decimals)).rounded() / pow10(decimals)
    var text = decimals == 0 ? String(Int64(rounded)) : String(format: "%.\(decimals)f", rounded)
    // Thousands separators for the integer part.
    let negative = text.hasPrefix("-")
    if negative { text.removeFirst() }
    let parts = text.split(separator: ".", maxSplits: 1)
    var integer = String(parts[0])
    var grouped = ""
    while integer.count > 3 {
        grouped = "," + integer.suffix(3) + grouped
        integer = String(integer.dropLast(3))
    }
    grouped = integer + grouped
    if parts.count > 1 { grouped += "." + parts[1] }
    return (negative ? "-" : "") + grouped
}

func pct(_ fraction: Double) -> String { fmt(fraction * 100, 0) + "%" }

private func pow10(_ n: Int) -> Double {
    var v = 1.0
    for _ in 0..<max(0, n) { v *= 10 }
    return v
}
