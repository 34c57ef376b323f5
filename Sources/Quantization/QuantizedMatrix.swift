import TensorCore

/// A quantized `[rows, columns]` weight matrix: its format, shape and bytes.
///
/// `rows` is the output dimension `N` and `columns` the input dimension `K` of a
/// linear layer `y = x · Wᵀ` (`W` `[N, K]`), which is how GGUF and PyTorch store
/// weights. The bytes follow the layout of ``format`` (see <doc:FormatLayouts>).
///
/// ```swift
/// let w = Tensor.random(shape: [4096, 4096], seed: 1)
/// let q = try QuantizedMatrix.quantize(w, as: .q4_0, name: "blk.0.attn_q.weight")
/// q.bitsPerWeight            // 4.5
/// let back = q.dequantize()  // Tensor [4096, 4096]
/// ```
public struct QuantizedMatrix: Sendable, Equatable {
    public let format: QuantizationFormat
    /// Output rows `N`.
    public let rows: Int
    /// Input columns `K` (a multiple of `format.blockSize`).
    public let columns: Int
    /// The encoded weights.
    public let bytes: [UInt8]

    /// Wraps already-encoded bytes, validating the shape and the byte count.
    public init(format: QuantizationFormat, rows: Int, columns: Int, bytes: [UInt8]) throws {
        try Self.validateShape(format: format, rows: rows, columns: columns, name: "matrix")
        let expected = format.byteCount(rows: rows, columns: columns)
        guard bytes.count == expected else {
            throw QuantizationError(.invalidData, "\(format) [\(rows), \(columns)] needs \(expected) bytes but \(bytes.count) were given")
        }
        self.format = format
        self.rows = rows
        self.columns = columns
        self.bytes = bytes
    }

    /// The shape `[rows, columns]`.
    public var shape: Shape { [rows, columns] }

    /// Storage bits per weight, including scales, zero points and minimums.
    public var bitsPerWeight: Double { Double(bytes.count * 8) / Double(rows * columns) }

