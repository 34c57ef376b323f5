#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A class of query that needs a certain capability (and so a certain model tier).
public struct QueryClass: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral,
    CustomStringConvertible, Comparable
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    public var description: String { rawValue }
    public static func < (a: QueryClass, b: QueryClass) -> Bool { a.rawValue < b.rawValue }

    /// Greetings, lookups, short factual questions, rewording.
    public static let simple: QueryClass = "simple"
    /// Explanations, summaries, everyday writing.
    public static let standard: QueryClass = "standard"
    /// Multi-step reasoning, analysis, design, maths.
    public static let complex: QueryClass = "complex"
    /// Writing, reviewing or debugging code.
    public static let code: QueryClass = "code"
}

/// A classifier's verdict.
public struct Classification: Sendable, Hashable {
    public var label: QueryClass
    /// In [0, 1]; 1 for explicit hints.
    public var confidence: Double
    /// Why (for logs; never contains prompt text).
    public var reason: String
    public init(label: QueryClass, confidence: Double, reason: String) {
        self.label = label
        self.confidence = confidence
        self.reason = reason
    }
}

/// Decides which class of query a request is, so the router can send it to the cheapest model
/// able to answer it.
public protocol QueryClassifier: Sendable {
    func classify(_ request: ChatCompletionRequest) -> Classification
}

extension ChatCompletionRequest {
    /// An explicit routing hint: the `route_class` member (a vendor extension) or a
    /// `metadata.route_class` member.
    public var routeClassHint: QueryClass? {
        if let hint = extra["route_class"]?.stringValue, !hint.isEmpty { return QueryClass(rawValue: hint) }
        if let hint = extra["metadata"]?["route_class"]?.stringValue, !hint.isEmpty { return QueryClass(rawValue: hint) }
        return nil
    }
}

/// Hand-written rules: explicit hints, code markers, reasoning keywords, and length.
public struct RuleBasedClassifier: QueryClassifier {
    /// Words and phrases that signal code (matched on lower-cased words / substrings).
    public var codeMarkers: [String]
    /// Words and phrases that signal multi-step reasoning.
    public var complexMarkers: [String]
    /// Estimated prompt tokens at or below which a query without other signals is `simple`.
    public var simpleMaxTokens: Int
    /// Estimated prompt tokens above which a query is at least `complex`.
    public var complexMinTokens: Int
    public var estimator: TokenEstimator

    public init(
        codeMarkers: [String] = [
            "```", "func ", "def ", "class ", "import ", "#include", "stack trace", "traceback", "segfault",
            "compile", "compiler", "regex", "sql", "python", "swift", "javascript", "typescript", "rust",
            "function", "bug", "refactor", "unit test", "exception", "null pointer", "api endpoint", "json schema",
        ],
        complexMarkers: [String] = [
            "prove", "derive", "step by step", "analyze", "analyse", "compare", "trade-off", "tradeoff",
            "architecture", "design a", "strategy", "evaluate", "implications", "why does", "optimize",
            "optimise", "plan for", "pros and cons", "in depth", "calculate", "estimate",
        ],
        simpleMaxTokens: Int = 12, complexMinTokens: Int = 400, estimator: TokenEstimator = TokenEstimator()
    ) {
        self.codeMarkers = codeMarkers
        self.complexMarkers = complexMarkers
        self.simpleMaxTokens = simpleMaxTokens
        self.complexMinTokens = complexMinTokens
        self.estimator = estimator
    }

    public func classify(_ request: ChatCompletionRequest) -> Classification {
        if let hint = request.routeClassHint { return Classification(label: hint, confidence: 1, reason: "explicit hint") }
        let text = request.lastUserText
        let lower = " " + text.lowercased() + " "
        let tokens = estimator.tokens(in: text)
        let codeHits = codeMarkers.filter { lower.contains($0) }.count
        if codeHits > 0 {
            return Classification(label: .code, confidence: min(1, 0.6 + 0.1 * Double(codeHits)), reason: "\(codeHits) code markers")
        }
        let complexHits = complexMarkers.filter { lower.contains($0) }.count
        if complexHits > 0 || tokens > complexMinTokens {
            return Classification(label: .complex, confidence: min(1, 0.55 + 0.1 * Double(complexHits)),
                                  reason: complexHits > 0 ? "\(complexHits) reasoning markers" : "long prompt (\(tokens) tokens)")
        }
        if tokens <= simpleMaxTokens {
            return Classification(label: .simple, confidence: 0.6, reason: "short prompt (\(tokens) tokens)")
        }
        return Classification(label: .standard, confidence: 0.5, reason: "no strong signal")
    }
}

/// A labelled query for training and evaluation (one JSON object per line: `{"text": …, "label": …}`).
public struct LabelledQuery: Sendable, Hashable, Codable {
    public var text: String
    public var label: QueryClass
    public init(text: String, label: QueryClass) {
        self.text = text
        self.label = label
    }

    /// Parses JSONL (blank lines and lines starting with `#` are skipped).
    /// - Throws: `invalidRequest` naming the first bad line.
    public static func parseJSONL(_ text: String) throws(RoutingError) -> [LabelledQuery] {
        var out: [LabelledQuery] = []
        let decoder = JSONDecoder()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = String(line).trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                let item = try decoder.decode(LabelledQuery.self, from: Data(trimmed.utf8))
                guard !item.label.rawValue.isEmpty else { throw RoutingError(.invalidRequest, "empty label") }
                out.append(item)
            } catch {
                throw RoutingError(.invalidRequest,
                                   "line \(number + 1) is not a {\"text\": …, \"label\": …} JSON object: fix or remove it")
            }
        }
        return out
    }
}
