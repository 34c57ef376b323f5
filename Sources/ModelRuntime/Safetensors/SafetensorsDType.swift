/// An element type a safetensors header can name.
///
/// The raw value is the spelling in the header's `"dtype"` field. The list
/// matches the `Dtype` enum of the reference Rust implementation
/// (safetensors 0.6–0.8); ``SafetensorsFile/tensor(named:)`` converts
/// ``f32``, ``f16`` and ``bf16`` to Float32, and every type can be read raw
/// with ``SafetensorsFile/withTensorBytes(_:_:)``.
public enum SafetensorsDType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits one element occupies; the sub-byte types (`F4`, `F6_*`) pack elements without padding.
    public var bitsPerElement: Int {
        switch self {
        case .f4: 4
        case .f6E2M3, .f6E3M2: 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// The types ``SafetensorsFile/tensor(named:)`` converts to Float32.
    public static let convertibleToFloat32: [SafetensorsDType] = [.f32, .f16, .bf16]

    public var description: String { rawValue }
}

/// Where one tensor lives in a safetensors file, as its header declares it (after validation).
public struct SafetensorsTensorInfo: Sendable, Hashable {
    /// The tensor's name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    public let dtype: SafetensorsDType
    /// Dimensions, outermost first (PyTorch order: a linear layer's weight is `[out, in]`).
    public let shape: [Int]
    /// The header's `data_offsets`: bytes relative to the start of the data section (after the header).
    public let byteRange: Range<Int>

    /// The number of elements (1 for a scalar shape `[]`).
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { byteRange.count }
}
