// GatewayOverflow — a PTU-style primary that throttles, a PAYG-style overflow, and a region
// that dies, all on loopback: two mock upstreams, the gateway, and a client, in one process.
//
//   swift run GatewayOverflow
import AsyncHTTPClient
import GatewayServer
import Logging
import NIOCore

var quiet = Logger(label: "example")
quiet.logLevel = .error

// The "PTU" deployment throttles every other request with Retry-After: 1 s; "PAYG" always answers.
let ptu = try MockUpstream(configuration: .init(name: "ptu", faults: .init(retryAfter: .seconds(1), script: [.none, .rateLimited])), logger: quiet)
let payg = try MockUpstream(configuration: .init(name: "payg-westeurope"), logger: quiet)
let ptuPort = try await ptu.start()
let paygPort = try await payg.start()

let yaml = """
    upstreams:
      - { id: ptu-eastus, type: openai, base_url: "http://127.0.0.1:\(ptuPort)/v1" }
      - { id: payg-westeurope, type: openai, base_url: "http://127.0.0.1:\(paygPort)/v1" }
    models:
      - name: gpt-4o
        backends:
          - { upstream: ptu-eastus, priority: 0 }
          - { upstream: payg-westeurope, priority: 1 }
    """
let server = try GatewayHTTPServer.make(
    configuration: try GatewayServerConfiguration.parse(yaml), environment: [:], overridePort: 0, logger: quiet
)
let gateway = try await server.start()
print("gateway on \(gateway.baseURL)")

let client = HTTPUpstream.makeClient()
func ask(_ n: Int) async throws {
    var request = HTTPClientRequest(url: gateway.baseURL + "/v1/chat/completions")
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Request \#(n)"}]}"#))
    let response = try await client.execute(request, timeout: .seconds(10))
    _ = try await response.body.collect(upTo: 1 << 20)
    print("request \(n): HTTP \(response.status.code), answered by \(response.headers.first(name: "x-upstream") ?? "?")")
}

// The first 429 opens the PTU breaker for its Retry-After; requests overflow to PAYG meanwhile.
for n in 1...4 { try await ask(n) }
print("waiting 1.2 s for the PTU's Retry-After to pass…")
try await Task.sleep(for: .milliseconds(1200))
for n in 5...6 { try await ask(n) }

// The PAYG region dies; the PTU answers again (when it is not throttling).
await payg.stop()
print("payg-westeurope stopped")
for n in 7...8 { try await ask(n) }

var metrics = HTTPClientRequest(url: gateway.baseURL + "/metrics")
metrics.method = .GET
let text = String(buffer: try await client.execute(metrics, timeout: .seconds(10)).body.collect(upTo: 1 << 20))
print(text.split(separator: "\n").filter { $0.hasPrefix("inferencekit_usage_requests_total") }.joined(separator: "\n"))

try await client.shutdown().get()
await gateway.stop()
await ptu.stop()
