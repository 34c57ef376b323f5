/// Configuration of a KV cache allocator (paged or contiguous).
///
/// The defaults follow common serving engines: 16-token blocks, prefix
/// caching on, a 1 % watermark of blocks kept free for running sequences to
/// grow into, and no host swap space.
public struct KVCacheConfiguration: Sendable, Hashable {
    /// Device blocks in the pool (≥ 1).
    public var blockCount: Int
    /// Tokens per block (≥ 1; default 16).
    public var blockSize: Int
    /// Longest sequence (prompt + generated) the model accepts, in tokens (default 8192).
    public var maxSequenceLength: Int
    /// Automatic prefix caching of full blocks of token-id prompts (default on).
    public var enablePrefixCaching: Bool
    /// Fraction of device blocks admission leaves free for running sequences (default 0.01, in `[0, 1)`).
    public var watermark: Double
    /// Blocks of the host-memory swap pool (default 0: swapping disabled).
    public var hostBlockCount: Int

    public init(
        blockCount: Int,
        blockSize: Int = 16,
        maxSequenceLength: Int = 8192,
        enablePrefixCaching: Bool = true,
        watermark: Double = 0.01,
        hostBlockCount: Int = 0
    ) {
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.maxSequenceLength = maxSequenceLength
        self.enablePrefixCaching = enablePrefixCaching
        self.watermark = watermark
        self.hostBlockCount = hostBlockCount
    }

    /// Blocks admission keeps free: `⌊watermark · blockCount⌋`.
    public var watermarkBlocks: Int { Int((watermark * Double(blockCount)).rounded(.down)) }

    /// Blocks needed to hold `tokens` tokens: `⌈tokens / blockSize⌉`.
    @inlinable
    public func blocks(forTokens tokens: Int) -> Int { (tokens + blockSize - 1) / blockSize }

    /// The most token slots (`blockCount × blockSize`) a pool may have: 2²⁸ ≈ 268 M tokens, far beyond
    /// any single deployment's KV memory, keeps the per-slot prefix-cache token store under 2 GiB.
    public static let maxTokenSlots = 1 << 28
    /// The longest `maxSequenceLength` accepted (2³² tokens), so token arithmetic cannot overflow.
    public static let maxSequenceLengthLimit = 1 << 32

    /// Throws ``KVPagingError/Code/invalidConfiguration`` naming the first bad field.
    public func validate() throws(KVPagingError) {
        // Block ids live in Int32 tables: at most 2³¹ − 1 blocks.
        guard blockCount >= 1, blockCount < 1 << 31 else {
            throw KVPagingError(.invalidConfiguration, "blockCount is \(blockCount); pass 1…2³¹−1 device blocks")
        }
        guard blockSize >= 1, blockSize <= 65_536 else {
            throw KVPagingError(.invalidConfiguration, "blockSize is \(blockSize); pass 1…65536 tokens per block (16 is usual)")
        }
        guard blockCount * blockSize <= Self.maxTokenSlots else {
            throw KVPagingError(.invalidConfiguration, "blockCount × blockSize is \(blockCount) × \(blockSize) token slots, more than the \(Self.maxTokenSlots) supported; size the pool from the KV memory actually available")
        }
        guard maxSequenceLength >= 1, maxSequenceLength <= Self.maxSequenceLengthLimit else {
            throw KVPagingError(.invalidConfiguration, "maxSequenceLength is \(maxSequenceLength); pass the model's context length (1…2³²)")
        }
        guard watermark.isFinite, watermark >= 0, watermark < 1 else {
            throw KVPagingError(.invalidConfiguration, "watermark is \(watermark); pass a fraction in [0, 1) such as 0.01")
        }
        guard hostBlockCount >= 0, hostBlockCount <= Self.maxTokenSlots / blockSize else {
            throw KVPagingError(.invalidConfiguration, "hostBlockCount is \(hostBlockCount); pass 0 (no swapping) … \(Self.maxTokenSlots / blockSize) (2²⁸ token slots)")
        }
    }
}
