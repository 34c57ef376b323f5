import Foundation

/// How requests arrive.
public enum ArrivalProcess: Sendable, Hashable, Codable {
    /// Exponential inter-arrival times with mean `1 / rate` (requests per second).
    case poisson(rate: Double)
    /// Gamma inter-arrival times with mean `1 / rate` and coefficient of variation `cv`
    /// (shape `1 / cv²`); `cv > 1` is burstier than Poisson, `cv = 1` is Poisson, `cv < 1` smoother.
    case gamma(rate: Double, cv: Double)
    /// Evenly spaced arrivals, `1 / rate` apart (handy for hand-checked scenarios).
    case uniform(rate: Double)

    /// Mean arrival rate in requests per second.
    public var rate: Double {
        switch self {
        case let .poisson(r), let .gamma(r, _), let .uniform(r): r
        }
    }

    public func validate() throws {
        switch self {
        case let .poisson(rate), let .uniform(rate):
            try requireFinite(rate, "arrival rate", positive: true)
        case let .gamma(rate, cv):
            try requireFinite(rate, "arrival rate", positive: true)
            try requireFinite(cv, "gamma coefficient of variation", positive: true)
        }
    }

    /// Draws the next inter-arrival gap in seconds.
    public func nextGap(_ rng: inout SimulationRandom) -> Double {
        switch self {
        case let .poisson(rate): rng.exponential(rate: rate)
        case let .gamma(rate, cv): rng.gamma(shape: 1 / (cv * cv), scale: cv * cv / rate)
        case let .uniform(rate): 1 / rate
        }
    }
}

/// A distribution of token counts, clamped to `[min, max]` and rounded to whole tokens.
public enum LengthDistribution: Sendable, Hashable, Codable {
    /// Always `n` tokens.
    case constant(Int)
    /// Uniform on the integers `min ... max`.
    case uniform(min: Int, max: Int)
    /// Log-normal with the given median (`e^μ`) and log-space standard deviation `sigma`,
    /// clamped to `[min, max]`. Chat traffic is well described by this: most requests short, a long tail.
    case logNormal(median: Double, sigma: Double, min: Int, max: Int)

    /// Chat-like prompts: median 200 tokens, σ = 1.0, 1 … 8,192.
    public static let chatPrompt = LengthDistribution.logNormal(median: 200, sigma: 1.0, min: 1, max: 8192)
    /// Chat-like answers: median 250 tokens, σ = 0.8, 1 … 4,096.
    public static let chatOutput = LengthDistribution.logNormal(median: 250, sigma: 0.8, min: 1, max: 4096)

    public func validate(_ what: String) throws {
        let cap = InferenceRequest.maximumTokens
        switch self {
        case let .constant(n):
            guard n >= 1, n <= cap else { throw SchedulingError(.invalidArgument, "\(what) length is \(n); use 1 … \(cap) tokens") }
        case let .uniform(lo, hi):
            guard lo >= 1, hi >= lo, hi <= cap else { throw SchedulingError(.invalidArgument, "\(what) uniform range \(lo)...\(hi) is empty or outside 1 … \(cap) tokens; use 1 <= min <= max <= \(cap)") }
        case let .logNormal(median, sigma, lo, hi):
            try requireFinite(median, "\(what) log-normal median", positive: true)
            try requireFinite(sigma, "\(what) log-normal sigma", nonNegative: true)
            guard lo >= 1, hi >= lo, hi <= cap else { throw SchedulingError(.invalidArgument, "\(what) clamp range \(lo)...\(hi) is empty or outside 1 … \(cap) tokens; use 1 <= min <= max <= \(cap)") }
        }
    }

    public func sample(_ rng: inout SimulationRandom) -> Int {
        switch self {
        case let .constant(n): return n
        case let .uniform(lo, hi): return lo + rng.index(below: hi - lo + 1)
        case let .logNormal(median, sigma, lo, hi):
            // Clamp in Float64 first: a huge median or sigma gives +inf, which `Int(_:)` would trap on.
            let x = (median * exp(sigma * rng.standardNormal())).rounded()
            guard !x.isNaN else { return lo }
            return Int(Swift.min(Double(hi), Swift.max(Double(lo), x)))
        }
    }

