// RoutingEvaluation: measures the semantic cache's false hits against its threshold on a
// labelled paraphrase set, and the cost saved by routing queries by class, on a labelled query set.
//
//   swift run RoutingEvaluation [paraphrases.jsonl] [queries.jsonl] [--save-model weights.json]
//
// Defaults read the sets committed under Tests/RoutingTests/Fixtures. Prints Markdown tables.
// With --save-model, the logistic-regression classifier trained on all labelled queries is
// written as JSON (load it with LogisticRegressionClassifier(json:)).
import Foundation
import Routing

struct Pair: Decodable {
    var a: String
    var b: String
    var same: Bool
    var kind: String
}

func read(_ path: String) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        FileHandle.standardError.write(Data("cannot read \(path): run from the package root or pass the path\n".utf8))
        exit(1)
    }
    return text
}

var arguments = Array(CommandLine.arguments.dropFirst())
var savePath: String?
if let flag = arguments.firstIndex(of: "--save-model") {
    guard flag + 1 < arguments.count else {
        FileHandle.standardError.write(Data("--save-model needs a file path\n".utf8))
        exit(2)
    }
    savePath = arguments[flag + 1]
    arguments.removeSubrange(flag...(flag + 1))
}
let pairsPath = arguments.first ?? "Tests/RoutingTests/Fixtures/paraphrases.jsonl"
let queriesPath = arguments.dropFirst().first ?? "Tests/RoutingTests/Fixtures/queries.jsonl"

let decoder = JSONDecoder()
let pairs: [Pair] = read(pairsPath).split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.compactMap {
    try? decoder.decode(Pair.self, from: Data($0.utf8))
}
func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// Similarity by kind and the threshold sweep for one embedder.
func report(_ title: String, _ embedder: HashedNGramEmbedder) {
    let scored = pairs.map { (pair: $0, similarity: cosineSimilarity(embedder.vector($0.a), embedder.vector($0.b))) }
    print("## \(title): similarity by kind of pair (\(pairs.count) pairs)\n")
    print("| kind | pairs | same meaning | min | mean | max |")
    print("|---|---|---|---|---|---|")
    for kind in ["surface", "reword", "synonym", "near", "unrelated"] {
        let s = scored.filter { $0.pair.kind == kind }.map(\.similarity)
        guard let low = s.min(), let high = s.max() else { continue }
        let same = scored.first { $0.pair.kind == kind }?.pair.same ?? false
        print("| \(kind) | \(s.count) | \(same ? "yes" : "no") | \(f(low)) | \(f(s.reduce(0, +) / Double(s.count))) | \(f(high)) |")
    }
    print("\n## \(title): threshold sweep\n")
    print("A hit is a pair scoring at or above the threshold. A *false hit* serves one question's answer to a different question.\n")
    print("| threshold | hits on same-meaning pairs | of which surface / reword / synonym | false hits (different-meaning pairs) | of which near-misses | false-hit share of all hits |")
    print("|---|---|---|---|---|---|")
    let positives = scored.filter { $0.pair.same }
    let negatives = scored.filter { !$0.pair.same }
    let near = scored.filter { $0.pair.kind == "near" }
    for threshold in stride(from: 0.5, through: 0.951, by: 0.05) {
        let tp = positives.filter { $0.similarity >= threshold }.count
        let fp = negatives.filter { $0.similarity >= threshold }.count
        let nearFP = near.filter { $0.similarity >= threshold }.count
        let share = tp + fp == 0 ? 0 : Double(fp) / Double(tp + fp)
        let byKind = ["surface", "reword", "synonym"].map { kind in
            "\(positives.filter { $0.pair.kind == kind && $0.similarity >= threshold }.count)/\(positives.filter { $0.pair.kind == kind }.count)"
        }.joined(separator: " / ")
        print("| \(f(threshold)) | \(tp)/\(positives.count) | \(byKind) | \(fp)/\(negatives.count) | \(nearFP)/\(near.count) | \(f(share * 100, 0)) % |")
    }
    print("\n## \(title): highest-scoring different-meaning pairs\n")
    for item in negatives.sorted(by: { $0.similarity > $1.similarity }).prefix(5) {
        print("- \(f(item.similarity)): \"\(item.pair.a)\" vs \"\(item.pair.b)\"")
    }
    print("")
}

report("HashedNGramEmbedder defaults", HashedNGramEmbedder())
report("Every word weighted alike (function-word and signal-word scales 1)", HashedNGramEmbedder(features: HashedFeatures()))

// Model routing.
let queries: [LabelledQuery]
do { queries = try LabelledQuery.parseJSONL(read(queriesPath)) } catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
let router = try ModelTierRouter(
    models: [
        ModelTier(model: "gpt-4.1", tier: 3, pricing: TokenPricing(inputPerMillion: 2.0, outputPerMillion: 8.0)),
        ModelTier(model: "gpt-4.1-mini", tier: 2, pricing: TokenPricing(inputPerMillion: 0.4, outputPerMillion: 1.6)),
        ModelTier(model: "gpt-4.1-nano", tier: 1, pricing: TokenPricing(inputPerMillion: 0.1, outputPerMillion: 0.4)),
    ],
    requiredTier: [.simple: 1, .standard: 2, .code: 2, .complex: 3], defaultTier: 3)
let evaluator = RoutingEvaluator(router: router)
let heldOut = queries.enumerated().filter { $0.offset % 4 == 0 }.map(\.element)
let training = queries.enumerated().filter { $0.offset % 4 != 0 }.map(\.element)
let trained = try LogisticRegressionClassifier.train(training)

struct Oracle: QueryClassifier {
    let labels: [String: QueryClass]
    func classify(_ request: ChatCompletionRequest) -> Classification {
        Classification(label: labels[request.lastUserText] ?? .complex, confidence: 1, reason: "label")
    }
}
let oracle = Oracle(labels: Dictionary(queries.map { ($0.text, $0.label) }, uniquingKeysWith: { a, _ in a }))

print("\n## Model routing on \(queries.count) labelled queries (held-out quarter: \(heldOut.count))\n")
print("Tiers: nano (simple) < mini (standard, code) < gpt-4.1 (complex); baseline sends everything to gpt-4.1.\n")
print("| classifier | set | accuracy | cost saved | capable (quality proxy) | under-routed | over-routed |")
print("|---|---|---|---|---|---|---|")
func row(_ name: String, _ set: String, _ r: RoutingEvaluation) {
    print("| \(name) | \(set) | \(f(r.accuracy * 100, 1)) % | \(f(r.savedFraction * 100, 1)) % | \(f(r.capableFraction * 100, 1)) % | \(r.underRouted) | \(r.overRouted) |")
}
row("oracle (labels)", "all", evaluator.evaluate(queries, classifier: oracle))
row("rule-based", "all", evaluator.evaluate(queries, classifier: RuleBasedClassifier()))
row("rule-based", "held-out", evaluator.evaluate(heldOut, classifier: RuleBasedClassifier()))
row("logistic regression", "held-out", evaluator.evaluate(heldOut, classifier: trained))
row("logistic regression", "training", evaluator.evaluate(training, classifier: trained))

if let savePath {
    let model = try LogisticRegressionClassifier.train(queries)
    do {
        try model.jsonData().write(to: URL(fileURLWithPath: savePath))
        print("\nSaved a classifier trained on all \(queries.count) queries to \(savePath)")
    } catch {
        FileHandle.standardError.write(Data("cannot write \(savePath): \(error)\n".utf8))
        exit(1)
    }
}
