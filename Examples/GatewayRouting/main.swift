// GatewayRouting: a PTU primary, a PAYG overflow and a smaller fallback model, served by
// in-memory upstreams — one of them failing — routed by the Routing module's Gateway.
//
//   swift run GatewayRouting
//
// The PTU in East US fails every request with 503 after its 10th; the gateway retries each
// failed request on another backend at once, the East US circuit breaker opens, the PAYG
// group takes the overflow (one 429 opens its breaker for the 20 ms it asks for, and the
// smaller fallback model answers meanwhile), and every request is answered. Usage and breaker
// transitions are printed at the end.
import Routing
import Synchronization

let clock = SystemRoutingClock()
let east = InMemoryUpstream(id: "ptu-east", clock: clock) { call, _ in
    call < 10 ? .reply(text: "east answer", latency: .milliseconds(4)) : .fail(.status(503), latency: .milliseconds(2))
}
let west = InMemoryUpstream(id: "ptu-west", clock: clock, replying: "west answer", latency: .milliseconds(6))
let payg = InMemoryUpstream(id: "payg-europe", clock: clock) { call, _ in
    // Throttles once, asking for 20 ms: its breaker opens for exactly that long.
    call == 30 ? .fail(.status(429, retryAfter: .milliseconds(20))) : .reply(text: "payg answer", latency: .milliseconds(8))
}
let mini = InMemoryUpstream(id: "mini-local", clock: clock, replying: "mini answer", latency: .milliseconds(2))

let gpt = TokenPricing(inputPerMillion: 2.0, outputPerMillion: 8.0)
let configuration = GatewayConfiguration(
    models: [
        ModelRoute(
            name: "gpt-4.1",
            backends: [
                Backend(id: "ptu-east", upstreamModel: "gpt-41-ptu", priority: 0, maxConcurrentRequests: 8, region: "eastus"),
                Backend(id: "ptu-west", upstreamModel: "gpt-41-ptu", priority: 0, maxConcurrentRequests: 8, region: "westus"),
                Backend(id: "payg-europe", upstreamModel: "gpt-41", priority: 1, pricing: gpt, region: "swedencentral"),
            ],
            strategy: .roundRobin, contextWindow: 1_047_576, fallbacks: ["gpt-4.1-mini"]),
        ModelRoute(name: "gpt-4.1-mini", backends: [Backend(id: "mini-local")], contextWindow: 128_000,
                   pricing: TokenPricing(inputPerMillion: 0.4, outputPerMillion: 1.6)),
    ],
    apiKeys: [APIKey(id: "demo", secret: "sk-demo", limit: RateLimit(requestsPerMinute: 600, tokensPerMinute: 200_000))],
    retry: RetryPolicy(maxAttempts: 4, timeBudget: .seconds(10), attemptTimeout: .seconds(2)),
    breaker: CircuitBreakerConfiguration(failureThreshold: 3, interval: .seconds(10), tripDuration: .seconds(30)))

let transitions = Mutex<[String]>([])
let gateway = try Gateway(
    configuration: configuration,
    upstreams: ["ptu-east": east, "ptu-west": west, "payg-europe": payg, "mini-local": mini],
    clock: clock,
    observer: { event in
        if case .breakerTransition(let backend, let t) = event {
            transitions.withLock { $0.append("\(backend): \(t.from) → \(t.to) (\(t.reason))") }
        }
    })

let key = try gateway.authenticate(authorization: "Bearer sk-demo")
var answeredBy: [String: Int] = [:]
var failures = 0
var retried = 0
// Six waves of 24 concurrent requests: more than the two PTUs' 8 + 8 slots, so the PAYG group
// takes the overflow.
for wave in 0..<6 {
    let results = await withTaskGroup(of: Result<GatewayResult, RoutingError>.self) { group in
        for i in 0..<24 {
            group.addTask {
                let request = ChatCompletionRequest(
                    model: "gpt-4.1", messages: [.user("Question \(wave)-\(i)")], temperature: 0)
                do throws(RoutingError) { return .success(try await gateway.complete(request, key: key)) } catch { return .failure(error) }
            }
        }
        var all: [Result<GatewayResult, RoutingError>] = []
        for await result in group { all.append(result) }
        return all
    }
    for result in results {
        switch result {
        case .success(let answer):
            answeredBy[answer.backendID ?? "cache", default: 0] += 1
            if answer.attempts > 1 { retried += 1 }
        case .failure(let error):
            failures += 1
            print("request failed: \(error)")
        }
    }
}

print("Answered by backend:")
for (backend, count) in answeredBy.sorted(by: { $0.key < $1.key }) {
    print("  \(backend.padding(12))  \(count)")
}
print("Requests that needed a retry: \(retried); failed: \(failures)")
print("Breaker transitions:")
for line in transitions.withLock({ $0 }) { print("  " + line) }
print("Backend health:")
for backend in gateway.health() {
    print("  \(backend.backendID.padding(12))  breaker \(backend.breaker)")
}
let usage = gateway.usage().sum(apiKeyID: "demo")
print("Usage for key 'demo': \(usage.requests) requests, \(usage.promptTokens) prompt + \(usage.completionTokens) completion tokens, cost \(usage.cost)")

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