    static func validateShape(format: QuantizationFormat, rows: Int, columns: Int, name: String) throws {
        try format.validate()
        guard rows > 0, columns > 0 else {
            throw QuantizationError(.invalidShape, "\(name): shape [\(rows), \(columns)] is empty; every dimension must be ≥ 1")
        }
        guard columns % format.blockSize == 0 else {
            throw QuantizationError(.invalidShape,
                "\(name): \(columns) columns is not a multiple of the \(format) block size \(format.blockSize); pad the input dimension or pick another format")
        }
        let (_, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow else { throw QuantizationError(.invalidShape, "\(name): [\(rows), \(columns)] overflows Int") }
    }

    /// Quantizes a Float32 matrix.
    ///
    /// - Parameters:
    ///   - tensor: `[N, K]` weights (a rank-1 tensor is treated as `[1, K]`; higher ranks as `[∏ leading, K]`).
    ///   - format: the target format; `K` must be a multiple of its ``QuantizationFormat/blockSize``.
    ///   - name: the tensor's name, used in error messages.
    /// - Throws: ``QuantizationError`` `.nonFinite` naming the tensor and `[row, column]` of the first NaN/Inf,
    ///   `.invalidShape`, `.scaleOverflow` when a block's scale exceeds Float16's range.
    public static func quantize(_ tensor: Tensor, as format: QuantizationFormat, name: String = "tensor") throws -> QuantizedMatrix {
        guard tensor.rank >= 1 else {
            throw QuantizationError(.invalidShape, "\(name): a scalar cannot be quantized; pass a [rows, columns] matrix")
        }
        let columns = tensor.shape[tensor.rank - 1]
        let rows = columns == 0 ? 0 : tensor.elementCount / columns
        return try tensor.withUnsafeBufferPointer { p in
            try quantize(p, rows: rows, columns: columns, as: format, name: name)
        }
    }

    /// Quantizes `rows × columns` row-major Float32 values.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, rows: Int, columns: Int, as format: QuantizationFormat, name: String = "tensor") throws -> QuantizedMatrix {
        try validateShape(format: format, rows: rows, columns: columns, name: name)
        guard values.count == rows * columns else {
            throw QuantizationError(.invalidShape, "\(name): \(values.count) values given for [\(rows), \(columns)]")
        }
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError(.nonFinite,
                "\(name): weight at [\(i / columns), \(i % columns)] (flat index \(i)) is \(values[i]); replace NaN/Inf weights before quantizing")
        }
        var out = [UInt8](repeating: 0, count: format.byteCount(rows: rows, columns: columns))
        try out.withUnsafeMutableBufferPointer { o in
            switch format {
            case .q8_0: try GGMLBlocks.quantizeQ8_0(values, into: o, name: name)
            case .q4_0: try GGMLBlocks.quantizeQ4_0(values, into: o, name: name)
            case .q4_1: try GGMLBlocks.quantizeQ4_1(values, into: o, name: name)
            case .int8PerChannel: IntegerFormats.quantizeInt8(values, rows: rows, columns: columns, into: o)
            case let .int4Grouped(g, sym):
                try IntegerFormats.quantizeInt4(values, rows: rows, columns: columns, group: g, symmetric: sym, into: o, name: name)
            }
        }
        return try QuantizedMatrix(format: format, rows: rows, columns: columns, bytes: out)
    }

    /// Decodes to Float32 `[rows, columns]`.
    public func dequantize() -> Tensor {
        Tensor(shape: shape) { out in
            bytes.withUnsafeBufferPointer { b in
                dequantizeRows(b, 0..<rows, into: UnsafeMutableBufferPointer(rebasing: out[...]))
            }
        }
    }

    /// Decodes `rowRange` into `out` (count `rowRange.count × columns`).
    func dequantizeRows(_ b: UnsafeBufferPointer<UInt8>, _ rowRange: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        switch format {
        case .q8_0, .q4_0, .q4_1: GGMLBlocks.dequantize(format, b, columns: columns, rows: rowRange, into: out)
        case .int8PerChannel: IntegerFormats.dequantizeInt8(b, rows: rows, columns: columns, rowRange: rowRange, into: out)
        case let .int4Grouped(g, sym):
            IntegerFormats.dequantizeInt4(b, rows: rows, columns: columns, group: g, symmetric: sym, rowRange: rowRange, into: out)
        }
    }

    /// Quantization error of this matrix against the original weights.
    public func errorReport(against original: Tensor, name: String = "tensor") throws -> QuantizationErrorReport {
        guard original.elementCount == rows * columns else {
            throw QuantizationError(.invalidShape, "\(name): original has \(original.elementCount) elements, the quantized matrix \(rows * columns)")
        }
        return QuantizationErrorReport(name: name, format: format, original: original.scalars, reconstructed: dequantize().scalars)
    }
}

// MARK: - Float16 helpers

@inline(__always)
func readF16(_ p: UnsafeBufferPointer<UInt8>, _ at: Int) -> Float {
    Float(Float16(bitPattern: UInt16(p[at]) | UInt16(p[at + 1]) << 8))
}

@inline(__always)
func writeF16(_ v: Float16, _ p: UnsafeMutableBufferPointer<UInt8>, _ at: Int) {
    let bits = v.bitPattern
    p[at] = UInt8(truncatingIfNeeded: bits)
    p[at + 1] = UInt8(truncatingIfNeeded: bits >> 8)
}

/// Converts `Float` to `Int32` like C's cast after range clamping (NaN → 0), so no input traps.
@inline(__always)
func clampedTruncate(_ v: Float, _ lo: Int32, _ hi: Int32) -> Int32 {
    guard !v.isNaN else { return 0 }
    if v <= Float(lo) { return lo }
    if v >= Float(hi) { return hi }
    return Int32(v)
}

extension QuantizationFormat {
    /// Decodes rows `rows` of a block-format (`Q8_0`/`Q4_0`/`Q4_1`) matrix stored in `bytes` (row-major
    /// blocks, `columns` a multiple of 32) into `out` (`rows.count × columns` floats) — e.g. embedding
    /// rows read straight from a memory-mapped GGUF tensor.
    package func dequantizeBlockRows(_ bytes: UnsafeBufferPointer<UInt8>, columns: Int, rows: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(isBlockFormat && columns % 32 == 0 && out.count >= rows.count * columns)
        GGMLBlocks.dequantize(self, bytes, columns: columns, rows: rows, into: out)
    }
}
