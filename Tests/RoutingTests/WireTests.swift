import Foundation
import Testing
@testable import Routing

@Suite struct WireTests {
    @Test func requestKeepsUnknownFieldsAndRoundTrips() throws {
        let json = """
        {"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},
         {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}],"x_meta":1}],
         "temperature":0.2,"stop":"END","max_tokens":64,"top_k":40,"stream":true,
         "stream_options":{"include_usage":true},"vendor":{"a":[1,2.5,null,true]}}
        """
        let request = try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(json.utf8))
        #expect(request.model == "gpt-4o")
        #expect(request.stop?.values == ["END"])
        #expect(request.extra["top_k"] == .integer(40))
        #expect(request.extra["vendor"]?["a"] == .array([.integer(1), .number(2.5), .null, .bool(true)]))
        #expect(request.messages[1].extra["x_meta"] == .integer(1))
        #expect(request.messages[1].text == "hi")
        #expect(request.systemPrompt == "be brief")
        #expect(request.isStreaming)
        #expect(request.streamOptions?.includeUsage == true)
        let again = try JSONDecoder().decode(
            ChatCompletionRequest.self, from: JSONEncoder().encode(request))
        #expect(again == request)
    }

    @Test func missingModelIsADecodingError() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(#"{"messages":[]}"#.utf8))
        }
    }

    @Test func responseAndChunkDecode() throws {
        let json = """
        {"id":"c1","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,
         "message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":0}},
         "service_tier":"default"}
        """
        let response = try JSONDecoder().decode(ChatCompletionResponse.self, from: Data(json.utf8))
        #expect(response.text == "ok")
        #expect(response.usage?.totalTokens == 5)
        #expect(response.usage?.extra["prompt_tokens_details"] != nil)
        #expect(response.extra["service_tier"] == .string("default"))
        let chunk = try JSONDecoder().decode(ChatCompletionChunk.self, from: Data("""
        {"id":"c1","object":"chat.completion.chunk","created":5,"model":"m",
         "choices":[{"index":0,"delta":{"content":"o"},"finish_reason":null}]}
        """.utf8))
        #expect(chunk.choices.first?.delta.content == "o")
    }

    @Test func errorBodyAcceptsNumericCode() throws {
        let body = try JSONDecoder().decode(OpenAIErrorBody.self, from: Data(#"{"error":{"message":"m","type":"t","code":429}}"#.utf8))
        #expect(body.error.code == "429")
        let error = RoutingError(.rateLimited, "slow down", retryAfter: .milliseconds(1500))
        #expect(error.httpStatus == 429)
        #expect(error.body.error.type == "rate_limit_error")
        #expect(error.retryAfterHeaderSeconds == 2)  // 1.5 s rounded up, never early
        #expect(error.retryAfterHeaderMilliseconds == 1500)
    }

    @Test func retryAfterParsing() {
        // retry-after-ms wins over Retry-After.
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: "250", retryAfter: "9", nowUnixSeconds: 0) == .milliseconds(250))
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: nil, retryAfter: " 3 ", nowUnixSeconds: 0) == .seconds(3))
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: "-1", retryAfter: "x", nowUnixSeconds: 0) == nil)
        // 1994-11-06 08:49:37 UTC = 784111777 (RFC 9110's example date; `date -d` gives the same epoch).
        let date = "Sun, 06 Nov 1994 08:49:37 GMT"
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: nil, retryAfter: date, nowUnixSeconds: 784_111_770) == .seconds(7))
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: nil, retryAfter: date, nowUnixSeconds: 784_111_800) == .zero)
        #expect(UpstreamError.parseRetryAfter(retryAfterMs: nil, retryAfter: "Sun, 06 Nov 1994 25:49:37 GMT", nowUnixSeconds: 0) == nil)
    }
}

@Suite struct RetryAfterHostileValuesTests {
    func parse(ms: String? = nil, _ value: String?, now: Double = 784_111_770) -> Duration? {
        UpstreamError.parseRetryAfter(retryAfterMs: ms, retryAfter: value, nowUnixSeconds: now)
    }

