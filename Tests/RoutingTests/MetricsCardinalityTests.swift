import MetricsTestKit
import Testing
@testable import Routing

/// Client-controlled values (model names, keys, request ids, `user`, prompts) never become metric
/// labels: the label sets stay bounded by the configuration however many distinct requests come.
@Suite struct MetricsCardinalityTests {
    @Test func labelValuesAreBoundedByTheConfiguration() async throws {
        let metrics = TestMetrics()
        let clock = ManualClock()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
                apiKeys: [APIKey(id: "team", secret: "s")], metricsPrefix: "gw"),
            upstreams: ["a": InMemoryUpstream(id: "a", clock: clock, replying: "ok")],
            clock: clock, metricsFactory: metrics)
        let key = try gateway.authenticate(authorization: "Bearer s")
        for i in 0..<200 {
            var request = ask("question \(i)", model: i % 2 == 0 ? "gpt" : "model-\(i)")
            request.user = "user-\(i)"
            _ = try? await gateway.complete(request, key: key, requestID: "rid-\(i)")
        }
        let allowed: [String: Set<String>] = [
            "model": ["gpt", "unknown"], "api_key": ["team", "anonymous"], "backend": ["a", "none", "cache"],
        ]
        var labelSets = Set<String>()
        for counter in metrics.counters {
            for (name, value) in counter.dimensions {
                if let values = allowed[name] { #expect(values.contains(value), "\(counter.label) \(name)=\(value)") }
                #expect(!value.contains("question") && !value.hasPrefix("user-") && !value.hasPrefix("rid-") && !value.hasPrefix("model-"))
            }
            labelSets.insert(counter.label + "\(counter.dimensions)")
        }
        // 100 unknown models and 200 request ids produced a handful of series, not hundreds.
        #expect(labelSets.count < 20, "\(labelSets.count) counter series")
    }
}
