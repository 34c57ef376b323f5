// Measures the Routing module's per-request cost in process: Gateway.complete against calling the
// same in-memory upstream directly, in the same run, medians of repeated rounds.
//
//   swift run -c release routing-benchmark [requests-per-round] [rounds]
import Routing

let arguments = CommandLine.arguments.dropFirst()
let perRound = Int(arguments.first ?? "") ?? 20_000
let rounds = Int(arguments.dropFirst().first ?? "") ?? 5
let clock = SystemRoutingClock()

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Runs `body` `perRound` times per round on `tasks` concurrent tasks; returns ns per request per round.
func measure(tasks: Int = 1, _ body: @escaping @Sendable (Int) async throws -> Void) async throws -> [Double] {
    var out: [Double] = []
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in stride(from: t, to: perRound, by: tasks) { try await body(i) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        out.append(elapsed.secondsDouble * 1e9 / Double(perRound))
    }
    return out
}

let upstream = InMemoryUpstream(id: "a", clock: clock, replying: "The answer is forty-two.")
let upstreamB = InMemoryUpstream(id: "b", clock: clock, replying: "The answer is forty-two.")
let prompts = (0..<256).map { "Question number \($0): how do I configure the gateway for overflow?" }
func request(_ i: Int) -> ChatCompletionRequest {
    ChatCompletionRequest(model: "gpt", messages: [.system("You are terse."), .user(prompts[i % prompts.count])], temperature: 0)
}

func gateway(cache: Bool = false, semantic: Bool = false) throws -> Gateway {
    try Gateway(
        configuration: GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a", priority: 0), Backend(id: "b", priority: 1)])],
            apiKeys: [APIKey(id: "k", secret: "sk-bench", limit: RateLimit(requestsPerMinute: 100_000_000, tokensPerMinute: 100_000_000))],
            responseCache: cache ? .init(capacity: 10_000, ttl: .seconds(3600)) : nil,
            semanticCache: semantic ? .init(threshold: 0.99, capacityPerPartition: 64) : nil),
        upstreams: ["a": upstream, "b": upstreamB], clock: clock, embedder: semantic ? HashedNGramEmbedder() : nil)
}

let plain = try gateway()
let cached = try gateway(cache: true)
let semanticGateway = try gateway(semantic: true)
let key = try plain.authenticate(authorization: "Bearer sk-bench")

// Warm the exact cache so the cached case measures hits only.
for i in 0..<prompts.count { _ = try await cached.complete(request(i), key: key) }

var rows: [(String, [Double])] = []
rows.append(("direct upstream call (baseline)", try await measure { i in _ = try await upstream.send(request(i)) }))
rows.append(("gateway: auth'd key, rate limits, pool, breaker, usage", try await measure { i in
    _ = try await plain.complete(request(i), key: key)
}))
rows.append(("gateway: exact-cache hit", try await measure { i in _ = try await cached.complete(request(i), key: key) }))
rows.append(("gateway: semantic cache (embed + scan 64 + store)", try await measure { i in
    _ = try await semanticGateway.complete(request(i), key: key)
}))
rows.append(("direct upstream call, 8 tasks", try await measure(tasks: 8) { i in _ = try await upstream.send(request(i)) }))
rows.append(("gateway, 8 tasks", try await measure(tasks: 8) { i in _ = try await plain.complete(request(i), key: key) }))

let baseline = median(rows[0].1)
print("| case | median ns/request | min | max | vs direct call |")
print("|---|---|---|---|---|")
for (name, values) in rows {
    let m = median(values)
    print("| \(name) | \(Int(m)) | \(Int(values.min() ?? 0)) | \(Int(values.max() ?? 0)) | \(String(Int((m / baseline * 10).rounded()) / 10)).\(Int((m / baseline * 10).rounded()) % 10)× |")
}
print("\n\(perRound) requests per round, \(rounds) rounds; gateway overhead per request (median) = \(Int(median(rows[1].1) - baseline)) ns")
