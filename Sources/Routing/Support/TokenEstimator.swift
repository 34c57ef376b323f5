/// Estimates prompt tokens before a request is sent (admission control, context-window checks).
///
/// The estimate is a byte heuristic: `ceil(utf8Bytes / bytesPerToken)` per message plus a fixed
/// overhead per message and per request (the chat template's role markers). With the default
/// 4 bytes per token it is within about ±25 % of BPE tokenizers on English prose; the gateway
/// reconciles rate-limit buckets with the upstream's reported usage afterwards, so the estimate
/// only decides admission, never the final bill.
public struct TokenEstimator: Sendable, Hashable {
    public var bytesPerToken: Double
    public var tokensPerMessage: Int
    public var tokensPerRequest: Int

    public init(bytesPerToken: Double = 4, tokensPerMessage: Int = 4, tokensPerRequest: Int = 3) {
        self.bytesPerToken = bytesPerToken.isFinite && bytesPerToken > 0 ? bytesPerToken : 4
        self.tokensPerMessage = max(0, tokensPerMessage)
        self.tokensPerRequest = max(0, tokensPerRequest)
    }

    /// Estimated tokens of a piece of text.
    public func tokens(in text: String) -> Int {
        let bytes = text.utf8.count
        return bytes == 0 ? 0 : Int((Double(bytes) / bytesPerToken).rounded(.up))
    }

    /// Estimated prompt tokens of a request (messages, names, tool calls and tool schemas).
    public func promptTokens(of request: ChatCompletionRequest) -> Int {
        var total = tokensPerRequest
        for message in request.messages {
            total += tokensPerMessage + tokens(in: message.text)
            if let name = message.name { total += tokens(in: name) }
            if let calls = message.toolCalls { total += calls.reduce(0) { $0 + tokens(in: $1.compactText) } }
        }
        if let tools = request.tools { total += tools.reduce(0) { $0 + tokens(in: $1.compactText) } }
        return total
    }

    /// Prompt estimate plus the completion tokens the request may use (`max_tokens`, else `defaultCompletion`).
    public func contextTokens(of request: ChatCompletionRequest, defaultCompletion: Int = 0) -> Int {
        promptTokens(of: request) + max(0, request.requestedCompletionTokens ?? defaultCompletion)
    }
}

extension JSONValue {
    /// A compact textual rendering (for size estimates and cache keys; keys sorted).
    var compactText: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .integer(let value): return String(value)
        case .number(let value): return String(value)
        case .string(let value): return Self.quoted(value)
        case .array(let values): return "[" + values.map(\.compactText).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.map { Self.quoted($0.key) + ":" + $0.value.compactText }
                .joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal (quotes, backslashes and control characters escaped).
    static func quoted(_ text: String) -> String {
        // Fast path: nothing to escape.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { return "\"" + text + "\"" }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
