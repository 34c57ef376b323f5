#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The role of a chat message author. Unknown roles decode and re-encode unchanged.
public struct ChatRole: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    public var description: String { rawValue }

    public static let system: ChatRole = "system"
    public static let developer: ChatRole = "developer"
    public static let user: ChatRole = "user"
    public static let assistant: ChatRole = "assistant"
    public static let tool: ChatRole = "tool"
}

/// Message content: either a plain string or an array of typed parts
/// (`{"type":"text","text":…}`, `{"type":"image_url",…}`, …). Parts are kept as JSON.
public enum ChatContent: Sendable, Hashable, Codable {
    case text(String)
    case parts([JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .parts(try container.decode([JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let text): try container.encode(text)
        case .parts(let parts): try container.encode(parts)
        }
    }

    /// The text of the content: the string itself, or the `text` members of text parts joined by newlines.
    public var text: String {
        switch self {
        case .text(let text): return text
        case .parts(let parts):
            return parts.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
        }
    }
}

/// One message of a chat conversation.
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: ChatRole
    public var content: ChatContent?
    public var name: String?
    /// `tool_calls` of an assistant message, kept as JSON.
    public var toolCalls: [JSONValue]?
    /// `tool_call_id` of a tool message.
    public var toolCallID: String?
    /// Members this type does not model; re-encoded unchanged.
    public var extra: [String: JSONValue]

    public init(
        role: ChatRole, content: String?, name: String? = nil,
        toolCalls: [JSONValue]? = nil, toolCallID: String? = nil, extra: [String: JSONValue] = [:]
    ) {
        self.role = role
        self.content = content.map(ChatContent.text)
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.extra = extra
    }

    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: .system, content: text) }
    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: .user, content: text) }
    public static func assistant(_ text: String) -> ChatMessage { ChatMessage(role: .assistant, content: text) }

    /// The message text (empty when there is no content).
    public var text: String { content?.text ?? "" }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case role, content, name
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        role = try container.decode(ChatRole.self, forKey: .role)
        content = try container.decodeIfPresent(ChatContent.self, forKey: .content)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        toolCalls = try container.decodeIfPresent([JSONValue].self, forKey: .toolCalls)
        toolCallID = try container.decodeIfPresent(String.self, forKey: .toolCallID)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(role, forKey: .role)
        // `content` is required by the API for most roles; encode an explicit null when absent.
        if let content { try container.encode(content, forKey: .content) } else { try container.encodeNil(forKey: .content) }
        try container.encodeIfPresent(name, forKey: .name)
        try container.encodeIfPresent(toolCalls, forKey: .toolCalls)
        try container.encodeIfPresent(toolCallID, forKey: .toolCallID)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }
}

/// `stop`: a single string or a list of strings on the wire; always a list here.
public struct StopSequences: Sendable, Hashable, Codable {
    public var values: [String]
    public init(_ values: [String]) { self.values = values }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) {
            values = [one]
        } else {
            values = try container.decode([String].self)
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }
}

/// `stream_options`.
public struct StreamOptions: Sendable, Hashable, Codable {
    /// Ask for a final chunk that carries `usage`.
    public var includeUsage: Bool?
    public init(includeUsage: Bool? = nil) { self.includeUsage = includeUsage }
    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
}

/// A `POST /v1/chat/completions` request body.
///
/// Unknown members (vendor extensions such as vLLM's `top_k`) are kept in ``extra`` and
/// re-encoded unchanged, so the gateway can pass them through to upstreams.
public struct ChatCompletionRequest: Sendable, Hashable, Codable {
    public var model: String
    public var messages: [ChatMessage]
    public var temperature: Double?
    public var topP: Double?
    public var n: Int?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var stop: StopSequences?
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var seed: Int64?
    public var user: String?
    public var tools: [JSONValue]?
    public var toolChoice: JSONValue?
    public var responseFormat: JSONValue?
    /// Members this type does not model; re-encoded unchanged.
    public var extra: [String: JSONValue]

