import ArgumentParser
import GatewayServer
import Routing

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// `inferkit router …` — train and evaluate the query classifier behind `model_routing`.
struct RouterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Train the model-routing classifier and evaluate routing by query class on a labelled set.",
        subcommands: [RouterTrainCommand.self, RouterEvaluateCommand.self]
    )
}

/// Reads a labelled JSONL set (`{"text": …, "label": …}` per line) or exits with a message.
func readLabelledQueries(_ path: String) throws -> [LabelledQuery] {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        printError("error: cannot read '\(path)': check the path and permissions")
        throw ExitCode(2)
    }
    let queries: [LabelledQuery]
    do {
        queries = try LabelledQuery.parseJSONL(text)
    } catch {
        printError("error: \(path): \(error.message)")
        throw ExitCode(2)
    }
    guard !queries.isEmpty else {
        printError("error: \(path) holds no labelled queries: give one {\"text\": …, \"label\": …} object per line")
        throw ExitCode(2)
    }
    return queries
}

/// Every `n`-th query (deterministic) held out, the rest for training.
func split(_ queries: [LabelledQuery], holdoutEvery n: Int) -> (training: [LabelledQuery], heldOut: [LabelledQuery]) {
    guard n >= 2 else { return (queries, []) }
    let indexed = queries.enumerated()
    return (indexed.filter { $0.offset % n != 0 }.map(\.element), indexed.filter { $0.offset % n == 0 }.map(\.element))
}

struct RouterTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a logistic-regression query classifier (hashed n-grams) and save its weights as JSON.",
        discussion: """
            The file is what `model_routing.weights_file` of `inferkit gateway` loads. Before saving a
            model trained on every query, a model trained without every --holdout-every-th query is
            scored on those held-out queries, so the accuracy printed is not the training accuracy.
            """
    )

    @Argument(help: "Labelled queries, one JSON object per line: {\"text\": …, \"label\": …}.")
    var queries: String

    @Option(name: .long, help: "Where to write the weights (JSON).")
    var out: String

    @Option(name: .long, help: "Hold out every N-th query for the accuracy estimate (0: none).")
    var holdoutEvery = 4

    @Option(name: .long, help: "Hashed feature dimensions.")
    var dimensions = 4096

    @Option(name: .long, help: "Training epochs.")
    var epochs = 40

    @Option(name: .long, help: "Seed of the shuffling between epochs.")
    var seed: UInt64 = 42

    func run() throws {
        guard (64...1 << 20).contains(dimensions) else { throw ValidationError("--dimensions must be in 64…1,048,576") }
        guard (1...10_000).contains(epochs) else { throw ValidationError("--epochs must be in 1…10,000") }
        guard holdoutEvery >= 0 else { throw ValidationError("--holdout-every must be ≥ 0") }
        let all = try readLabelledQueries(queries)
        let options = LogisticRegressionClassifier.TrainingOptions(epochs: epochs, seed: seed)
        let features = HashedFeatures(dimensions: dimensions)
        do {
            let (training, heldOut) = split(all, holdoutEvery: holdoutEvery)
            if !heldOut.isEmpty {
                let probe = try LogisticRegressionClassifier.train(training, features: features, options: options)
                let right = heldOut.filter { probe.predict($0.text).label == $0.label }.count
                print("held-out accuracy: \(right)/\(heldOut.count) = \(String(format: "%.1f", 100 * Double(right) / Double(heldOut.count))) % (trained on \(training.count))")
            }
            let model = try LogisticRegressionClassifier.train(all, features: features, options: options)
            try model.jsonData().write(to: URL(fileURLWithPath: out))
            let labels = Dictionary(grouping: all, by: \.label).map { "\($0.key)=\($0.value.count)" }.sorted().joined(separator: " ")
            print("saved a classifier trained on \(all.count) queries (\(labels)) to \(out)")
        } catch let error as RoutingError {
            printError("error: \(error.message)")
            throw ExitCode(2)
        } catch {
            printError("error: cannot write '\(out)': \(error)")
            throw ExitCode(1)
        }
    }
}

struct RouterEvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "What routing by class would save and risk on a labelled set, with a gateway file's model_routing.",
        discussion: """
            Uses the tiers, prices, class tiers and classifier of the file's `model_routing` section
            (secrets need not be set: nothing is sent upstream). Baseline: every query to the most
            capable model. The quality proxy is the share of queries sent to a model at least as
            capable as their label needs; under-routed queries are the quality risk. The rule-based
            classifier and the labels themselves (an oracle) are scored alongside for comparison.
            Evaluate a trained classifier on queries it was not trained on.
            """
    )

    @Argument(help: "Labelled queries, one JSON object per line: {\"text\": …, \"label\": …}.")
    var queries: String

    @Option(name: .long, help: "The gateway configuration file with a model_routing section.")
    var config: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    struct Oracle: QueryClassifier {
        let labels: [String: QueryClass]
        func classify(_ request: ChatCompletionRequest) -> Classification {
            Classification(label: labels[request.lastUserText] ?? "unlabelled", confidence: 1, reason: "label")
        }
    }

    func run() throws {
        let all = try readLabelledQueries(queries)
        let resolved: GatewayServerConfiguration.Resolved
        do {
            resolved = try GatewayServerConfiguration.load(path: config).resolveOffline(environment: ProcessInfo.processInfo.environment)
        } catch let error as GatewayError {
            printError("error: \(error.message)")
            throw ExitCode(2)
        }
        guard let routing = resolved.routing.modelRouting, let classifier = resolved.classifier else {
            printError("error: \(config) has no model_routing section to evaluate")
            throw ExitCode(2)
        }
        let evaluator = RoutingEvaluator(router: routing.router)
        let oracle = Oracle(labels: Dictionary(all.map { ($0.text, $0.label) }, uniquingKeysWith: { first, _ in first }))
        let rows: [(String, RoutingEvaluation)] = [
            ("configured (\(type(of: classifier)))", evaluator.evaluate(all, classifier: classifier)),
            ("rule-based defaults", evaluator.evaluate(all, classifier: RuleBasedClassifier())),
            ("labels (oracle)", evaluator.evaluate(all, classifier: oracle)),
        ]
        if json {
            let objects = rows.map { name, r -> [String: Any] in
                ["classifier": name, "queries": r.count, "accuracy": r.accuracy, "saved_fraction": r.savedFraction,
                 "baseline_cost": r.baselineCost, "routed_cost": r.routedCost, "capable_fraction": r.capableFraction,
                 "under_routed": r.underRouted, "over_routed": r.overRouted]
            }
            let data = try JSONSerialization.data(withJSONObject: ["model": routing.modelName, "results": objects], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let tiers = routing.router.models.sorted { $0.tier < $1.tier }.map { "\($0.model) (tier \($0.tier))" }.joined(separator: ", ")
        print("model '\(routing.modelName)': \(tiers); baseline: everything to \(routing.router.mostCapable.model)")
        print("| classifier | queries | accuracy | cost saved | capable (quality proxy) | under-routed | over-routed |")
        print("|---|---|---|---|---|---|---|")
        for (name, r) in rows {
            print("| \(name) | \(r.count) | \(String(format: "%.1f", r.accuracy * 100)) % | \(String(format: "%.1f", r.savedFraction * 100)) % | \(String(format: "%.1f", r.capableFraction * 100)) % | \(r.underRouted) | \(r.overRouted) |")
        }
    }
}
