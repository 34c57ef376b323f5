import AsyncHTTPClient
import NIOCore
import Routing
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

@testable import GatewayServer

/// `model_routing:` in the gateway's file: parsing, mistakes, and routing over real HTTP.
@Suite struct ModelRoutingConfigurationTests {
    /// A cheap tier-1 model on upstream `small`, an expensive tier-2 model on upstream `large`.
    static func yaml(_ routing: String) -> String {
        """
        upstreams:
          - { id: small, type: openai, base_url: "http://127.0.0.1:{port:small}/v1" }
          - { id: large, type: openai, base_url: "http://127.0.0.1:{port:large}/v1" }
        models:
          - name: mini
            pricing: { input_per_million: 0.15, output_per_million: 0.6 }
            backends: [ { upstream: small } ]
          - name: big
            backends: [ { upstream: large, pricing: { input_per_million: 2.5, output_per_million: 10 } } ]
        model_routing:
        \(routing.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        """
    }

    static let rules = """
        model: auto
        classifier: rules
        tiers: { mini: 1, big: 2 }
        class_tiers: { simple: 1, standard: 1, code: 2, complex: 2 }
        """

    static func resolve(_ yaml: String) throws -> GatewayServerConfiguration.Resolved {
        try GatewayServerConfiguration.parse(yaml.replacingOccurrences(of: "{port:small}", with: "1").replacingOccurrences(of: "{port:large}", with: "2"))
            .resolve(environment: [:])
    }

    static func error(_ yaml: String) -> GatewayError? {
        do {
            _ = try resolve(yaml)
            return nil
        } catch let error as GatewayError {
            return error
        } catch {
            return nil
        }
    }

    @Test func rulesSectionBuildsTheRouterAndClassifier() throws {
        let resolved = try Self.resolve(Self.yaml(Self.rules))
        let routing = try #require(resolved.routing.modelRouting)
        #expect(routing.modelName == "auto")
        // The price of `mini` comes from the model, that of `big` from its only backend.
        #expect(routing.router.models.map(\.model).sorted() == ["big", "mini"])
        #expect(routing.router.model(for: .simple).model == "mini")
        #expect(routing.router.model(for: .code).model == "big")
        #expect(routing.router.tier(for: "unlisted") == 2)  // default tier: the highest
        #expect(resolved.classifier is RuleBasedClassifier)
    }

