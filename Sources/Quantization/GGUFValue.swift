/// The value types of GGUF metadata (`gguf_type`).
public enum GGUFValueType: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Encoded size of a scalar of this type (`nil` for strings and arrays).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }

    /// The fewest bytes one element of this type can occupy (used to reject absurd counts).
    var minimumSize: Int { fixedSize ?? (self == .string ? 8 : 12) }

    public var description: String {
        switch self {
        case .uint8: "u8"
        case .int8: "i8"
        case .uint16: "u16"
        case .int16: "i16"
        case .uint32: "u32"
        case .int32: "i32"
        case .float32: "f32"
        case .bool: "bool"
        case .string: "str"
        case .array: "arr"
        case .uint64: "u64"
        case .int64: "i64"
        case .float64: "f64"
        }
    }
}

/// One GGUF metadata value. Arrays carry their element type (so an empty array keeps it) and may nest.
public indirect enum GGUFValue: Sendable, Hashable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(elementType: GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// The value as an integer when it is one of the integer types and fits `Int`.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(exactly: v)
        default: nil
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// A short rendering: arrays longer than 8 elements are abbreviated.
    public var description: String {
        switch self {
        case let .uint8(v): "\(v)"
        case let .int8(v): "\(v)"
        case let .uint16(v): "\(v)"
        case let .int16(v): "\(v)"
        case let .uint32(v): "\(v)"
        case let .int32(v): "\(v)"
        case let .float32(v): "\(v)"
        case let .bool(v): "\(v)"
        case let .string(s): "\"\(s.count > 80 ? String(s.prefix(77)) + "…" : s)\""
        case let .array(t, values):
            "[\(t)×\(values.count)] [" + values.prefix(8).map(\.description).joined(separator: ", ") + (values.count > 8 ? ", …" : "") + "]"
        case let .uint64(v): "\(v)"
        case let .int64(v): "\(v)"
        case let .float64(v): "\(v)"
        }
    }

    /// A JSON-compatible value (`Int`, `Double`, `Bool`, `String`, `[Any]`) for `--json` output.
    public var jsonObject: any Sendable {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): v <= UInt64(Int.max) ? Int(v) : Double(v)
        case let .int64(v): Int(v)
        case let .float32(v): v.isFinite ? Double(v) : String(describing: v)
        case let .float64(v): v.isFinite ? v : String(describing: v)
        case let .bool(v): v
        case let .string(s): s
        case let .array(_, values): values.map(\.jsonObject)
        }
    }
}
