/// The pre-paging baseline: each sequence reserves one contiguous run of
/// blocks for its whole future length when admitted.
///
/// It implements the same ``KVCacheAllocator`` admission interface as
/// ``KVBlockManager`` so both can be driven by the same scheduler or
/// benchmark. The storage layout is identical (`[numBlocks, blockSize, Hkv, D]`),
/// a sequence's block table is simply `start ..< start + reserved`. Free space
/// is a sorted list of free runs; admission takes the first run that fits
/// (first fit), so the baseline also suffers external fragmentation, as real
/// contiguous allocators do. Prefix caching, forks and swapping are not
/// supported; the watermark is not applied (nothing ever grows).
public struct ContiguousKVAllocator: KVCacheAllocator {
    /// How much a sequence reserves at admission.
    public enum Reservation: Sendable, Hashable {
        /// `maxSequenceLength` tokens (the classic worst-case reservation).
        case maxSequenceLength
        /// `prompt + maxNewTokens` tokens (capped at `maxSequenceLength`); prompts without
        /// `maxNewTokens` reserve `maxSequenceLength`.
        case promptPlusMaxNewTokens
    }

    public let configuration: KVCacheConfiguration
    public let reservation: Reservation

    struct Run: Sendable { var start: Int; var count: Int }
    struct SequenceState: Sendable { var start: Int; var reserved: Int; var length: Int }

    /// Free runs sorted by start, never adjacent (coalesced).
    var freeRuns: [Run]
    var sequences: [SequenceID: SequenceState] = [:]
    var reservedBlocks = 0
    var filledSlots = 0
    var recentlyReleased = RecentlyReleased()

    public init(_ configuration: KVCacheConfiguration, reservation: Reservation = .maxSequenceLength) throws(KVPagingError) {
        try configuration.validate()
        self.configuration = configuration
        self.reservation = reservation
        self.freeRuns = [Run(start: 0, count: configuration.blockCount)]
    }

    public var sequenceCount: Int { sequences.count }
    public func contains(_ id: SequenceID) -> Bool { sequences[id] != nil }
    /// The longest free run, in blocks (the largest reservation that can succeed now).
    public var largestFreeRun: Int { freeRuns.reduce(0) { max($0, $1.count) } }

    /// Tokens reserved for `prompt` under the reservation policy.
    public func reservedTokens(for prompt: KVPrompt) -> Int {
        switch reservation {
        case .maxSequenceLength:
            return configuration.maxSequenceLength
        case .promptPlusMaxNewTokens:
            guard let m = prompt.maxNewTokens else { return configuration.maxSequenceLength }
            let (sum, overflow) = prompt.length.addingReportingOverflow(m)
            return overflow ? configuration.maxSequenceLength : min(configuration.maxSequenceLength, max(sum, prompt.length))
        }
    }

    public func admissionCheck(_ prompt: KVPrompt) -> AdmissionCheck {
        guard (try? configuration.validatePrompt(prompt)) != nil else {
            return AdmissionCheck(blocksNeeded: Int.max, blocksAvailable: largestFreeRun, cachedTokens: 0)
        }
        return AdmissionCheck(
            blocksNeeded: configuration.blocks(forTokens: reservedTokens(for: prompt)),
            blocksAvailable: largestFreeRun,
            cachedTokens: 0
        )
    }

    public mutating func admit(_ id: SequenceID, prompt: KVPrompt) throws(KVPagingError) -> AdmissionOutcome {
        try configuration.validatePrompt(prompt)
        guard sequences[id] == nil else {
            throw KVPagingError(.duplicateSequence, "admit: \(id) is already held; release it or choose a new id")
        }
        let need = configuration.blocks(forTokens: reservedTokens(for: prompt))
        guard let i = freeRuns.firstIndex(where: { $0.count >= need }) else {
            return .wouldExceedCapacity(blocksNeeded: need, available: largestFreeRun)
        }
        let start = freeRuns[i].start
        if freeRuns[i].count == need {
            freeRuns.remove(at: i)
        } else {
            freeRuns[i].start += need
            freeRuns[i].count -= need
        }
        reservedBlocks += need
        filledSlots += prompt.length
        sequences[id] = SequenceState(start: start, reserved: need, length: prompt.length)
        return .admitted(Admission(blockTable: Array(start..<(start + need)), cachedTokens: 0, newBlocks: need))
    }