    /// RFC 9110 §5.6.7 gives one instant (1994-11-06 08:49:37 UTC = 784111777, checked with
    /// `date -u -d @784111777`) in all three forms; each is 7 s after `now`.
    @Test func allThreeHTTPDateFormsAreAccepted() {
        #expect(parse("Sun, 06 Nov 1994 08:49:37 GMT") == .seconds(7))
        #expect(parse("Sunday, 06-Nov-94 08:49:37 GMT") == .seconds(7))
        #expect(parse("Sun Nov  6 08:49:37 1994") == .seconds(7))
    }

    @Test func garbageIsIgnored() {
        for garbage in ["-1", "+3", "1e3", "0x10", "inf", "nan", "NaN", "1.", ".5", "1.2.3", "3 s", "", "   ",
                        "99999999999999999999999999999999", "86401", "Sun, 31 Feb 1994 08:49:37 GMT",
                        "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
                        "Sun, 06 Nov 1969 08:49:37 GMT", "Sun, 06 Nov 1994 08:60:37 GMT", "\u{0}", "😀"] {
            #expect(parse(garbage) == nil, "'\(garbage)' was read as a wait")
            // A garbage retry-after-ms falls back to a valid Retry-After ("86401" ms is a valid 86.4 s).
            if garbage != "86401" {
                #expect(parse(ms: garbage, "2") == .seconds(2), "retry-after-ms '\(garbage)' was not ignored")
            }
        }
        // A date more than a day ahead, or a non-finite "now", is not a wait.
        #expect(parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_777 - 86_401) == nil)
        #expect(parse("Sun, 06 Nov 1994 08:49:37 GMT", now: .nan) == nil)
    }

    @Test func numbersAtTheBounds() {
        #expect(parse(ms: "86401", nil) == .milliseconds(86_401))
        #expect(parse("0") == .zero)
        #expect(parse("86400") == .seconds(86_400))  // a day is the most honoured
        #expect(parse("1.0005") == .milliseconds(1001))  // rounded up: never retry early
        #expect(parse(ms: "0.1", nil) == .milliseconds(1))
        #expect(parse(ms: "86400000", nil) == .seconds(86_400))
        #expect(parse(ms: "86400001", "5") == .seconds(5))
    }
}

@Suite struct RequestDecodingErrorTests {
    func message(_ json: String) -> (String, String?) {
        do {
            _ = try ChatCompletionRequest(jsonBody: Array(json.utf8))
            return ("decoded", nil)
        } catch {
            #expect(error.httpStatus == 400 && error.code == .invalidRequest)
            return (error.message, error.param)
        }
    }

    @Test func messagesNameTheMemberAtFault() {
        #expect(message("{not json").0 == "the request body is not valid JSON")
        #expect(message("[1,2]").0 == "the request body must be a JSON object")
        #expect(message(#"{"messages":[]}"#) == ("'model' is required", "model"))
        #expect(message(#"{"model":"m"}"#) == ("'messages' is required", "messages"))
        #expect(message(#"{"model":"m","messages":[{"content":"x"}]}"#) == ("'messages[0].role' is required", "messages[0].role"))
        #expect(message(#"{"model":"m","messages":[],"temperature":"hot"}"#) == ("'temperature' must be a number", "temperature"))
        #expect(message(#"{"model":"m","messages":[],"stream":1}"#).0 == "'stream' must be true or false")
        #expect(message(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).0 == "decoded")
    }
}

@Suite struct UpstreamErrorFromHTTPTests {
    @Test func readsStatusWaitAndBody() {
        let azure = UpstreamError(httpStatus: 429, retryAfterMs: "1250", retryAfter: "2",
                                  body: Array(#"{"error":{"code":"429","message":"Requests exceeded the rate limit"}}"#.utf8),
                                  nowUnixSeconds: 0)
        #expect(azure.httpStatus == 429 && azure.retryAfter == .milliseconds(1250))
        #expect(azure.message == "Requests exceeded the rate limit")
        let html = UpstreamError(httpStatus: 502, retryAfterMs: nil, retryAfter: nil,
                                 body: Array("<html>bad gateway for prompt …</html>".utf8), nowUnixSeconds: 0)
        #expect(html.message == "HTTP 502" && html.body == nil && html.retryAfter == nil)
    }
}
