/// Settings of the exact-match response cache.
public struct ResponseCacheConfiguration: Sendable, Hashable {
    /// Entries kept (least recently used are evicted first).
    public var capacity: Int
    /// How long an entry is served.
    public var ttl: Duration
    /// Requests with a sampling temperature above this are not cached (nil: no limit). A cached
    /// answer to a sampled request is one sample replayed — fine for FAQs, wrong for creative use.
    public var maxTemperature: Double?
    /// Keep each API key's entries apart (a key never sees another key's answers).
    public var partitionByKey: Bool
    /// The largest entry stored, request key plus response, in bytes (about: text and JSON members
    /// counted as UTF-8): memory stays below `capacity × maxEntryBytes` whatever clients send.
    public var maxEntryBytes: Int

    /// Defaults: 1,000 entries of at most 256 KiB (so at most 256 MiB), 5 minutes, any
    /// temperature, partitioned by key.
    public init(capacity: Int = 1000, ttl: Duration = .seconds(300), maxTemperature: Double? = nil,
                partitionByKey: Bool = true, maxEntryBytes: Int = 256 * 1024) {
        self.maxEntryBytes = maxEntryBytes
        self.capacity = capacity
        self.ttl = ttl
        self.maxTemperature = maxTemperature
        self.partitionByKey = partitionByKey
    }
}

/// An exact-match cache of complete responses: LRU with a TTL, keyed by the normalised request.
///
/// The key covers everything that changes the answer (model, messages, sampling and tool
/// settings, unknown vendor members) and nothing that does not (`stream`, `stream_options`,
/// `user`), written as canonical JSON with sorted members, so member order and whitespace in
/// the client's JSON do not matter. Keys are compared in full, never by hash alone.
public struct ResponseCache: Sendable {
    struct Entry: Sendable {
        var response: ChatCompletionResponse
        var expires: RoutingInstant
    }

    public let configuration: ResponseCacheConfiguration
    private var store: LRUStore<String, Entry>

    public init(configuration: ResponseCacheConfiguration = .init()) throws(RoutingError) {
        guard configuration.capacity >= 1 else {
            throw RoutingError(.invalidConfiguration, "response cache capacity must be ≥ 1")
        }
        guard configuration.ttl > .zero else {
            throw RoutingError(.invalidConfiguration, "response cache ttl must be positive")
        }
        guard configuration.maxEntryBytes >= 1 else {
            throw RoutingError(.invalidConfiguration, "response cache maxEntryBytes must be ≥ 1")
        }
        self.configuration = configuration
        self.store = LRUStore(capacity: configuration.capacity)
    }

    public var count: Int { store.count }

    /// The cache key of a request, or nil when the request must not be cached.
    public func key(for request: ChatCompletionRequest, apiKeyID: String?) -> String? {
        if let max = configuration.maxTemperature, (request.temperature ?? 1) > max { return nil }
        let partition = configuration.partitionByKey ? (apiKeyID ?? "") : ""
        let key = partition + "\u{1}" + request.canonicalText
        // A key alone over the entry limit can never be stored: skip the lookup too.
        return key.utf8.count <= configuration.maxEntryBytes ? key : nil
    }

    /// A live entry, or nil (expired entries are dropped).
    public mutating func lookup(_ key: String, now: RoutingInstant) -> ChatCompletionResponse? {
        guard let entry = store.get(key) else { return nil }
        guard now < entry.expires else {
            store.remove(key)
            return nil
        }
        return entry.response
    }

    /// Stores a complete response (responses without choices, or cut off by length, are not stored).
    public mutating func store(_ response: ChatCompletionResponse, for key: String, now: RoutingInstant) {
        guard response.isCacheable, key.utf8.count + response.approximateBytes <= configuration.maxEntryBytes else { return }
        store.set(key, Entry(response: response, expires: now + configuration.ttl))
    }
}

extension ChatCompletionResponse {
    /// About the memory a cached copy holds: message text, tool calls and unknown members as
    /// UTF-8, plus a fixed allowance for the rest.
    var approximateBytes: Int {
        choices.reduce(256 + id.utf8.count + model.utf8.count) { total, choice in
            total + 64 + choice.message.text.utf8.count
                + (choice.message.toolCalls.map { JSONValue.array($0).compactText.utf8.count } ?? 0)
                + (choice.logprobs.map { $0.compactText.utf8.count } ?? 0)
                + (choice.extra.isEmpty ? 0 : JSONValue.object(choice.extra).compactText.utf8.count)
        } + (extra.isEmpty ? 0 : JSONValue.object(extra).compactText.utf8.count)
    }

    var isCacheable: Bool {
        !choices.isEmpty && choices.allSatisfy { $0.finishReason == nil || $0.finishReason == "stop" }
    }
}

extension ChatCompletionRequest {
    /// Canonical JSON of everything that changes the answer.
    var canonicalText: String {
        var members: [String: JSONValue] = extra
        members["model"] = .string(model)
        members["messages"] = .array(messages.map(\.canonicalValue))
        if let temperature { members["temperature"] = .number(temperature) }
        if let topP { members["top_p"] = .number(topP) }
        if let n { members["n"] = .integer(Int64(n)) }
        if let stop { members["stop"] = .array(stop.values.map(JSONValue.string)) }
        if let maxTokens { members["max_tokens"] = .integer(Int64(maxTokens)) }
        if let maxCompletionTokens { members["max_completion_tokens"] = .integer(Int64(maxCompletionTokens)) }
        if let presencePenalty { members["presence_penalty"] = .number(presencePenalty) }
        if let frequencyPenalty { members["frequency_penalty"] = .number(frequencyPenalty) }
        if let seed { members["seed"] = .integer(seed) }
        if let tools { members["tools"] = .array(tools) }
        if let toolChoice { members["tool_choice"] = toolChoice }
        if let responseFormat { members["response_format"] = responseFormat }
        return JSONValue.object(members).compactText
    }
}

extension ChatMessage {
    var canonicalValue: JSONValue {
        var members = extra
        members["role"] = .string(role.rawValue)
        switch content {
        case .text(let text): members["content"] = .string(text)
        case .parts(let parts):
            // A single text part means the same as a plain string.
            if parts.count == 1, let text = parts[0]["text"]?.stringValue, parts[0]["type"]?.stringValue == "text" {
                members["content"] = .string(text)
            } else {
                members["content"] = .array(parts)
            }
        case nil: members["content"] = .null
        }
        if let name { members["name"] = .string(name) }
        if let toolCalls { members["tool_calls"] = .array(toolCalls) }
        if let toolCallID { members["tool_call_id"] = .string(toolCallID) }
        return .object(members)
    }
}