    /// The distribution's mean before clamping and rounding (for load estimates).
    public var approximateMean: Double {
        switch self {
        case let .constant(n): Double(n)
        case let .uniform(lo, hi): Double(lo + hi) / 2
        case let .logNormal(median, sigma, lo, hi): Swift.min(Double(hi), Swift.max(Double(lo), median * exp(sigma * sigma / 2)))
        }
    }
}

/// A synthetic workload: an arrival process and token-length distributions, reproducible under a seed.
public struct SyntheticWorkload: Sendable, Hashable, Codable {
    public var arrivals: ArrivalProcess
    public var promptLength: LengthDistribution
    public var outputLength: LengthDistribution
    /// Number of requests to generate.
    public var count: Int
    /// Fraction of requests (0 … 1) that carry a shared prefix of `sharedPrefixLength` tokens (prefix-cache workloads).
    public var sharedPrefixFraction: Double
    public var sharedPrefixLength: Int
    /// Priority classes with weights, e.g. `[(0, 1), (1, 4)]` makes one request in five urgent. Empty: all priority 0.
    public var priorityMix: [PriorityWeight]
    public var seed: UInt64

    public struct PriorityWeight: Sendable, Hashable, Codable {
        public var priority: Int
        public var weight: Double
        public init(priority: Int, weight: Double) {
            self.priority = priority
            self.weight = weight
        }
    }

    public init(
        arrivals: ArrivalProcess, promptLength: LengthDistribution = .chatPrompt, outputLength: LengthDistribution = .chatOutput,
        count: Int, sharedPrefixFraction: Double = 0, sharedPrefixLength: Int = 0,
        priorityMix: [PriorityWeight] = [], seed: UInt64 = 42
    ) {
        self.arrivals = arrivals
        self.promptLength = promptLength
        self.outputLength = outputLength
        self.count = count
        self.sharedPrefixFraction = sharedPrefixFraction
        self.sharedPrefixLength = sharedPrefixLength
        self.priorityMix = priorityMix
        self.seed = seed
    }

    public func validate() throws {
        try arrivals.validate()
        try promptLength.validate("prompt")
        try outputLength.validate("output")
        guard count >= 1, count <= 100_000_000 else {
            throw SchedulingError(.invalidArgument, "request count is \(count); use 1 … 100,000,000")
        }
        try requireFinite(sharedPrefixFraction, "shared-prefix fraction", nonNegative: true)
        guard sharedPrefixFraction <= 1 else { throw SchedulingError.invalid("shared-prefix fraction", sharedPrefixFraction, expected: "a fraction in 0 … 1") }
        guard sharedPrefixLength >= 0, sharedPrefixLength <= InferenceRequest.maximumTokens else {
            throw SchedulingError(.invalidArgument, "shared-prefix length is \(sharedPrefixLength); use 0 … \(InferenceRequest.maximumTokens) tokens")
        }
        for w in priorityMix {
            try requireFinite(w.weight, "priority \(w.priority) weight", positive: true)
            guard abs(w.priority) <= InferenceRequest.maximumPriorityMagnitude else {
                throw SchedulingError(.invalidArgument, "priority \(w.priority) is outside ±\(InferenceRequest.maximumPriorityMagnitude)")
            }
        }
        // The weights are finite each, but their sum must be too.
        try requireFinite(priorityMix.reduce(0) { $0 + $1.weight }, "sum of the priority weights", nonNegative: true)
    }

    /// Generates the requests, sorted by arrival time; the first arrives at t = 0 plus one gap.
    public func generate() throws -> [InferenceRequest] {
        try validate()
        var rng = SimulationRandom(seed: seed)
        var out: [InferenceRequest] = []
        out.reserveCapacity(count)
        let totalWeight = priorityMix.reduce(0) { $0 + $1.weight }
        var t = 0.0
        for i in 0..<count {
            t += arrivals.nextGap(&rng)
            var prompt = promptLength.sample(&rng)
            let output = outputLength.sample(&rng)
            var prefix: SharedPrefix?
            if sharedPrefixFraction > 0, sharedPrefixLength > 0, rng.unit() < sharedPrefixFraction {
                prompt += sharedPrefixLength
                prefix = SharedPrefix(group: 0, length: sharedPrefixLength)
            }
            var priority = 0
            if totalWeight > 0 {
                var u = rng.unit() * totalWeight
                priority = priorityMix.last!.priority
                for w in priorityMix {
                    if u < w.weight { priority = w.priority; break }
                    u -= w.weight
                }
            }
            out.append(InferenceRequest(id: i, arrivalTime: t, promptTokens: prompt, outputTokens: output, priority: priority, sharedPrefix: prefix))
        }
        return out
    }
}