    @Test func mistakesAreNamed() {
        let unknownModel = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "big: 2", with: "huge: 2")))
        #expect(unknownModel?.message.contains("huge") == true)

        let clash = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "model: auto", with: "model: mini")))
        #expect(clash?.message.contains("model_routing.model") == true)

        let tooHigh = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "complex: 2", with: "complex: 5")))
        #expect(tooHigh?.message.contains("complex") == true)

        let noClasses = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "class_tiers: { simple: 1, standard: 1, code: 2, complex: 2 }", with: "")))
        #expect(noClasses?.message.contains("class_tiers") == true)

        let unpriced = Self.error(Self.yaml(Self.rules).replacingOccurrences(of: "pricing: { input_per_million: 0.15, output_per_million: 0.6 }", with: "context_window: 8000"))
        #expect(unpriced?.message.contains("'mini' has no price") == true)

        let badClassifier = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "classifier: rules", with: "classifier: magic")))
        #expect(badClassifier?.message.contains("magic") == true)

        let missingWeights = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "classifier: rules", with: "classifier: logistic")))
        #expect(missingWeights?.message.contains("weights_file") == true)

        let unreadable = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "classifier: rules", with: "weights_file: /nonexistent/router.json")))
        #expect(unreadable?.message.contains("/nonexistent/router.json") == true)

        let typo = Self.error(Self.yaml(Self.rules + "\ntier: { mini: 1 }"))
        #expect(typo?.message.contains("tier") == true && typo?.code == .invalidConfiguration)

        let badThreshold = Self.error(Self.yaml(Self.rules + "\nrules: { simple_max_tokens: 50, complex_min_tokens: 10 }"))
        #expect(badThreshold?.message.contains("complex_min_tokens") == true)
    }

    /// Without a model price, the cheapest priced backend (by the router's blended price) sets it;
    /// an unpriced backend (a PTU deployment) does not make the model free.
    @Test func modelPriceFallsBackToTheCheapestPricedBackend() throws {
        let yaml = Self.yaml(Self.rules).replacingOccurrences(
            of: "backends: [ { upstream: large, pricing: { input_per_million: 2.5, output_per_million: 10 } } ]",
            with: """
            backends:
                  - { upstream: large, id: ptu }
                  - { upstream: large, id: dear, pricing: { input_per_million: 1, output_per_million: 40 } }
                  - { upstream: large, id: cheap, pricing: { input_per_million: 5, output_per_million: 6 } }
            """)
        let router = try #require(try Self.resolve(yaml).routing.modelRouting?.router)
        // Blended (3 input : 1 output): dear (3 + 40) / 4 = 10.75, cheap (15 + 6) / 4 = 5.25.
        #expect(router.models.first { $0.model == "big" }?.pricing == TokenPricing(inputPerMillion: 5, outputPerMillion: 6))
    }

    /// A key restricted to some models may list the virtual model; a misspelt one is still an error.
    @Test func keysMayListTheVirtualModel() throws {
        let keyed = Self.yaml(Self.rules) + "\napi_keys:\n  - { id: app, key: sk-app-0123456789, models: [auto] }"
        let resolved = try Self.resolve(keyed)
        #expect(resolved.routing.apiKeys?.first?.allowedModels == ["auto"])
        let typo = Self.error(keyed.replacingOccurrences(of: "models: [auto]", with: "models: [autoo]"))
        #expect(typo?.message.contains("autoo") == true)
    }

    /// Offline resolution (for `inferkit router evaluate`) fills missing secrets with distinct
    /// placeholders and keeps the ones that are set; plain `resolve` still refuses missing ones.
    @Test func offlineResolutionNeedsNoSecrets() throws {
        let text = Self.yaml(Self.rules).replacingOccurrences(of: "{port:small}", with: "1").replacingOccurrences(of: "{port:large}", with: "2")
            .replacingOccurrences(of: "base_url: \"http://127.0.0.1:1/v1\" }", with: "base_url: \"http://127.0.0.1:1/v1\", api_key_env: SMALL_KEY }")
            + "\napi_keys:\n  - { id: a, key_env: KEY_A }\n  - { id: b, key_env: KEY_B }"
        let file = try GatewayServerConfiguration.parse(text)
        #expect(file.secretEnvironmentNames == ["KEY_A", "KEY_B", "SMALL_KEY"])
        #expect(throws: GatewayError.self) { try file.resolve(environment: [:]) }
        let resolved = try file.resolveOffline(environment: ["KEY_A": "sk-real-key-a-0123"])
        #expect(resolved.routing.modelRouting?.modelName == "auto")
        #expect(resolved.routing.apiKeys?.map(\.secret).sorted() == ["offline-placeholder-KEY_B", "sk-real-key-a-0123"])
        #expect(resolved.upstreams["small"]?.apiKey == "offline-placeholder-SMALL_KEY")
    }

    @Test func corruptWeightsFileIsATypedError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ik-router-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("router.json").path
        try Data("{\"labels\": [\"simple\"], \"weights\": 7}".utf8).write(to: URL(fileURLWithPath: path))
        let corrupt = Self.error(Self.yaml(Self.rules.replacingOccurrences(of: "classifier: rules", with: "classifier: logistic\nweights_file: \(path)")))
        #expect(corrupt?.code == .invalidConfiguration)
        #expect(corrupt?.message.contains("router.json") == true)
    }

    /// Over HTTP: `auto` goes to `mini` for a greeting and to `big` for a code question (rules),
    /// and `GET /v1/models` lists the virtual model.
    @Test func autoRoutesByClassOverHTTP() async throws {
        try await Harness.with(mocks: ["small": .init(), "large": .init()], yaml: Self.yaml(Self.rules)) { h in
            let greeting = try await h.post(body: Harness.chat(model: "auto", text: "hi"))
            #expect(greeting.status == 200)
            #expect(greeting.headers.first(name: "x-upstream") == "small")
            let code = try await h.post(body: Harness.chat(model: "auto", text: "Why does this python function raise an exception? def f(x): return x[0]"))
            #expect(code.status == 200)
            #expect(code.headers.first(name: "x-upstream") == "large")
            let direct = try await h.post(body: Harness.chat(model: "big", text: "hi"))
            #expect(direct.headers.first(name: "x-upstream") == "large")  // a named model is never re-routed
            let models = try await h.get("/v1/models")
            #expect(String(buffer: models.body).contains("\"auto\""))
        }
    }

    /// A trained logistic-regression classifier loaded from `weights_file` (relative to the
    /// configuration file) decides the route: each query goes where the router sends the class
    /// the loaded weights predict.
    @Test func logisticWeightsFileRoutesOverHTTP() async throws {
        let examples: [LabelledQuery] = (0..<30).flatMap { i in [
            LabelledQuery(text: "hello there friend \(i)", label: .simple),
            LabelledQuery(text: "thanks a lot, good morning \(i)", label: .simple),
            LabelledQuery(text: "fix the bug in this swift function \(i): func f() -> Int", label: .code),
            LabelledQuery(text: "refactor the python class \(i) and add a unit test", label: .code),
        ] }
        let trained = try LogisticRegressionClassifier.train(examples)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ik-router-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try trained.jsonData().write(to: directory.appendingPathComponent("router.json"))

        // A relative weights_file is read beside the configuration file loaded with `load(path:)`.
        let relative = Self.rules.replacingOccurrences(of: "classifier: rules", with: "classifier: logistic\nweights_file: router.json")
        let configPath = directory.appendingPathComponent("gateway.yaml").path
        try Self.yaml(relative).replacingOccurrences(of: "{port:small}", with: "1").replacingOccurrences(of: "{port:large}", with: "2")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let resolved = try GatewayServerConfiguration.load(path: configPath).resolve(environment: [:])
        #expect(resolved.classifier as? LogisticRegressionClassifier == trained)
        let router = try #require(resolved.routing.modelRouting?.router)

        // Over HTTP (absolute path): each query goes where the router sends the predicted class.
        let absolute = Self.rules.replacingOccurrences(
            of: "classifier: rules", with: "classifier: logistic\nweights_file: \(directory.appendingPathComponent("router.json").path)")
        try await Harness.with(mocks: ["small": .init(), "large": .init()], yaml: Self.yaml(absolute)) { h in
            var upstreams: Set<String> = []
            for text in ["hello there friend 7", "refactor the python class 3 and add a unit test"] {
                let model = router.model(for: trained.predict(text).label).model
                let response = try await h.post(body: Harness.chat(model: "auto", text: text))
                #expect(response.status == 200)
                let upstream = response.headers.first(name: "x-upstream") ?? ""
                #expect(upstream == (model == "mini" ? "small" : "large"), "\(text) → \(model)")
                upstreams.insert(upstream)
            }
            #expect(upstreams == ["small", "large"])  // the two queries really went to different models
        }
    }
}