    public init(
        model: String, messages: [ChatMessage], temperature: Double? = nil, topP: Double? = nil,
        n: Int? = nil, stream: Bool? = nil, streamOptions: StreamOptions? = nil, stop: [String]? = nil,
        maxTokens: Int? = nil, maxCompletionTokens: Int? = nil, presencePenalty: Double? = nil,
        frequencyPenalty: Double? = nil, seed: Int64? = nil, user: String? = nil,
        tools: [JSONValue]? = nil, toolChoice: JSONValue? = nil, responseFormat: JSONValue? = nil,
        extra: [String: JSONValue] = [:]
    ) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.topP = topP
        self.n = n
        self.stream = stream
        self.streamOptions = streamOptions
        self.stop = stop.map(StopSequences.init)
        self.maxTokens = maxTokens
        self.maxCompletionTokens = maxCompletionTokens
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.seed = seed
        self.user = user
        self.tools = tools
        self.toolChoice = toolChoice
        self.responseFormat = responseFormat
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, messages, temperature, n, stream, stop, seed, user, tools
        case topP = "top_p"
        case streamOptions = "stream_options"
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case presencePenalty = "presence_penalty"
        case frequencyPenalty = "frequency_penalty"
        case toolChoice = "tool_choice"
        case responseFormat = "response_format"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        messages = try c.decode([ChatMessage].self, forKey: .messages)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        stop = try c.decodeIfPresent(StopSequences.self, forKey: .stop)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        maxCompletionTokens = try c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        seed = try c.decodeIfPresent(Int64.self, forKey: .seed)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        tools = try c.decodeIfPresent([JSONValue].self, forKey: .tools)
        toolChoice = try c.decodeIfPresent(JSONValue.self, forKey: .toolChoice)
        responseFormat = try c.decodeIfPresent(JSONValue.self, forKey: .responseFormat)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(messages, forKey: .messages)
        try c.encodeIfPresent(temperature, forKey: .temperature)
        try c.encodeIfPresent(topP, forKey: .topP)
        try c.encodeIfPresent(n, forKey: .n)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(streamOptions, forKey: .streamOptions)
        try c.encodeIfPresent(stop, forKey: .stop)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try c.encodeIfPresent(maxCompletionTokens, forKey: .maxCompletionTokens)
        try c.encodeIfPresent(presencePenalty, forKey: .presencePenalty)
        try c.encodeIfPresent(frequencyPenalty, forKey: .frequencyPenalty)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encodeIfPresent(user, forKey: .user)
        try c.encodeIfPresent(tools, forKey: .tools)
        try c.encodeIfPresent(toolChoice, forKey: .toolChoice)
        try c.encodeIfPresent(responseFormat, forKey: .responseFormat)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }

    /// The completion-token cap the client asked for (`max_completion_tokens`, else `max_tokens`).
    public var requestedCompletionTokens: Int? { maxCompletionTokens ?? maxTokens }

    /// The largest `max_tokens` / `max_completion_tokens` the gateway accepts (2³⁰): far above any
    /// context window, and small enough that sums of token counts cannot overflow.
    public static let maxCompletionTokenLimit = 1 << 30

    /// Whether the client asked for server-sent-event streaming.
    public var isStreaming: Bool { stream ?? false }

    /// The concatenated text of all `system`/`developer` messages (used to partition caches).
    public var systemPrompt: String {
        messages.filter { $0.role == .system || $0.role == .developer }.map(\.text).joined(separator: "\n")
    }

    /// The text of the last `user` message (what a classifier or semantic cache looks at).
    public var lastUserText: String {
        messages.last(where: { $0.role == .user })?.text ?? ""
    }
}

