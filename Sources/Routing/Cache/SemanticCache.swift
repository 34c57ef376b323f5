/// Settings of the semantic cache.
public struct SemanticCacheConfiguration: Sendable, Hashable {
    /// Serve a cached answer when cosine similarity ≥ this. See "Semantic cache thresholds".
    public var threshold: Double
    public var ttl: Duration
    /// Entries per partition (oldest-used evicted first).
    public var capacityPerPartition: Int
    /// Requests sampled above this temperature bypass the cache (they ask for variety).
    public var maxTemperature: Double
    /// Partition by API key as well as by model and system prompt.
    public var partitionByKey: Bool
    /// Partitions kept at most (the least recently used partition is dropped whole): every distinct
    /// system prompt makes a partition, so this bounds memory when prompts vary.
    public var maxPartitions: Int
    /// The largest response stored, and the largest system prompt a partition is made for, in
    /// bytes (about, as UTF-8); bigger ones bypass the cache, so memory stays bounded by
    /// `maxPartitions × (capacityPerPartition × (maxEntryBytes + 4 × dimension) + maxEntryBytes)`.
    public var maxEntryBytes: Int

    /// Defaults: threshold 0.9, 10 minutes, 500 entries per partition, 1,000 partitions,
    /// temperature ≤ 0.5, per key, entries up to 64 KiB.
    public init(threshold: Double = 0.9, ttl: Duration = .seconds(600), capacityPerPartition: Int = 500,
                maxTemperature: Double = 0.5, partitionByKey: Bool = true, maxPartitions: Int = 1000,
                maxEntryBytes: Int = 64 * 1024) {
        self.maxEntryBytes = maxEntryBytes
        self.threshold = threshold
        self.ttl = ttl
        self.capacityPerPartition = capacityPerPartition
        self.maxTemperature = maxTemperature
        self.partitionByKey = partitionByKey
        self.maxPartitions = maxPartitions
    }
}

/// Where a semantic-cache entry lives: answers are only shared within the same model, system
/// prompt and (by default) API key.
public struct SemanticPartition: Sendable, Hashable {
    public var model: String
    public var apiKeyID: String
    public var systemPrompt: String
}

/// A semantic cache: returns a stored answer to a *similar* question (cosine similarity of
/// embeddings at or above a threshold), within a partition. Linear scan per partition — meant
/// for hundreds to a few thousand entries per partition, not millions.
public struct SemanticCache: Sendable {
    struct Entry: Sendable {
        var vector: [Float]
        var response: ChatCompletionResponse
        var expires: RoutingInstant
        var lastUsed: RoutingInstant
    }

    public let configuration: SemanticCacheConfiguration
    private var partitions: [SemanticPartition: [Entry]] = [:]
    private var partitionUse: [SemanticPartition: RoutingInstant] = [:]

    public init(configuration: SemanticCacheConfiguration = .init()) throws(RoutingError) {
        guard configuration.threshold.isFinite, configuration.threshold > 0, configuration.threshold <= 1 else {
            throw RoutingError(.invalidConfiguration, "semantic cache threshold must be in (0, 1] (got \(configuration.threshold))")
        }
        guard configuration.capacityPerPartition >= 1, configuration.maxPartitions >= 1, configuration.ttl > .zero,
              configuration.maxEntryBytes >= 1 else {
            throw RoutingError(.invalidConfiguration, "semantic cache capacities and ttl must be positive")
        }
        self.configuration = configuration
    }

    /// The partition and the text to embed, or nil when the request must bypass the cache
    /// (sampling temperature too high, tools, several choices, or nothing to embed).
    public func plan(for request: ChatCompletionRequest, apiKeyID: String?) -> (SemanticPartition, String)? {
        if (request.temperature ?? 1) > configuration.maxTemperature { return nil }
        if request.tools != nil || (request.n ?? 1) != 1 { return nil }
        let text = request.messages.filter { $0.role != .system && $0.role != .developer }
            .map { $0.role.rawValue + ": " + $0.text }.joined(separator: "\n")
        guard !text.isEmpty, request.systemPrompt.utf8.count <= configuration.maxEntryBytes else { return nil }
        let partition = SemanticPartition(
            model: request.model, apiKeyID: configuration.partitionByKey ? (apiKeyID ?? "") : "",
            systemPrompt: request.systemPrompt)
        return (partition, text)
    }

    /// The best live entry with similarity ≥ threshold, with its similarity.
    public mutating func lookup(_ partition: SemanticPartition, vector: [Float], now: RoutingInstant)
        -> (response: ChatCompletionResponse, similarity: Double)?
    {
        guard var entries = partitions[partition] else { return nil }
        entries.removeAll { $0.expires <= now }
        let query = normalized(vector)
        // A vector that cannot be normalised (zero, NaN, overflowing) matches nothing.
        guard Self.isUnit(query) else { return nil }
        var best: (Int, Double)?
        for (i, entry) in entries.enumerated() {
            // Both unit length: the dot product is the cosine.
            let similarity = unitDot(entry.vector, query)
            if similarity >= configuration.threshold, similarity > (best?.1 ?? -1) { best = (i, similarity) }
        }
        partitionUse[partition] = now
        defer {
            partitions[partition] = entries.isEmpty ? nil : entries
            if entries.isEmpty { partitionUse[partition] = nil }
        }
        guard let (index, similarity) = best else { return nil }
        entries[index].lastUsed = now
        return (entries[index].response, similarity)
    }

    public mutating func store(_ response: ChatCompletionResponse, partition: SemanticPartition, vector: [Float],
                               now: RoutingInstant) {
        let unit = normalized(vector)
        guard response.isCacheable, Self.isUnit(unit),
              response.approximateBytes <= configuration.maxEntryBytes,
              partition.systemPrompt.utf8.count <= configuration.maxEntryBytes else { return }
        if partitions[partition] == nil, partitions.count >= configuration.maxPartitions,
           let stalest = partitionUse.min(by: { $0.value < $1.value })?.key
        {
            partitions[stalest] = nil
            partitionUse[stalest] = nil
        }
        var entries = partitions[partition] ?? []
        entries.removeAll { $0.expires <= now }
        partitionUse[partition] = now
        if entries.count >= configuration.capacityPerPartition,
           let oldest = entries.indices.min(by: { entries[$0].lastUsed < entries[$1].lastUsed })
        {
            entries.remove(at: oldest)
        }
        entries.append(Entry(vector: unit, response: response, expires: now + configuration.ttl, lastUsed: now))
        partitions[partition] = entries
    }

    /// Whether `v` has unit length (normalisation worked: not zero, NaN or overflowing).
    static func isUnit(_ v: [Float]) -> Bool {
        var sum: Double = 0
        for x in v { sum += Double(x) * Double(x) }
        return abs(sum - 1) < 1e-3
    }

    public var count: Int { partitions.values.reduce(0) { $0 + $1.count } }
    public var partitionCount: Int { partitions.count }
}
