/// What an admission would need right now (a read-only query).
public struct AdmissionCheck: Sendable, Hashable {
    /// Blocks the admission would take from the pool (after prefix-cache hits).
    public var blocksNeeded: Int
    /// Blocks admission may use now: available blocks minus the watermark (never negative).
    public var blocksAvailable: Int
    /// Prompt tokens that would be served from cached blocks.
    public var cachedTokens: Int

    /// Whether the admission would succeed.
    public var fits: Bool { blocksNeeded <= blocksAvailable }
}

/// The admission interface shared by the paged ``KVBlockManager`` and the
/// ``ContiguousKVAllocator`` baseline, so a scheduler or simulator can drive either.
///
/// Running out of memory is an outcome (``AdmissionOutcome/wouldExceedCapacity(blocksNeeded:available:)``,
/// ``AppendOutcome/needsPreemption(blocksNeeded:available:)``); misuse throws ``KVPagingError``.
/// A failed operation changes nothing.
public protocol KVCacheAllocator: Sendable {
    /// The configuration the allocator was created with.
    var configuration: KVCacheConfiguration { get }

    /// What admitting `prompt` would need now, including the watermark; changes nothing.
    func admissionCheck(_ prompt: KVPrompt) -> AdmissionCheck

    /// Admits a new sequence holding its prompt.
    mutating func admit(_ id: SequenceID, prompt: KVPrompt) throws(KVPagingError) -> AdmissionOutcome

    /// Blocks an append of `count` tokens to `id` would take from the pool now.
    func blocksNeeded(toAppend count: Int, to id: SequenceID) throws(KVPagingError) -> Int

    /// Appends `count` token slots (generated tokens whose ids need not be known).
    mutating func appendSlots(_ id: SequenceID, count: Int) throws(KVPagingError) -> AppendOutcome

    /// Frees the sequence and everything it holds.
    mutating func release(_ id: SequenceID) throws(KVPagingError)

    /// Whether `id` is held (on the device or swapped out).
    func contains(_ id: SequenceID) -> Bool

    /// Tokens held by `id`.
    func length(of id: SequenceID) throws(KVPagingError) -> Int

    /// The block table of `id`: logical block `i` (positions `i·blockSize ..< (i+1)·blockSize`) → physical block.
    func blockTable(of id: SequenceID) throws(KVPagingError) -> [Int]

    /// Where position `position` of `id` lives in K/V storage shaped `[numBlocks, blockSize, Hkv, D]`.
    func slot(of id: SequenceID, position: Int) throws(KVPagingError) -> KVSlot

    /// Current memory use.
    var usage: KVCacheUsage { get }

    /// Live sequences.
    var sequenceCount: Int { get }
}

extension KVCacheAllocator {
    /// Whether ``admit(_:prompt:)`` would succeed now (watermark included).
    public func canAdmit(_ prompt: KVPrompt) -> Bool { admissionCheck(prompt).fits }

    /// Appends one token slot.
    public mutating func appendSlot(_ id: SequenceID) throws(KVPagingError) -> AppendOutcome {
        try appendSlots(id, count: 1)
    }

    /// The slots of `positions` of `id`, in order (a slot mapping for writing K/V).
    public func slotMapping(of id: SequenceID, positions: Range<Int>) throws(KVPagingError) -> [KVSlot] {
        var out: [KVSlot] = []
        out.reserveCapacity(positions.count)
        for p in positions { out.append(try slot(of: id, position: p)) }
        return out
    }
}

/// Shared validation of prompts.
extension KVCacheConfiguration {
    func validatePrompt(_ prompt: KVPrompt) throws(KVPagingError) {
        guard prompt.length >= 1 else {
            throw KVPagingError(.invalidArgument, "prompt length is \(prompt.length); a sequence needs at least one prompt token")
        }
        guard prompt.length <= maxSequenceLength else {
            throw KVPagingError(.exceedsMaxLength, "prompt of \(prompt.length) tokens exceeds maxSequenceLength \(maxSequenceLength); truncate the prompt or raise the limit")
        }
        if let tokens = prompt.tokens, tokens.count != prompt.length {
            throw KVPagingError(.invalidArgument, "prompt length \(prompt.length) differs from its \(tokens.count) token ids; build prompts with KVPrompt.tokens(_:)")
        }
        if let m = prompt.maxNewTokens, m < 0 {
            throw KVPagingError(.invalidArgument, "maxNewTokens is \(m); pass nil or a count ≥ 0")
        }
    }
}

/// Remembers the last few released ids so that a second release reports ``KVPagingError/Code/doubleFree``
/// rather than ``KVPagingError/Code/unknownSequence``.
struct RecentlyReleased: Sendable {
    private var ring: [SequenceID] = []
    private var next = 0
    private var counts: [SequenceID: Int] = [:]
    static let capacity = 1024

    mutating func add(_ id: SequenceID) {
        if ring.count < Self.capacity {
            ring.append(id)
        } else {
            let old = ring[next]
            if let c = counts[old] { counts[old] = c == 1 ? nil : c - 1 }
            ring[next] = id
            next = (next + 1) % Self.capacity
        }
        counts[id, default: 0] += 1
    }

    func contains(_ id: SequenceID) -> Bool { counts[id] != nil }

    func missingError(_ id: SequenceID, operation: String) -> KVPagingError {
        if contains(id) {
            return KVPagingError(.doubleFree, "\(operation): \(id) was already released; release each sequence exactly once")
        }
        return KVPagingError(.unknownSequence, "\(operation): \(id) is not held by this allocator; admit it first")
    }
}
