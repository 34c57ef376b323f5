/// A weight format: how a `[rows, columns]` Float32 matrix is stored in fewer bits.
///
/// Every format works on rows of `columns` weights (the input dimension `K` of a
/// linear layer) and needs `columns` to be a multiple of ``blockSize``; the byte
/// layout of each is in the article <doc:FormatLayouts>.
public enum QuantizationFormat: Sendable, Hashable, CustomStringConvertible, CaseIterable {
    /// INT8, symmetric, one Float32 scale per output row (per output channel).
    case int8PerChannel
    /// INT4 in groups of `groupSize` (32, 64 or 128) weights along a row, each with a Float16 scale
    /// and, when `symmetric` is false, an 8-bit zero point; two weights per byte.
    case int4Grouped(groupSize: Int, symmetric: Bool)
    /// GGUF/ggml `Q8_0`: blocks of 32 int8 with a Float16 scale (8.5 bits per weight).
    case q8_0
    /// GGUF/ggml `Q4_0`: blocks of 32 4-bit codes with a Float16 scale (4.5 bits per weight).
    case q4_0
    /// GGUF/ggml `Q4_1`: blocks of 32 4-bit codes with a Float16 scale and minimum (5 bits per weight).
    case q4_1

    /// Group sizes the INT4 grouped format accepts.
    public static let int4GroupSizes = [32, 64, 128]

    /// Every supported format with each INT4 group size, symmetric and asymmetric.
    public static var allCases: [QuantizationFormat] {
        [.int8PerChannel]
            + int4GroupSizes.flatMap { [.int4Grouped(groupSize: $0, symmetric: true), .int4Grouped(groupSize: $0, symmetric: false)] }
            + [.q8_0, .q4_0, .q4_1]
    }

    /// Parses `int8`, `int4-g32`, `int4-g128-asym`, `q8_0`, `q4_0`, `q4_1` (case-insensitive).
    public init(parsing text: String) throws {
        let t = text.lowercased()
        switch t {
        case "int8", "int8-channel", "int8-per-channel": self = .int8PerChannel
        case "q8_0": self = .q8_0
        case "q4_0": self = .q4_0
        case "q4_1": self = .q4_1
        default:
            let parts = t.split(separator: "-")
            if parts.count >= 2, parts[0] == "int4", parts[1].hasPrefix("g"), let g = Int(parts[1].dropFirst()),
               parts.count == 2 || (parts.count == 3 && (parts[2] == "asym" || parts[2] == "sym")) {
                guard Self.int4GroupSizes.contains(g) else {
                    throw QuantizationError(.unsupportedFormat, "INT4 group size \(g) is not supported; use 32, 64 or 128")
                }
                self = .int4Grouped(groupSize: g, symmetric: parts.count == 2 || parts[2] == "sym")
            } else {
                throw QuantizationError(.unsupportedFormat, "unknown format '\(text)'; use int8, int4-g32|g64|g128[-asym], q8_0, q4_0 or q4_1")
            }
        }
    }

    /// Short stable name (`int8`, `int4-g64-asym`, `q4_0`), accepted by ``init(parsing:)``.
    public var name: String {
        switch self {
        case .int8PerChannel: "int8"
        case let .int4Grouped(g, sym): "int4-g\(g)" + (sym ? "" : "-asym")
        case .q8_0: "q8_0"
        case .q4_0: "q4_0"
        case .q4_1: "q4_1"
        }
    }

    public var description: String { name }

    /// `columns` must be a multiple of this (32 for every format, the group size for INT4).
    public var blockSize: Int {
        switch self {
        case let .int4Grouped(g, _): g
        default: 32
        }
    }

    /// True for the GGUF block formats (`Q8_0`, `Q4_0`, `Q4_1`), whose rows are runs of self-contained 32-weight blocks.
    package var isBlockFormat: Bool {
        switch self {
        case .q8_0, .q4_0, .q4_1: true
        default: false
        }
    }

    /// Bits per code (8 or 4).
    public var codeBits: Int {
        switch self {
        case .int8PerChannel, .q8_0: 8
        default: 4
        }
    }

    /// Throws unless the format's parameters are valid (an INT4 group size of 32, 64 or 128).
    public func validate() throws {
        if case let .int4Grouped(g, _) = self, !Self.int4GroupSizes.contains(g) {
            throw QuantizationError(.unsupportedFormat, "INT4 group size \(g) is not supported; use 32, 64 or 128")
        }
    }

    /// Bytes needed for a `[rows, columns]` matrix (columns a multiple of ``blockSize``).
    public func byteCount(rows: Int, columns: Int) -> Int {
        let blocks = columns / 32
        switch self {
        case .int8PerChannel: return rows * 4 + rows * columns
        case let .int4Grouped(g, sym): return rows * (columns / g) * (sym ? 2 : 3) + rows * columns / 2
        case .q8_0: return rows * blocks * 34
        case .q4_0: return rows * blocks * 18
        case .q4_1: return rows * blocks * 20
        }
    }

    /// Storage bits per weight including scales, zero points and minimums
    /// (Q8_0 8.5, Q4_0 4.5, Q4_1 5.0, INT4 g32 4.5, INT8 8 + 32/columns).
    public func bitsPerWeight(columns: Int) -> Double {
        switch self {
        case .int8PerChannel: 8 + 32 / Double(max(columns, 1))
        case let .int4Grouped(g, sym): 4 + Double(sym ? 16 : 24) / Double(g)
        case .q8_0: 8.5
        case .q4_0: 4.5
        case .q4_1: 5.0
        }
    }

    /// The GGML tensor type id of the GGUF block formats (`nil` for the INT8/INT4 formats, which GGUF does not define).
    public var ggmlType: GGMLType? {
        switch self {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        default: nil
        }
    }
}
