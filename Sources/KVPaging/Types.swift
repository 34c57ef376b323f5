/// A caller-chosen identifier of one sequence (one request, or one branch of a forked request).
public struct SequenceID: Hashable, Sendable, Comparable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var rawValue: Int

    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public init(integerLiteral value: Int) { self.rawValue = value }

    public static func < (a: SequenceID, b: SequenceID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "seq#\(rawValue)" }
}

/// The extra key mixed into every block hash of a prefix-cached prompt.
///
/// Blocks are shared only between prompts whose salts are equal: give each
/// tenant (or each LoRA adapter, or each multimodal input set) its own salt
/// so that cached K/V never crosses that boundary.
///
/// A salt is a 64-bit value compared exactly. ``init(_:)-(String)`` derives
/// one from a string with a stable 64-bit hash (FNV-1a + avalanche); two
/// different strings collide with probability about 2⁻⁶⁴ per pair — use
/// ``init(rawValue:)`` with your own unique numbers if that is not enough.
public struct CacheSalt: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// A salt derived from a string (tenant name, adapter id) with a hash that is stable across runs.
    public init(_ string: String) {
        self.rawValue = StableHash.string(string)
    }

    /// The salt of prompts without an extra key.
    public static let none = CacheSalt(rawValue: 0)

    public var description: String { "salt(\(String(rawValue, radix: 16)))" }
}

/// What an allocator needs to know about a new sequence's prompt.
///
/// Give the token ids to enable automatic prefix caching; give only a length
/// when the prompt's content does not matter (simulation, or caching off).
public struct KVPrompt: Sendable, Hashable {
    /// Prompt length in tokens (≥ 1).
    public var length: Int
    /// The prompt's token ids, when known (`tokens.count == length`).
    public var tokens: [Int]?
    /// The extra key that separates tenants/adapters in the prefix cache.
    public var salt: CacheSalt
    /// The most tokens the request may generate; the contiguous baseline can reserve `length + maxNewTokens`.
    public var maxNewTokens: Int?

    /// A prompt given by its token ids (prefix caching applies).
    public static func tokens(_ tokens: [Int], salt: CacheSalt = .none, maxNewTokens: Int? = nil) -> KVPrompt {
        KVPrompt(length: tokens.count, tokens: tokens, salt: salt, maxNewTokens: maxNewTokens)
    }

    /// A prompt given only by its length (no prefix caching).
    public static func length(_ length: Int, maxNewTokens: Int? = nil) -> KVPrompt {
        KVPrompt(length: length, tokens: nil, salt: .none, maxNewTokens: maxNewTokens)
    }
}

/// Where one token's K/V lives: `block` in `[0, numBlocks)`, `offset` in `[0, blockSize)`.
///
/// In storage shaped `[numBlocks, blockSize, Hkv, D]` the token's key row is
/// `key[block, offset, :, :]`; the flat slot index is `block * blockSize + offset`.
public struct KVSlot: Hashable, Sendable, CustomStringConvertible {
    public var block: Int
    public var offset: Int

    public init(block: Int, offset: Int) {
        self.block = block
        self.offset = offset
    }

    /// `block * blockSize + offset`.
    @inlinable
    public func flatIndex(blockSize: Int) -> Int { block * blockSize + offset }

    public var description: String { "(\(block), \(offset))" }
}

/// A block copy the owner of the K/V storage must perform: `source` → `destination`.
///
/// Produced by copy-on-write (device block → device block) and by swapping
/// (device → host on swap-out, host → device on swap-in).
public struct BlockCopy: Hashable, Sendable, CustomStringConvertible {
    public var source: Int
    public var destination: Int

    public init(source: Int, destination: Int) {
        self.source = source
        self.destination = destination
    }

    public var description: String { "\(source)→\(destination)" }
}

/// Result of a successful admission.
public struct Admission: Sendable, Hashable {
    /// The sequence's block table after admission (logical block `i` → physical block).
    public var blockTable: [Int]
    /// Leading prompt tokens whose K/V is already in cached blocks (a multiple of the block size);
    /// prefill only positions `cachedTokens..<length`.
    public var cachedTokens: Int
    /// Blocks taken from the free pool (or by evicting cached blocks) for this admission.
    public var newBlocks: Int
}

/// Outcome of ``KVCacheAllocator/admit(_:prompt:)``.
public enum AdmissionOutcome: Sendable, Hashable {
    /// The sequence now holds blocks.
    case admitted(Admission)
    /// Not enough free blocks (after the watermark); nothing changed. Wait, or preempt other sequences.
    case wouldExceedCapacity(blocksNeeded: Int, available: Int)