/// Token usage reported by an upstream.
public struct Usage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    /// e.g. `prompt_tokens_details`, `completion_tokens_details`.
    public var extra: [String: JSONValue]

    public init(promptTokens: Int, completionTokens: Int, totalTokens: Int? = nil, extra: [String: JSONValue] = [:]) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens ?? Self.saturatingSum(promptTokens, completionTokens)
        self.extra = extra
    }

    static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (a < 0 ? .min : .max) : sum
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try c.decodeIfPresent(Int.self, forKey: .promptTokens) ?? 0
        completionTokens = try c.decodeIfPresent(Int.self, forKey: .completionTokens) ?? 0
        // Counts come from upstreams: an absurd pair must not trap the sum.
        totalTokens = try c.decodeIfPresent(Int.self, forKey: .totalTokens) ?? Self.saturatingSum(promptTokens, completionTokens)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }
}

/// A non-streaming `chat.completion` response.
public struct ChatCompletionResponse: Sendable, Hashable, Codable {
    public struct Choice: Sendable, Hashable, Codable {
        public var index: Int
        public var message: ChatMessage
        public var finishReason: String?
        public var logprobs: JSONValue?
        public var extra: [String: JSONValue]

        public init(index: Int, message: ChatMessage, finishReason: String?, logprobs: JSONValue? = nil,
                    extra: [String: JSONValue] = [:]) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
            self.logprobs = logprobs
            self.extra = extra
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case index, message, logprobs
            case finishReason = "finish_reason"
        }
        static let known = Set(CodingKeys.allCases.map(\.rawValue))

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decodeIfPresent(Int.self, forKey: .index) ?? 0
            message = try c.decode(ChatMessage.self, forKey: .message)
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
            logprobs = try c.decodeIfPresent(JSONValue.self, forKey: .logprobs)
            extra = try ExtraFields.decode(from: decoder, known: Self.known)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            if let finishReason { try c.encode(finishReason, forKey: .finishReason) } else { try c.encodeNil(forKey: .finishReason) }
            try c.encodeIfPresent(logprobs, forKey: .logprobs)
            try ExtraFields.encode(extra, to: encoder, known: Self.known)
        }
    }

    public var id: String
    public var object: String
    public var created: Int64
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
    public var systemFingerprint: String?
    public var extra: [String: JSONValue]

    public init(id: String, created: Int64, model: String, choices: [Choice], usage: Usage?,
                systemFingerprint: String? = nil, object: String = "chat.completion",
                extra: [String: JSONValue] = [:]) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.systemFingerprint = systemFingerprint
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, object, created, model, choices, usage
        case systemFingerprint = "system_fingerprint"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        object = try c.decodeIfPresent(String.self, forKey: .object) ?? "chat.completion"
        created = try c.decodeIfPresent(Int64.self, forKey: .created) ?? 0
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        choices = try c.decode([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        systemFingerprint = try c.decodeIfPresent(String.self, forKey: .systemFingerprint)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encodeIfPresent(usage, forKey: .usage)
        try c.encodeIfPresent(systemFingerprint, forKey: .systemFingerprint)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }

    /// The text of the first choice (empty when there is none).
    public var text: String { choices.first?.message.text ?? "" }
}

/// The `delta` of a streamed chunk.
public struct ChatDelta: Sendable, Hashable, Codable {
    public var role: ChatRole?
    public var content: String?
    public var toolCalls: [JSONValue]?
    public var extra: [String: JSONValue]

    public init(role: ChatRole? = nil, content: String? = nil, toolCalls: [JSONValue]? = nil,
                extra: [String: JSONValue] = [:]) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case role, content
        case toolCalls = "tool_calls"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decodeIfPresent(ChatRole.self, forKey: .role)
        content = try c.decodeIfPresent(String.self, forKey: .content)
        toolCalls = try c.decodeIfPresent([JSONValue].self, forKey: .toolCalls)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(role, forKey: .role)
        try c.encodeIfPresent(content, forKey: .content)
        try c.encodeIfPresent(toolCalls, forKey: .toolCalls)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }
}

/// One `chat.completion.chunk` of a streamed response (one SSE `data:` line).
public struct ChatCompletionChunk: Sendable, Hashable, Codable {
    public struct Choice: Sendable, Hashable, Codable {
        public var index: Int
        public var delta: ChatDelta
        public var finishReason: String?
        public var logprobs: JSONValue?
        public var extra: [String: JSONValue]