/// Reads request traces: CSV or JSON Lines with an arrival time (seconds), prompt tokens and output tokens.
///
/// CSV needs a header naming the columns. Accepted names (case-insensitive):
/// arrival `arrival_time` | `timestamp` | `arrival`; prompt `prompt_tokens` | `input_tokens` |
/// `context_tokens` | `prompt_len`; output `output_tokens` | `generated_tokens` | `output_len`;
/// optional `priority`. CSV fields are plain (no quoting). JSON Lines objects use the same keys and
/// may add `prompt_token_ids` (an array of `prompt_tokens` integers) for exact prefix caching. Blank lines and lines starting
/// with `#` are skipped. Requests are sorted by arrival time (stable). Malformed lines are
/// reported with their 1-based line number.
public enum TraceReader {
    static let arrivalKeys = ["arrival_time", "timestamp", "arrival"]
    static let promptKeys = ["prompt_tokens", "input_tokens", "context_tokens", "prompt_len"]
    static let outputKeys = ["output_tokens", "generated_tokens", "output_len"]

    /// Reads a trace file; the format follows the extension (`.jsonl`/`.json` → JSON Lines, else CSV).
    public static func read(path: String) throws -> [InferenceRequest] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SchedulingError(.fileUnreadable, "cannot read trace file '\(path)'; check the path and permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SchedulingError(.malformedInput, "trace file '\(path)' is not UTF-8 text")
        }
        let lower = path.lowercased()
        return lower.hasSuffix(".jsonl") || lower.hasSuffix(".json") || lower.hasSuffix(".ndjson")
            ? try parseJSONLines(text) : try parseCSV(text)
    }

    public static func parseCSV(_ text: String) throws -> [InferenceRequest] {
        var header: (a: Int, p: Int, o: Int, pr: Int?, width: Int)?
        var out: [InferenceRequest] = []
        var lineNo = 0
        for raw in textLines(text) {
            lineNo += 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let h = header else {
                let names = cells.map { $0.lowercased() }
                func find(_ keys: [String]) -> Int? { names.firstIndex { keys.contains($0) } }
                guard let a = find(arrivalKeys), let p = find(promptKeys), let o = find(outputKeys) else {
                    throw SchedulingError(.malformedInput, "CSV header '\(line)' must name an arrival column (\(arrivalKeys.joined(separator: "/"))), a prompt column (\(promptKeys.joined(separator: "/"))) and an output column (\(outputKeys.joined(separator: "/")))", line: lineNo)
                }
                header = (a, p, o, find(["priority"]), cells.count)
                continue
            }
            guard cells.count == h.width else {
                throw SchedulingError(.malformedInput, "expected \(h.width) comma-separated fields, found \(cells.count)", line: lineNo)
            }
            let priority = try h.pr.map { try int(cells[$0], "priority", lineNo, allowNegative: true) } ?? 0
            out.append(try makeRequest(
                id: out.count, arrival: double(cells[h.a], "arrival time", lineNo),
                prompt: int(cells[h.p], "prompt tokens", lineNo), output: int(cells[h.o], "output tokens", lineNo),
                priority: priority, line: lineNo))
        }
        guard header != nil, !out.isEmpty else {
            throw SchedulingError(.malformedInput, "the CSV trace is empty; it needs a header line and at least one request")
        }
        return sorted(out)
    }

    public static func parseJSONLines(_ text: String) throws -> [InferenceRequest] {
        var out: [InferenceRequest] = []
        var lineNo = 0
        for raw in textLines(text) {
            lineNo += 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw SchedulingError(.malformedInput, "not a JSON object: \(line.prefix(60))", line: lineNo)
            }
            let lowered = Dictionary(obj.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
            func number(_ keys: [String], _ what: String) throws -> Double {
                guard let key = keys.first(where: { lowered[$0] != nil }) else {
                    throw SchedulingError(.malformedInput, "missing \(what) (one of \(keys.joined(separator: ", ")))", line: lineNo)
                }
                guard let n = jsonNumber(lowered[key]!) else {
                    throw SchedulingError(.malformedInput, "\(key) must be a number", line: lineNo)
                }
                return n
            }
            let a = try number(arrivalKeys, "arrival time")
            let p = try number(promptKeys, "prompt tokens")
            let o = try number(outputKeys, "output tokens")
            let pr = lowered["priority"] != nil ? try number(["priority"], "priority") : 0
            for (v, what) in [(p, "prompt tokens"), (o, "output tokens"), (pr, "priority")] where v != v.rounded() || abs(v) > Double(InferenceRequest.maximumTokens) {
                throw SchedulingError(.malformedInput, "\(what) must be a whole number of magnitude at most \(InferenceRequest.maximumTokens), got \(v)", line: lineNo)
            }
            var request = try makeRequest(id: out.count, arrival: a, prompt: Int(p), output: Int(o), priority: Int(pr), line: lineNo)
            if let raw = lowered["prompt_token_ids"] {
                guard let list = raw as? [Any] else {
                    throw SchedulingError(.malformedInput, "prompt_token_ids must be an array of integers", line: lineNo)
                }
                var ids: [Int] = []
                ids.reserveCapacity(list.count)
                for v in list {
                    guard let d = jsonNumber(v), d == d.rounded(), abs(d) < 1e15 else {
                        throw SchedulingError(.malformedInput, "prompt_token_ids must hold whole numbers", line: lineNo)
                    }
                    ids.append(Int(d))
                }
                guard ids.count == request.promptTokens else {
                    throw SchedulingError(.malformedInput, "prompt_token_ids has \(ids.count) ids but prompt_tokens is \(request.promptTokens)", line: lineNo)
                }
                request.promptTokenIDs = ids
            }
            out.append(request)
        }
        guard !out.isEmpty else { throw SchedulingError(.malformedInput, "the JSONL trace holds no requests") }
        return sorted(out)
    }

    /// A JSON number as Double (Foundation hands back Int, Double or NSNumber depending on the platform); booleans are not numbers.
    static func jsonNumber(_ v: Any) -> Double? {
        if type(of: v) == Bool.self { return nil }
        if let i = v as? Int { return Double(i) }
        if let d = v as? Double { return d }
        if let n = v as? NSNumber, String(cString: n.objCType) != "c" { return n.doubleValue }
        return nil
    }

    /// Splits on `\n`, `\r\n` and lone `\r`. (`String.split(separator: "\n")` keeps a CRLF file in one
    /// piece, because `"\r\n"` is a single `Character` that is not equal to `"\n"`.)
    static func textLines(_ text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
    }

    private static func makeRequest(id: Int, arrival: Double, prompt: Int, output: Int, priority: Int, line: Int) throws -> InferenceRequest {
        guard arrival.isFinite, arrival >= 0 else { throw SchedulingError(.malformedInput, "arrival time \(arrival) must be a finite number of seconds >= 0", line: line) }
        guard prompt >= 1 else { throw SchedulingError(.malformedInput, "prompt tokens \(prompt) must be >= 1", line: line) }
        guard output >= 1 else { throw SchedulingError(.malformedInput, "output tokens \(output) must be >= 1", line: line) }
        return InferenceRequest(id: id, arrivalTime: arrival, promptTokens: prompt, outputTokens: output, priority: priority)
    }

    private static func double(_ s: String, _ what: String, _ line: Int) throws -> Double {
        guard let v = Double(s) else { throw SchedulingError(.malformedInput, "\(what) '\(s)' is not a number", line: line) }
        return v
    }

    private static func int(_ s: String, _ what: String, _ line: Int, allowNegative: Bool = false) throws -> Int {
        guard let v = Int(s) else { throw SchedulingError(.malformedInput, "\(what) '\(s)' is not a whole number", line: line) }
        if !allowNegative && v < 0 { throw SchedulingError(.malformedInput, "\(what) \(v) must not be negative", line: line) }
        guard v.magnitude <= UInt(InferenceRequest.maximumTokens) else {
            throw SchedulingError(.malformedInput, "\(what) \(v) is absurd; use at most \(InferenceRequest.maximumTokens) in magnitude", line: line)
        }
        return v
    }

    private static func sorted(_ requests: [InferenceRequest]) -> [InferenceRequest] {
        var r = requests
        // Stable sort by arrival: ties keep file order.
        r = r.enumerated().sorted { ($0.element.arrivalTime, $0.offset) < ($1.element.arrivalTime, $1.offset) }.map(\.element)
        return r
    }
}