    /// The admission, when admitted.
    public var admission: Admission? {
        if case .admitted(let a) = self { return a }
        return nil
    }
}

/// Result of a successful append.
public struct AppendResult: Sendable, Hashable {
    /// The positions that were appended (`oldLength..<newLength`).
    public var positions: Range<Int>
    /// Where the last appended token's K/V goes.
    public var lastSlot: KVSlot
    /// The copy-on-write copy the storage must perform before writing, when the last block was shared.
    public var copy: BlockCopy?
    /// Blocks newly allocated by this append (including a copy-on-write destination).
    public var newBlocks: Int
}

/// Outcome of ``KVCacheAllocator/appendSlots(_:count:)``.
public enum AppendOutcome: Sendable, Hashable {
    case appended(AppendResult)
    /// No free block for the new token(s); nothing changed. Preempt a sequence (release or swap it) and retry.
    case needsPreemption(blocksNeeded: Int, available: Int)

    /// The result, when appended.
    public var result: AppendResult? {
        if case .appended(let r) = self { return r }
        return nil
    }
}

/// Outcome of swapping sequences out to, or in from, host memory.
public enum SwapOutcome: Sendable, Hashable {
    /// The swap happened; perform these block copies (device→host on swap-out, host→device on swap-in).
    case swapped([BlockCopy])
    /// The destination pool lacks blocks; nothing changed.
    case wouldExceedCapacity(blocksNeeded: Int, available: Int)

    /// The copies, when swapped.
    public var copies: [BlockCopy]? {
        if case .swapped(let c) = self { return c }
        return nil
    }
}

/// A snapshot of how an allocator's KV memory is used.
///
/// Every device block is exactly one of active (held by a sequence),
/// cached-but-free (holds a reusable prefix, evictable) or free.
public struct KVCacheUsage: Sendable, Hashable, CustomStringConvertible {
    public var blockSize: Int
    public var totalBlocks: Int
    /// Blocks held by at least one sequence (the contiguous baseline: reserved blocks).
    public var activeBlocks: Int
    /// Blocks no sequence holds that keep a cached prefix until evicted.
    public var cachedFreeBlocks: Int
    /// Blocks holding nothing.
    public var freeBlocks: Int
    /// Token slots of active blocks that hold (or are reserved for) a token of some sequence.
    public var filledSlots: Int
    /// Live sequences (on device or swapped out).
    public var sequences: Int
    /// Host (swap) pool capacity and use, in blocks.
    public var hostTotalBlocks: Int
    public var hostUsedBlocks: Int

    /// Token slots in active blocks.
    public var allocatedSlots: Int { activeBlocks * blockSize }
    /// Allocated slots not holding a token (internal fragmentation / over-reservation).
    public var wastedSlots: Int { allocatedSlots - filledSlots }
    /// `wastedSlots / allocatedSlots` (0 when nothing is allocated).
    public var wasteFraction: Double { allocatedSlots == 0 ? 0 : Double(wastedSlots) / Double(allocatedSlots) }
    /// Blocks a new allocation can obtain (free plus evictable cached blocks).
    public var availableBlocks: Int { freeBlocks + cachedFreeBlocks }

    public var description: String {
        "blocks: \(activeBlocks) active, \(cachedFreeBlocks) cached-free, \(freeBlocks) free of \(totalBlocks); "
            + "waste \(wastedSlots)/\(allocatedSlots) slots; \(sequences) sequences; host \(hostUsedBlocks)/\(hostTotalBlocks)"
    }
}

/// Prefix-cache counters (cumulative since creation or the last reset).
public struct PrefixCacheStats: Sendable, Hashable {
    /// Successful admissions that gave token ids (failed attempts are not counted).
    public var queries: Int = 0
    /// Prompt tokens of those admissions.
    public var queriedTokens: Int = 0
    /// Prompt tokens served from cached blocks.
    public var hitTokens: Int = 0
    /// Full prompt blocks that were looked up / found.
    public var queriedBlocks: Int = 0
    public var hitBlocks: Int = 0
    /// Cached blocks whose content was dropped to make room.
    public var evictions: Int = 0

    /// `hitTokens / queriedTokens`.
    public var hitRate: Double { queriedTokens == 0 ? 0 : Double(hitTokens) / Double(queriedTokens) }
}
