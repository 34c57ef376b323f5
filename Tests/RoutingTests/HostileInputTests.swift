import Testing
@testable import Routing

/// Hostile and malformed input: request bodies from clients, usage counts and headers from upstreams.
/// The invariant everywhere: a typed ``RoutingError`` (400 for bodies) or a safe answer, never a trap.
@Suite struct HostileInputTests {
    /// Valid bodies the mutator starts from (every modelled member appears in at least one).
    static let seeds: [String] = [
        #"{"model":"gpt","messages":[{"role":"user","content":"hello"}]}"#,
        #"{"model":"gpt","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":0.5,"top_p":0.9,"n":1,"max_tokens":16,"stop":["\n"],"seed":7}"#,
        #"{"model":"gpt","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"42"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto"}"#,
        #"{"model":"gpt","messages":[{"role":"user","content":"x","name":"bob"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":8,"presence_penalty":0,"frequency_penalty":1.5,"user":"u1","response_format":{"type":"json_object"},"top_k":40}"#,
    ]

    /// Fragments spliced into bodies: JSON syntax, extreme numbers, wrong types, escapes, deep nesting.
    static let fragments: [String] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "false", "-0", "1e309", "-1e309", "NaN",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1.7976931348623157e308",
        "4.9e-324", "0.0000001", "\"\\u0000\"", "\"\\ud800\"", "\"\\uDFFF\\uD800\"", "\"é😀\"", "\u{0}", "\u{FEFF}",
        "{\"role\":1}", "[{}]", "[[[[[[[[[[", "]]]]]]]]]]", "\"max_tokens\":9223372036854775807",
        "\"n\":-1", "\"temperature\":1e308", "\"messages\":{}", "\"model\":[]", "\"stop\":[1]",
        String(repeating: "[", count: 600), String(repeating: "{\"a\":", count: 300),
    ]

    static let members = ["model", "messages", "role", "content", "temperature", "top_p", "n", "max_tokens",
                          "max_completion_tokens", "stop", "stream", "stream_options", "include_usage", "seed", "tools",
                          "tool_calls", "tool_choice", "name", "presence_penalty", "frequency_penalty", "user", "type", "text"]
    static let values = ["null", "true", "0", "-1", "1", "128", "129", "1e308", "-1e308", "2.5", "1e-320",
                         "9223372036854775807", "-9223372036854775808", "\"\"", "\"x\"", "\"user\"", "[]", "{}",
                         "[1,\"a\"]", "{\"a\":[]}", "[{\"role\":\"user\",\"content\":\"hi\"}]", "\"\\u0000\""]

    /// A structural mutation that keeps the JSON valid: a known member with an arbitrary value,
    /// inserted at the start of a random object (a duplicate of an existing member, or a new one).
    static func insertMember(_ bytes: [UInt8], _ random: inout SplitMixGenerator) -> [UInt8] {
        let objects = bytes.indices.filter { bytes[$0] == UInt8(ascii: "{") }
        guard !objects.isEmpty else { return bytes }
        let at = objects[Int(random.next() % UInt64(objects.count))] + 1
        let member = members[Int(random.next() % UInt64(members.count))]
        let value = values[Int(random.next() % UInt64(values.count))]
        var out = bytes
        out.insert(contentsOf: Array("\"\(member)\":\(value),".utf8), at: at)
        return out
    }

    /// Applies one random mutation: delete a span, insert a fragment, duplicate a span, flip a byte, or truncate.
    static func mutate(_ bytes: [UInt8], _ random: inout SplitMixGenerator) -> [UInt8] {
        var out = bytes
        func index(_ upper: Int) -> Int { upper <= 0 ? 0 : Int(random.next() % UInt64(upper)) }
        switch random.next() % 5 {
        case 0 where !out.isEmpty:
            let start = index(out.count)
            let end = min(out.count, start + 1 + index(8))
            out.removeSubrange(start..<end)
        case 1:
            let fragment = Array(fragments[index(fragments.count)].utf8)
            out.insert(contentsOf: fragment, at: index(out.count + 1))
        case 2 where !out.isEmpty:
            let start = index(out.count)
            let end = min(out.count, start + 1 + index(16))
            out.insert(contentsOf: out[start..<end], at: index(out.count + 1))
        case 3 where !out.isEmpty:
            out[index(out.count)] = UInt8(truncatingIfNeeded: random.next())
        default:
            out.removeLast(index(out.count + 1) / 2)
        }
        return out
    }

    /// Thousands of mutated bodies (a third byte-level, two thirds structural): each decodes or fails with a 400 `invalid_request` whose message
    /// is short and does not echo the body; decoded ones go through the gateway and get an answer or
    /// a typed error with a request id.
    @Test(arguments: [11, 12] as [UInt64])
    func mutatedRequestBodiesNeverCrash(seed: UInt64) async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")], contextWindow: 4096)],
            defaultKeyLimit: RateLimit(requestsPerMinute: 100_000, tokensPerMinute: 10_000_000),
            retry: .none))
        var random = SplitMixGenerator(seed: seed)
        var decoded = 0, rejected = 0
        for i in 0..<1500 {
            var body = Array(Self.seeds[i % Self.seeds.count].utf8)
            if i % 3 == 0 {
                for _ in 0..<(1 + Int(random.next() % 3)) { body = Self.mutate(body, &random) }
            } else {
                for _ in 0..<(1 + Int(random.next() % 2)) { body = Self.insertMember(body, &random) }
            }
            let request: ChatCompletionRequest
            do {
                request = try ChatCompletionRequest(jsonBody: body)
            } catch {
                rejected += 1
                #expect(error.httpStatus == 400 && error.code == .invalidRequest)
                #expect(!error.message.isEmpty && error.message.utf8.count < 300)
                continue
            }
            decoded += 1
            do {
                let result = try await gateway.complete(request, key: APIKey(id: "k", secret: "s"))
                #expect(!result.requestID.isEmpty)
            } catch {
                #expect(error.requestID != nil, "untyped answer for a decoded body: \(error)")
                #expect((400..<600).contains(error.httpStatus))
            }
        }
        // The mutator must exercise both sides, or the test proves nothing.
        #expect(decoded > 100 && rejected > 100, "decoded \(decoded), rejected \(rejected)")
    }

    /// Deeply nested JSON in a pass-through member must not overflow the stack.
    @Test func deeplyNestedExtraMembersAreRejectedOrKept() {
        for depth in [100, 1000, 10_000, 100_000] {
            let body = #"{"model":"gpt","messages":[{"role":"user","content":"x"}],"v":"#
                + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
            do {
                _ = try ChatCompletionRequest(jsonBody: Array(body.utf8))
            } catch {
                #expect(error.httpStatus == 400)
            }
        }
    }

    /// `max_tokens` near `Int.max` used to overflow `prompt + max_tokens` in admission (a trap).
    @Test func hugeMaxTokensIsA400() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")], contextWindow: 4096)]))
        for (member, value) in [("max_tokens", Int.max), ("max_completion_tokens", Int.max - 3), ("max_tokens", (1 << 30) + 1)] {
            let body = #"{"model":"gpt","messages":[{"role":"user","content":"x"}],"\#(member)":\#(value)}"#
            let request = try ChatCompletionRequest(jsonBody: Array(body.utf8))
            let error = await routingError { _ = try await gateway.complete(request) }
            #expect(error?.httpStatus == 400)
            #expect(error?.param == member)
        }
        // The bound itself is accepted (and then too large for the 4,096-token window: 400, not a trap).
        let error = await routingError { _ = try await gateway.complete(ask("x", maxTokens: 1 << 30)) }
        #expect(error?.code == .contextLengthExceeded)
    }

    /// An upstream reporting absurd usage cannot trap the accounting, and the key's limit is not
    /// locked out for more than the bounded debt (one window).
    @Test func absurdUpstreamUsageIsClamped() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok", usage: Usage(promptTokens: Int.max, completionTokens: Int.max)) }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
            defaultKeyLimit: RateLimit(tokensPerMinute: 1000)))
        let key = APIKey(id: "k", secret: "s")
        _ = try await gateway.complete(ask("hi"), key: key)
        let usage = gateway.usage().sum()
        #expect(usage.promptTokens == 1 << 32 && usage.completionTokens == 1 << 32)
        let error = await routingError { _ = try await gateway.complete(ask("hi"), key: key) }
        // Debt is capped at one window (1,000 tokens): positive again after 2 windows at most.
        #expect(error?.code == .rateLimited)
        #expect(error?.retryAfter.map { $0 <= .seconds(120) } == true)
    }

    @Test func tokenBucketSaturatesInsteadOfTrapping() throws {
        var bucket = try TokenBucket(limit: 1000, per: .seconds(60), now: .origin)
        bucket.take(.max, now: .origin)
        let inDebt = bucket.available(now: .origin)
        #expect(inDebt == -1000)  // debt bounded to one window
        bucket.give(.max, now: .origin)
        let full = bucket.available(now: .origin)
        #expect(full == 1000)  // never above the capacity
        let wait = bucket.timeUntil(tokens: .max, now: .origin)
        #expect(wait == .zero)  // clamped to the limit, which is there
        // limit × window that would overflow the 4-capacity headroom is a configuration error.
        #expect(throws: RoutingError.self) { try TokenBucket(limit: 100_000_000, per: .seconds(86_400), now: .origin) }
    }
}
