import Routing
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

@testable import GatewayServer

@Suite struct ConfigurationTests {
    static let yaml = """
        server: { host: 0.0.0.0, port: 9000, max_body_bytes: 65536, shutdown_grace_seconds: 5 }
        upstreams:
          - { id: ptu-east, type: azure, endpoint: "https://east.example.com/", deployment: gpt-4o, api_version: "2024-10-21", api_key_env: EAST }
          - { id: payg-west, type: azure, endpoint: "https://west.example.com", deployment: gpt-4o, api_key_env: WEST }
          - { id: vllm, type: openai, base_url: "http://10.0.0.5:8000/v1", timeout_seconds: 90 }
        models:
          - name: gpt-4o
            strategy: weighted
            context_window: 128000
            fallbacks: [small]
            backends:
              - { upstream: ptu-east, priority: 0, weight: 3, max_concurrent_requests: 50, timeout_seconds: 20 }
              - { upstream: payg-west, priority: 1, pricing: { input_per_million: 2.5, output_per_million: 10 } }
          - name: small
            backends: [ { upstream: vllm, model: llama-3.1-8b } ]
        api_keys:
          - { id: team-a, key_env: TEAM_A, models: [gpt-4o], limits: { requests_per_minute: 60, tokens_per_minute: 100000, quota: { period_seconds: 86400, max_tokens: 5000000 } } }
        model_limits: { gpt-4o: { tokens_per_minute: 1000000 } }
        retry: { max_attempts: 3, time_budget_seconds: 30, retryable_statuses: [429, 503], stream_idle_timeout_seconds: 90 }
        circuit_breaker: { failure_threshold: 3, trip_seconds: 15 }
        response_cache: { capacity: 100, ttl_seconds: 60 }
        """
    static let environment = ["EAST": "east-secret-key", "WEST": "west-secret-key", "TEAM_A": "sk-team-a-0123456789"]

    @Test func yamlResolvesToRoutingConfiguration() throws {
        let resolved = try GatewayServerConfiguration.parse(Self.yaml).resolve(environment: Self.environment)
        #expect(resolved.server.port == 9000 && resolved.server.maxBodyBytes == 65536)
        let routing = resolved.routing
        #expect(routing.models.map(\.name) == ["gpt-4o", "small"])
        let gpt = routing.models[0]
        #expect(gpt.strategy == .weighted && gpt.contextWindow == 128000 && gpt.fallbacks == ["small"])
        #expect(gpt.backends.map(\.id) == ["ptu-east", "payg-west"])
        #expect(gpt.backends[0].priority == 0 && gpt.backends[0].weight == 3 && gpt.backends[0].maxConcurrentRequests == 50)
        #expect(gpt.backends[1].pricing == TokenPricing(inputPerMillion: 2.5, outputPerMillion: 10))
        #expect(routing.models[1].backends[0].upstreamModel == "llama-3.1-8b")
        // Attempt timeouts: the backend's own, else its upstream's, else none (the retry policy's).
        #expect(gpt.backends[0].attemptTimeout == .seconds(20))
        #expect(gpt.backends[1].attemptTimeout == nil)
        #expect(routing.models[1].backends[0].attemptTimeout == .seconds(90))
        #expect(routing.apiKeys?.first?.secret == "sk-team-a-0123456789")
        #expect(routing.apiKeys?.first?.limit?.quota?.period == .seconds(86400))
        #expect(routing.modelLimits["gpt-4o"]?.tokensPerMinute == 1_000_000)
        #expect(routing.retry.maxAttempts == 3 && routing.retry.timeBudget == .seconds(30) && routing.retry.retryableStatuses == [429, 503])
        #expect(routing.retry.streamIdleTimeout == .seconds(90))
        #expect(routing.breaker.failureThreshold == 3 && routing.breaker.tripDuration == .seconds(15))
        #expect(routing.responseCache?.capacity == 100)
        #expect(resolved.upstreams["ptu-east"]?.endpoint.chatCompletionsURL == "https://east.example.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
        #expect(resolved.upstreams["vllm"]?.endpoint.chatCompletionsURL == "http://10.0.0.5:8000/v1/chat/completions")
        #expect(resolved.upstreams["ptu-east"]?.apiKey == "east-secret-key")
        #expect(resolved.upstreams["vllm"]?.apiKey == nil)
    }

    @Test func jsonIsAccepted() throws {
        let json = """
            {"upstreams": [{"id": "a", "type": "openai", "base_url": "http://127.0.0.1:1/v1"}],
             "models": [{"name": "m", "backends": [{"upstream": "a"}]}]}
            """
        let resolved = try GatewayServerConfiguration.parse(json).resolve(environment: [:])
        #expect(resolved.routing.models.first?.name == "m")
        #expect(resolved.routing.apiKeys == nil)  // no api_keys section: authentication off
        #expect(resolved.server.port == 8080)
    }