        public init(index: Int, delta: ChatDelta, finishReason: String? = nil, logprobs: JSONValue? = nil,
                    extra: [String: JSONValue] = [:]) {
            self.index = index
            self.delta = delta
            self.finishReason = finishReason
            self.logprobs = logprobs
            self.extra = extra
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case index, delta, logprobs
            case finishReason = "finish_reason"
        }
        static let known = Set(CodingKeys.allCases.map(\.rawValue))

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decodeIfPresent(Int.self, forKey: .index) ?? 0
            delta = try c.decodeIfPresent(ChatDelta.self, forKey: .delta) ?? ChatDelta()
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
            logprobs = try c.decodeIfPresent(JSONValue.self, forKey: .logprobs)
            extra = try ExtraFields.decode(from: decoder, known: Self.known)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            if let finishReason { try c.encode(finishReason, forKey: .finishReason) } else { try c.encodeNil(forKey: .finishReason) }
            try c.encodeIfPresent(logprobs, forKey: .logprobs)
            try ExtraFields.encode(extra, to: encoder, known: Self.known)
        }
    }

    public var id: String
    public var object: String
    public var created: Int64
    public var model: String
    public var choices: [Choice]
    /// Present on the final chunk when `stream_options.include_usage` was set.
    public var usage: Usage?
    public var systemFingerprint: String?
    public var extra: [String: JSONValue]

    public init(id: String, created: Int64, model: String, choices: [Choice], usage: Usage? = nil,
                systemFingerprint: String? = nil, object: String = "chat.completion.chunk",
                extra: [String: JSONValue] = [:]) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.systemFingerprint = systemFingerprint
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, object, created, model, choices, usage
        case systemFingerprint = "system_fingerprint"
    }
    static let known = Set(CodingKeys.allCases.map(\.rawValue))

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        object = try c.decodeIfPresent(String.self, forKey: .object) ?? "chat.completion.chunk"
        created = try c.decodeIfPresent(Int64.self, forKey: .created) ?? 0
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        choices = try c.decodeIfPresent([Choice].self, forKey: .choices) ?? []
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        systemFingerprint = try c.decodeIfPresent(String.self, forKey: .systemFingerprint)
        extra = try ExtraFields.decode(from: decoder, known: Self.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encodeIfPresent(usage, forKey: .usage)
        try c.encodeIfPresent(systemFingerprint, forKey: .systemFingerprint)
        try ExtraFields.encode(extra, to: encoder, known: Self.known)
    }
}

/// The OpenAI error envelope: `{"error": {"message", "type", "param", "code"}}`.
public struct OpenAIErrorBody: Sendable, Hashable, Codable {
    public struct Detail: Sendable, Hashable, Codable {
        public var message: String
        public var type: String
        public var param: String?
        /// A machine-readable code; some servers send a number, which decodes as its decimal string.
        public var code: String?

        public init(message: String, type: String, param: String? = nil, code: String? = nil) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
            param = try c.decodeLenientString(forKey: .param)
            code = try c.decodeLenientString(forKey: .code)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            if let param { try c.encode(param, forKey: .param) } else { try c.encodeNil(forKey: .param) }
            if let code { try c.encode(code, forKey: .code) } else { try c.encodeNil(forKey: .code) }
        }
    }

    public var error: Detail
    public init(error: Detail) { self.error = error }
}

/// One entry of `GET /v1/models`.
public struct ModelListEntry: Sendable, Hashable, Codable {
    public var id: String
    public var object: String
    public var created: Int64
    public var ownedBy: String
    public init(id: String, created: Int64 = 0, ownedBy: String = "inferencekit") {
        self.id = id
        self.object = "model"
        self.created = created
        self.ownedBy = ownedBy
    }
    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
    }
}

/// The `GET /v1/models` body.
public struct ModelList: Sendable, Hashable, Codable {
    public var object: String
    public var data: [ModelListEntry]
    public init(data: [ModelListEntry]) {
        self.object = "list"
        self.data = data
    }
}
