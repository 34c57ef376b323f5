/// ggml tensor types as numbered in GGUF files (`ggml_type`).
///
/// Only the types this module can read, write and convert are listed; a GGUF
/// file with another tensor type is still inspectable (its type id is kept as a raw
/// number in ``GGUFTensorInfo``) but its data cannot be decoded.
public enum GGMLType: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8

    /// Weights per block (1 for F32/F16).
    public var blockSize: Int { self == .f32 || self == .f16 ? 1 : 32 }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        case .q4_0: 18
        case .q4_1: 20
        case .q8_0: 34
        }
    }

    /// The quantization format of a block type (`nil` for F32/F16).
    public var quantizationFormat: QuantizationFormat? {
        switch self {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q8_0: "Q8_0"
        }
    }
}