    func error(_ yaml: String, environment: [String: String] = environment) -> GatewayError? {
        do {
            _ = try GatewayServerConfiguration.parse(yaml).resolve(environment: environment)
            return nil
        } catch let error as GatewayError {
            return error
        } catch {
            return nil
        }
    }

    @Test func mistakesAreNamedErrors() throws {
        let typo = error(Self.yaml.replacingOccurrences(of: "max_body_bytes", with: "max_body_byte"))
        #expect(typo?.code == .invalidConfiguration)
        #expect(typo?.message.contains("max_body_byte") == true, "\(String(describing: typo))")

        let missingEnv = error(Self.yaml, environment: ["EAST": "x"])
        #expect(missingEnv?.message.contains("WEST") == true)

        let badRef = error(Self.yaml.replacingOccurrences(of: "{ upstream: vllm,", with: "{ upstream: vlm,"))
        #expect(badRef?.message.contains("vlm") == true)

        let badFallback = error(Self.yaml.replacingOccurrences(of: "fallbacks: [small]", with: "fallbacks: [tiny]"))
        #expect(badFallback?.message.contains("tiny") == true)

        let badStrategy = error(Self.yaml.replacingOccurrences(of: "strategy: weighted", with: "strategy: random"))
        #expect(badStrategy?.message.contains("strategy") == true)

        let missingModels = error("upstreams: []")
        #expect(missingModels?.message.contains("models") == true)

        let badPort = error(Self.yaml.replacingOccurrences(of: "port: 9000", with: "port: 99999"))
        #expect(badPort?.message.contains("port") == true)

        let negative = error(Self.yaml.replacingOccurrences(of: "trip_seconds: 15", with: "trip_seconds: -1"))
        #expect(negative?.message.contains("trip_seconds") == true)

        let wrongType = error(Self.yaml.replacingOccurrences(of: "port: 9000", with: "port: nine"))
        #expect(wrongType?.code == .invalidConfiguration)

        let shortKey = error(Self.yaml, environment: Self.environment.merging(["TEAM_A": "short"]) { $1 })
        #expect(shortKey?.message.contains("team-a") == true)
        #expect(shortKey?.message.contains("short") == false)  // never echoes a secret
    }

    @Test func sharedUpstreamNeedsDistinctBackendIDs() throws {
        let twice = """
            upstreams: [ { id: a, base_url: "http://127.0.0.1:1/v1" } ]
            models:
              - { name: m1, backends: [ { upstream: a } ] }
              - { name: m2, backends: [ { upstream: a } ] }
            """
        #expect(error(twice)?.message.contains("explicit 'id'") == true)
        let fixed = twice.replacingOccurrences(of: "name: m2, backends: [ { upstream: a } ]", with: "name: m2, backends: [ { upstream: a, id: a-m2 } ]")
        let resolved = try GatewayServerConfiguration.parse(fixed).resolve(environment: [:])
        #expect(resolved.backendUpstreams == ["a": "a", "a-m2": "a"])
    }

    @Test func cookbookConfigurationResolves() async throws {
        // The YAML of the "Gateway cookbook" article must stay a valid configuration.
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/GatewayServer/GatewayServer.docc/GatewayCookbook.md").path
        let article = try String(contentsOfFile: path, encoding: .utf8)
        let afterHeading = try #require(article.range(of: "### The configuration")).upperBound
        let start = try #require(article.range(of: "```yaml\n", range: afterHeading..<article.endIndex)).upperBound
        let end = try #require(article.range(of: "```", range: start..<article.endIndex)).lowerBound
        let environment = Dictionary(uniqueKeysWithValues: ["AOAI_EASTUS_KEY", "AOAI_WESTEUROPE_KEY", "VLLM_KEY", "SUPPORT_BOT_KEY", "BATCH_JOBS_KEY"].map { ($0, "secret-value-for-\($0)") })
        let resolved = try GatewayServerConfiguration.parse(String(article[start..<end])).resolve(environment: environment)
        #expect(resolved.routing.models.map(\.name) == ["gpt-4o", "gpt-4o-mini", "llama-3.1-8b"])
        #expect(resolved.routing.models[0].backends.map(\.priority) == [0, 1, 2])
        #expect(resolved.routing.models[0].backends[2].attemptTimeout == .seconds(45))
        #expect(resolved.routing.apiKeys?.count == 2)
        // Model routing: PTU has no price, so gpt-4o is ranked at its pay-as-you-go list price.
        let router = try #require(resolved.routing.modelRouting?.router)
        #expect(router.model(for: .simple).model == "gpt-4o-mini" && router.model(for: .code).model == "gpt-4o")
        #expect(router.models.first { $0.model == "gpt-4o" }?.pricing == TokenPricing(inputPerMillion: 2.5, outputPerMillion: 10))
        // And the gateway accepts it (validation of the Routing side too).
        let server = try GatewayHTTPServer.make(configuration: try GatewayServerConfiguration.parse(String(article[start..<end])), environment: environment)
        try await server.shutdownUnstarted()
    }
}
