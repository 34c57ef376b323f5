/// The one error type of CostModel.
///
/// Every failure — an unknown catalog name, a negative token count, a
/// malformed catalog file, a model that fits nowhere — is a `CostModelError`
/// with a stable ``Code`` a program can switch on and a ``message`` that says
/// what was wrong and what to change.
public struct CostModelError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable, Codable {
        /// A model, GPU, VM SKU, price or PTU profile name is not in the catalog.
        case unknownName
        /// A numeric or textual input is out of range (negative, zero, NaN, absurd).
        case invalidInput
        /// A catalog file (bundled or user-supplied) cannot be read or has a bad entry.
        case malformedCatalog
        /// The model does not fit the hardware at the requested settings.
        case doesNotFit
        /// No candidate deployment meets the workload and SLOs.
        case noFeasiblePlan
        /// The hardware does not support the requested precision or parallelism.
        case unsupported
    }

    public let code: Code
    public let message: String
    /// The underlying cause, when there is one (e.g. a JSON parser message).
    public let underlying: String?

    public init(_ code: Code, _ message: String, underlying: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(code.rawValue): \(message) (\(underlying))" }
        return "\(code.rawValue): \(message)"
    }

    // MARK: Constructors used across the module

    static func unknown(_ kind: String, _ name: String, candidates: [String]) -> CostModelError {
        let close = closestNames(to: name, in: candidates, limit: 3)
        let hint = close.isEmpty ? "" : " Did you mean \(close.map { "'\($0)'" }.joined(separator: ", "))?"
        return CostModelError(
            .unknownName,
            "Unknown \(kind) '\(name)'.\(hint) Run `inferkit catalog list` to see every \(kind), or add one with a catalog file."
        )
    }

    static func invalid(_ what: String, _ value: String, expected: String) -> CostModelError {
        CostModelError(.invalidInput, "\(what) is \(value); it must be \(expected).")
    }

    static func malformed(file: String, entry: String, field: String, _ problem: String) -> CostModelError {
        CostModelError(.malformedCatalog, "Catalog file \(file), entry \(entry), field '\(field)': \(problem).")
    }
}

// MARK: - Input validation helpers

enum Check {
    static func positive(_ value: Double, _ what: String, max: Double = .greatestFiniteMagnitude) throws(CostModelError) {
        guard value.isFinite, value > 0 else { throw .invalid(what, "\(value)", expected: "a finite number greater than zero") }
        guard value <= max else { throw .invalid(what, "\(value)", expected: "at most \(max) (larger values are not plausible)") }
    }

    static func positive(_ value: Int, _ what: String, max: Int = .max) throws(CostModelError) {
        guard value > 0 else { throw .invalid(what, "\(value)", expected: "an integer greater than zero") }
        guard value <= max else { throw .invalid(what, "\(value)", expected: "at most \(max) (larger values are not plausible)") }
    }

    static func nonNegative(_ value: Double, _ what: String, max: Double = .greatestFiniteMagnitude) throws(CostModelError) {
        guard value.isFinite, value >= 0 else { throw .invalid(what, "\(value)", expected: "a finite number of zero or more") }
        guard value <= max else { throw .invalid(what, "\(value)", expected: "at most \(max)") }
    }

    static func fraction(_ value: Double, _ what: String, allowZero: Bool = true) throws(CostModelError) {
        guard value.isFinite, value <= 1, allowZero ? value >= 0 : value > 0 else {
            throw .invalid(what, "\(value)", expected: allowZero ? "a fraction between 0 and 1" : "a fraction in (0, 1]")
        }
    }
}

// MARK: - Closest names (Levenshtein distance)

/// The catalog names closest to `name` by edit distance (case-insensitive),
/// best first; names that merely contain the query rank first.
func closestNames(to name: String, in candidates: [String], limit: Int) -> [String] {
    let query = Array(name.lowercased())
    let scored = candidates.map { candidate -> (String, Int) in
        let lower = candidate.lowercased()
        var distance = editDistance(query, Array(lower))
        if !query.isEmpty, lower.contains(String(query)) { distance = min(distance, 1) }
        return (candidate, distance)
    }
    let threshold = max(3, query.count / 2)
    return scored.filter { $0.1 <= threshold }
        .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        .prefix(limit).map(\.0)
}

func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
