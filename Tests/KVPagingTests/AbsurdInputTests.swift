import Testing
import TensorCore
@testable import KVPaging

private func admitted(_ o: AdmissionOutcome, sourceLocation: SourceLocation = #_sourceLocation) throws -> Admission {
    try #require(o.admission, "expected admission, got \(o)", sourceLocation: sourceLocation)
}

/// Absurd sizes and counts are typed errors or capacity outcomes, never an arithmetic trap.
@Suite struct AbsurdInput {
    private func code(_ body: () throws -> Void) -> KVPagingError.Code? {
        do { try body(); return nil } catch { return (error as? KVPagingError)?.code }
    }

    @Test func absurdConfigurationsAreRejected() {
        for c in [
            KVCacheConfiguration(blockCount: 1 << 31),                 // block ids must fit Int32
            KVCacheConfiguration(blockCount: Int.max),
            KVCacheConfiguration(blockCount: 1 << 25, blockSize: 16),  // 2²⁹ token slots > 2²⁸
            KVCacheConfiguration(blockCount: 4, blockSize: 1 << 20),
            KVCacheConfiguration(blockCount: 4, maxSequenceLength: Int.max),
            KVCacheConfiguration(blockCount: 4, watermark: -0.1),
            KVCacheConfiguration(blockCount: 4, watermark: .infinity),
            KVCacheConfiguration(blockCount: 4, hostBlockCount: 1 << 31),
            KVCacheConfiguration(blockCount: 4, hostBlockCount: Int.max),
        ] {
            #expect(code { _ = try KVBlockManager(c) } == .invalidConfiguration, "\(c)")
            #expect(code { _ = try ContiguousKVAllocator(c) } == .invalidConfiguration, "\(c)")
        }
        #expect(code { _ = try KVBlockPool(blockCount: 1 << 31, blockSize: 1) } == .invalidConfiguration)
    }

    @Test(arguments: [true, false])
    func hugeCountsDoNotTrap(paged: Bool) throws {
        let config = KVCacheConfiguration(blockCount: 8, blockSize: 4, maxSequenceLength: 16, watermark: 0)
        var kv: any KVCacheAllocator = paged ? try KVBlockManager(config) : try ContiguousKVAllocator(config)
        for p in [KVPrompt.length(Int.max), .length(Int.min), .length(0), .length(-1), .tokens([]),
                  KVPrompt(length: Int.max, tokens: [1], salt: .none), .length(4, maxNewTokens: Int.max)] {
            let check = kv.admissionCheck(p)
            if p.length == 4 {
                #expect(check.fits)   // maxNewTokens = Int.max is clamped to the maximum length, 16 tokens = 4 blocks
            } else {
                #expect(!check.fits, "\(p)")
                #expect(throws: KVPagingError.self) { _ = try kv.admit(1, prompt: p) }
            }
        }
        _ = try admitted(kv.admit(1, prompt: .length(4)))
        #expect(code { _ = try kv.appendSlots(1, count: Int.max) } == .exceedsMaxLength)
        #expect(code { _ = try kv.appendSlots(1, count: Int.min) } == .invalidArgument)
        #expect(code { _ = try kv.appendSlots(1, count: 13) } == .exceedsMaxLength)   // 4 + 13 = 17 > 16
        #expect(try kv.length(of: 1) == 4)
        #expect(code { _ = try kv.blocksNeeded(toAppend: -1, to: 1) } == .invalidArgument)
        if paged { #expect(code { _ = try kv.blocksNeeded(toAppend: Int.max, to: 1) } == .invalidArgument) }
        #expect(code { _ = try kv.slot(of: 1, position: Int.max) } == .invalidArgument)
        #expect(code { _ = try kv.slot(of: 1, position: Int.min) } == .invalidArgument)
    }

    @Test func hugeStorageAndContextLengthsAreTyped() throws {
        #expect(code { _ = try PagedKVStorage(numBlocks: 1 << 40, blockSize: 1 << 40, kvHeads: 1 << 40, headDim: 2) } == .invalidArgument)
        #expect(code { _ = try PagedKVStorage(numBlocks: 1, blockSize: 1, kvHeads: -1, headDim: 2) } == .invalidArgument)
        let storage = try PagedKVStorage(numBlocks: 2, blockSize: 4, kvHeads: 1, headDim: 2)
        let q = Tensor(zeros: [1, 1, 2])
        for ctx in [Int.max, Int.min, 0, 9] {
            let batch = PagedAttentionBatch.decode(blockTables: [[0, 1]], contextLengths: [ctx])
            #expect(throws: KVPagingError.self) { _ = try ReferencePagedAttention().attention(query: q, storage: storage, batch: batch) }
            #expect(throws: KVPagingError.self) { _ = try CPUPagedAttention().attention(query: q, storage: storage, batch: batch) }
        }
        #expect(throws: KVPagingError.self) { _ = try storage.gather(blockTable: [0, 1], length: Int.max) }
        #expect(throws: KVPagingError.self) { _ = try storage.gather(blockTable: [0, 5], length: 8) }
    }
}
