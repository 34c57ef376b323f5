#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A multinomial logistic-regression classifier over hashed n-gram features, trainable in-process
/// and stored as JSON.
///
/// Model: `p(class | x) = softmax(W x + b)` with `x` the L2-normalised hashed features of the
/// last user message (``HashedFeatures``). Training minimises cross-entropy with L2 regularisation
/// by stochastic gradient descent over seeded shuffles, so the same data and seed give the same weights.
public struct LogisticRegressionClassifier: QueryClassifier, Codable, Sendable, Hashable {
    public var labels: [QueryClass]
    public var features: HashedFeatures
    /// `[labels.count][features.dimensions]`, row-major by class.
    public var weights: [[Float]]
    public var bias: [Float]

    public struct TrainingOptions: Sendable, Hashable {
        public var epochs: Int
        public var learningRate: Double
        public var l2: Double
        public var seed: UInt64
        public init(epochs: Int = 40, learningRate: Double = 0.5, l2: Double = 1e-4, seed: UInt64 = 42) {
            self.epochs = epochs
            self.learningRate = learningRate
            self.l2 = l2
            self.seed = seed
        }
    }

    public init(labels: [QueryClass], features: HashedFeatures, weights: [[Float]], bias: [Float]) throws(RoutingError) {
        guard !labels.isEmpty, weights.count == labels.count, bias.count == labels.count,
              weights.allSatisfy({ $0.count == features.dimensions }),
              weights.allSatisfy({ $0.allSatisfy(\.isFinite) }), bias.allSatisfy(\.isFinite)
        else {
            throw RoutingError(.invalidConfiguration,
                               "classifier weights must be [labels][dimensions] finite numbers with one bias per label")
        }
        self.labels = labels
        self.features = features
        self.weights = weights
        self.bias = bias
    }

    /// Decodes and validates a model saved with ``jsonData()``.
    public init(json: Data) throws(RoutingError) {
        let decoded: LogisticRegressionClassifier
        do {
            decoded = try JSONDecoder().decode(LogisticRegressionClassifier.self, from: json)
        } catch {
            throw RoutingError(.invalidConfiguration, "classifier JSON is not a saved logistic-regression model: \(error)")
        }
        try self.init(labels: decoded.labels, features: decoded.features, weights: decoded.weights, bias: decoded.bias)
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// Sparse, L2-normalised features (bucket → value).
    func sparse(_ text: String) -> [(Int, Float)] {
        var merged: [Int: Float] = [:]
        for (bucket, value) in features.features(text) { merged[bucket, default: 0] += value }
        let norm = merged.sorted { $0.key < $1.key }.reduce(Float(0)) { $0 + $1.value * $1.value }.squareRoot()
        guard norm > 0 else { return [] }
        // Sorted so sums run in the same order every time (dictionary order varies between instances).
        return merged.sorted { $0.key < $1.key }.map { ($0.key, $0.value / norm) }
    }

    /// Class probabilities, in `labels` order.
    public func probabilities(_ text: String) -> [Double] {
        Self.softmax(scores(sparse(text)))
    }

    func scores(_ x: [(Int, Float)]) -> [Double] {
        labels.indices.map { c in
            x.reduce(Double(bias[c])) { $0 + Double(weights[c][$1.0] * $1.1) }
        }
    }

    static func softmax(_ scores: [Double]) -> [Double] {
        let top = scores.max() ?? 0
        let exps = scores.map { exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    public func predict(_ text: String) -> Classification {
        let p = probabilities(text)
        let best = p.indices.max { p[$0] < p[$1] } ?? 0
        return Classification(label: labels[best], confidence: p[best], reason: "logistic regression")
    }

    public func classify(_ request: ChatCompletionRequest) -> Classification {
        if let hint = request.routeClassHint { return Classification(label: hint, confidence: 1, reason: "explicit hint") }
        return predict(request.lastUserText)
    }

    /// Trains a classifier on labelled examples.
    /// - Throws: `invalidRequest` when there are no examples or fewer than two classes.
    public static func train(
        _ examples: [LabelledQuery], features: HashedFeatures = HashedFeatures(dimensions: 4096),
        options: TrainingOptions = .init()
    ) throws(RoutingError) -> LogisticRegressionClassifier {
        let labels = Array(Set(examples.map(\.label))).sorted()
        guard labels.count >= 2 else {
            throw RoutingError(.invalidRequest, "training needs examples of at least two classes (got \(labels.count))")
        }
        guard options.epochs >= 1, options.learningRate > 0, options.learningRate.isFinite, options.l2 >= 0 else {
            throw RoutingError(.invalidRequest, "training options need epochs ≥ 1, a positive learning rate and l2 ≥ 0")
        }
        var model = try LogisticRegressionClassifier(
            labels: labels, features: features,
            weights: Array(repeating: Array(repeating: 0, count: features.dimensions), count: labels.count),
            bias: Array(repeating: 0, count: labels.count))
        let data = examples.map { (model.sparse($0.text), labels.firstIndex(of: $0.label) ?? 0) }
        var order = Array(data.indices)
        var random = SplitMixGenerator(seed: options.seed)
        for epoch in 0..<options.epochs {
            order.shuffle(using: &random)
            let rate = options.learningRate / (1 + Double(epoch) * 0.1)
            for i in order {
                let (x, y) = data[i]
                let p = softmax(model.scores(x))
                for c in labels.indices {
                    let gradient = p[c] - (c == y ? 1 : 0)
                    for (bucket, value) in x {
                        let w = Double(model.weights[c][bucket])
                        model.weights[c][bucket] = Float(w - rate * (gradient * Double(value) + options.l2 * w))
                    }
                    model.bias[c] -= Float(rate * gradient)
                }
            }
        }
        return model
    }
}
