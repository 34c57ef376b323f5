/// A numeric format for weights or for the KV cache.
///
/// Two sizes matter:
/// - ``nominalBytesPerParameter`` is the rule of thumb of the reference's
///   model-size table (FP32 = 4, FP16 = 2, INT8 = 1, INT4 = 0.5 bytes per parameter).
/// - ``bitsPerWeight`` is what a serving engine really stores, scales included.
///   The integer formats use the GGUF block layouts: Q8_0 stores 32 INT8 values
///   plus one FP16 scale per block (34 bytes / 32 weights = 8.5 bits), Q4_0
///   stores 32 4-bit values plus one FP16 scale (18 bytes / 32 weights = 4.5 bits).
///   AWQ/GPTQ with group size 128 and FP16 scales + zeros land at ~4.25 bits, so
///   4.5 is a slightly conservative planning figure.
public enum Precision: String, Sendable, Hashable, CaseIterable, Codable {
    case fp32, fp16, bf16, fp8, int8, int4

    /// Bits stored per weight including per-block scale overhead.
    @inlinable public var bitsPerWeight: Double {
        switch self {
        case .fp32: 32
        case .fp16, .bf16: 16
        case .fp8: 8  // per-tensor / per-channel scales: negligible
        case .int8: 8.5  // GGUF Q8_0: (32 × 1 byte + 2-byte scale) / 32
        case .int4: 4.5  // GGUF Q4_0: (32 × 0.5 byte + 2-byte scale) / 32
        }
    }

    /// The reference's rule-of-thumb bytes per parameter (no scale overhead).
    @inlinable public var nominalBytesPerParameter: Double {
        switch self {
        case .fp32: 4
        case .fp16, .bf16: 2
        case .fp8, .int8: 1
        case .int4: 0.5
        }
    }

    /// Bytes per element when this precision is used for the KV cache.
    @inlinable public var kvBytesPerElement: Double {
        switch self {
        case .fp32: 4
        case .fp16, .bf16: 2
        case .fp8, .int8: 1
        case .int4: 0.5
        }
    }

    /// Parses "fp16", "FP16", "bf16", "int4", "q4_0", "q8_0", "float16", "auto"=bf16.
    public init(parsing text: String) throws(CostModelError) {
        switch text.lowercased() {
        case "fp32", "float32", "f32": self = .fp32
        case "fp16", "float16", "f16", "half": self = .fp16
        case "bf16", "bfloat16", "auto": self = .bf16
        case "fp8", "float8", "fp8_e4m3", "fp8_e5m2": self = .fp8
        case "int8", "q8_0", "w8a8", "w8a16": self = .int8
        case "int4", "q4_0", "awq", "gptq", "w4a16": self = .int4
        default:
            throw CostModelError(
                .invalidInput,
                "Unknown precision '\(text)'. Use one of: \(Precision.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
    }

    /// The label used in tables ("FP16", "INT4").
    public var label: String { rawValue.uppercased() }
}
