import MetricsTestKit
import Testing
@testable import Routing

@Suite struct MetricsTests {
    @Test func countersPerKeyModelAndBackend() async throws {
        let metrics = TestMetrics()
        let clock = ManualClock()
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b")])],
                apiKeys: [APIKey(id: "team", secret: "s")], metricsPrefix: "gw"),
            upstreams: [
                "a": InMemoryUpstream(id: "a", clock: clock) { _, _ in .fail(.status(503)) },
                "b": InMemoryUpstream(id: "b", clock: clock) { _, _ in
                    .reply(text: "ok", usage: Usage(promptTokens: 10, completionTokens: 5))
                },
            ],
            clock: clock, metricsFactory: metrics)
        let key = try gateway.authenticate(authorization: "Bearer s")
        _ = try await gateway.complete(ask("x"), key: key)
        _ = try await gateway.complete(ask("y"), key: key)  // round-robin: a (503) then b, or b directly
        let labels = [("api_key", "team"), ("model", "gpt"), ("backend", "b")]
        #expect(try metrics.expectCounter("gw_requests_total", labels + [("outcome", "ok")]).totalValue == 2)
        #expect(try metrics.expectCounter("gw_prompt_tokens_total", labels).totalValue == 20)
        #expect(try metrics.expectCounter("gw_completion_tokens_total", labels).totalValue == 10)
        #expect(try metrics.expectCounter("gw_upstream_errors_total", [("backend", "a"), ("kind", "5xx")]).totalValue >= 1)
        #expect(try metrics.expectCounter("gw_retries_total", [("model", "gpt"), ("kind", "switch")]).totalValue >= 1)
        // No label carries a secret or prompt text.
        for counter in metrics.counters {
            for (_, value) in counter.dimensions { #expect(value != "s" && value != "x" && value != "y") }
        }
    }
}