    public func blocksNeeded(toAppend count: Int, to id: SequenceID) throws(KVPagingError) -> Int {
        _ = try state(id, "blocksNeeded")
        guard count >= 0 else { throw KVPagingError(.invalidArgument, "blocksNeeded: count is \(count); pass ≥ 0") }
        return 0
    }

    public mutating func appendSlots(_ id: SequenceID, count: Int) throws(KVPagingError) -> AppendOutcome {
        var s = try state(id, "appendSlots")
        guard count >= 1 else { throw KVPagingError(.invalidArgument, "appendSlots: count is \(count); append at least one token") }
        guard count <= configuration.maxSequenceLength - s.length else {
            throw KVPagingError(.exceedsMaxLength, "appendSlots: \(id) holds \(s.length) tokens; \(count) more would pass maxSequenceLength \(configuration.maxSequenceLength); stop generation at the limit")
        }
        let newLength = s.length + count
        guard newLength <= configuration.maxSequenceLength else {
            throw KVPagingError(.exceedsMaxLength, "appendSlots: \(id) would reach \(newLength) tokens, past maxSequenceLength \(configuration.maxSequenceLength); stop generation at the limit")
        }
        guard newLength <= s.reserved * configuration.blockSize else {
            throw KVPagingError(.exceedsMaxLength, "appendSlots: \(id) would reach \(newLength) tokens, past its reservation of \(s.reserved * configuration.blockSize); pass a larger maxNewTokens at admission")
        }
        let old = s.length
        s.length = newLength
        filledSlots += count
        sequences[id] = s
        let bs = configuration.blockSize
        let last = KVSlot(block: s.start + (newLength - 1) / bs, offset: (newLength - 1) % bs)
        return .appended(AppendResult(positions: old..<newLength, lastSlot: last, copy: nil, newBlocks: 0))
    }

    public mutating func release(_ id: SequenceID) throws(KVPagingError) {
        guard let s = sequences.removeValue(forKey: id) else { throw recentlyReleased.missingError(id, operation: "release") }
        recentlyReleased.add(id)
        reservedBlocks -= s.reserved
        filledSlots -= s.length
        // Insert the run in order and coalesce with its neighbours.
        var lo = 0, hi = freeRuns.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if freeRuns[mid].start < s.start { lo = mid + 1 } else { hi = mid }
        }
        freeRuns.insert(Run(start: s.start, count: s.reserved), at: lo)
        if lo + 1 < freeRuns.count, freeRuns[lo].start + freeRuns[lo].count == freeRuns[lo + 1].start {
            freeRuns[lo].count += freeRuns[lo + 1].count
            freeRuns.remove(at: lo + 1)
        }
        if lo > 0, freeRuns[lo - 1].start + freeRuns[lo - 1].count == freeRuns[lo].start {
            freeRuns[lo - 1].count += freeRuns[lo].count
            freeRuns.remove(at: lo)
        }
    }

    public func length(of id: SequenceID) throws(KVPagingError) -> Int { try state(id, "length").length }

    public func blockTable(of id: SequenceID) throws(KVPagingError) -> [Int] {
        let s = try state(id, "blockTable")
        return Array(s.start..<(s.start + s.reserved))
    }

    public func slot(of id: SequenceID, position: Int) throws(KVPagingError) -> KVSlot {
        let s = try state(id, "slot")
        guard position >= 0, position < s.length else {
            throw KVPagingError(.invalidArgument, "slot: position \(position) is outside \(id)'s \(s.length) tokens")
        }
        let bs = configuration.blockSize
        return KVSlot(block: s.start + position / bs, offset: position % bs)
    }

    public var usage: KVCacheUsage {
        KVCacheUsage(
            blockSize: configuration.blockSize,
            totalBlocks: configuration.blockCount,
            activeBlocks: reservedBlocks,
            cachedFreeBlocks: 0,
            freeBlocks: configuration.blockCount - reservedBlocks,
            filledSlots: filledSlots,
            sequences: sequences.count,
            hostTotalBlocks: 0,
            hostUsedBlocks: 0
        )
    }

    private func state(_ id: SequenceID, _ op: String) throws(KVPagingError) -> SequenceState {
        guard let s = sequences[id] else { throw recentlyReleased.missingError(id, operation: op) }
        return s
    }
}
