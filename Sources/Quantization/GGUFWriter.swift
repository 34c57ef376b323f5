import Foundation
import TensorCore

/// Builds a GGUF v3 file: metadata in insertion order, a tensor table, and the data section with every
/// tensor aligned to `general.alignment` (32 unless set).
///
/// Tensor data can be given as bytes or produced lazily (one tensor at a time while writing), so a
/// multi-gigabyte model is written without holding it all in memory.
///
/// ```swift
/// var w = GGUFWriter()
/// w.setMetadata("general.architecture", .string("llama"))
/// try w.addTensor(name: "w", matrix: try QuantizedMatrix.quantize(weights, as: .q4_0))
/// try w.write(to: "out.gguf")
/// ```
public struct GGUFWriter {
    struct PendingTensor {
        let name: String
        let typeID: UInt32
        let dimensions: [Int]
        let byteCount: Int
        let produce: () throws -> [UInt8]
    }

    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    var tensors: [PendingTensor] = []

    public init() {}

    /// Sets `key`, replacing an existing value in place or appending a new entry.
    public mutating func setMetadata(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Alignment of the data section (`general.alignment` when set to a u32 power of two, else 32).
    public var alignment: Int {
        if let v = metadata.first(where: { $0.key == "general.alignment" })?.value, case let .uint32(a) = v, a > 0, a & (a - 1) == 0 {
            return Int(a)
        }
        return GGUFFile.defaultAlignment
    }

    /// Adds a tensor whose bytes are produced when the file is written.
    /// - Parameters:
    ///   - name: the tensor's name, unique in the file.
    ///   - typeID: a raw ggml type id (any id, so unknown types can be copied through).
    ///   - dimensions: GGUF order, contiguous dimension first (`[columns, rows]` for a matrix).
    ///   - byteCount: the size of the data; checked against the type and dimensions for known types.
    ///   - produce: returns exactly `byteCount` bytes; called once, in tensor order, while writing.
    public mutating func addTensor(name: String, typeID: UInt32, dimensions: [Int], byteCount: Int, produce: @escaping () throws -> [UInt8]) throws {
        guard !tensors.contains(where: { $0.name == name }) else {
            throw QuantizationError(.invalidMetadata, "tensor '\(name)' was added twice")
        }
        guard (1...4).contains(dimensions.count), dimensions.allSatisfy({ $0 >= 0 }) else {
            throw QuantizationError(.invalidShape, "tensor '\(name)' has dimensions \(dimensions); GGUF needs 1–4 non-negative dimensions")
        }
        if let t = GGMLType(rawValue: typeID) {
            let n = dimensions.reduce(1, *)
            guard dimensions[0] % t.blockSize == 0, n / t.blockSize * t.blockBytes == byteCount else {
                throw QuantizationError(.invalidData, "tensor '\(name)' (\(t), dims \(dimensions)) needs \(n / t.blockSize * t.blockBytes) bytes, not \(byteCount)")
            }
        }
        tensors.append(PendingTensor(name: name, typeID: typeID, dimensions: dimensions, byteCount: byteCount, produce: produce))
    }

    /// Adds a tensor from its encoded bytes.
    public mutating func addTensor(name: String, type: GGMLType, dimensions: [Int], bytes: [UInt8]) throws {
        try addTensor(name: name, typeID: type.rawValue, dimensions: dimensions, byteCount: bytes.count) { bytes }
    }

    /// Adds a Float32 tensor (shape outermost first, as `Tensor` uses).
    public mutating func addTensor(name: String, float32 tensor: Tensor) throws {
        var b = [UInt8](repeating: 0, count: tensor.elementCount * 4)
        tensor.withUnsafeBufferPointer { src in
            b.withUnsafeMutableBytes { dst in
                for i in src.indices { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
            }
        }
        try addTensor(name: name, type: .f32, dimensions: tensor.shape.dimensions.reversed(), bytes: b)
    }

    /// Adds a Q8_0/Q4_0/Q4_1 matrix (`[rows, columns]` → GGUF dims `[columns, rows]`).
    public mutating func addTensor(name: String, matrix: QuantizedMatrix) throws {
        guard let t = matrix.format.ggmlType else {
            throw QuantizationError(.unsupportedType, "\(matrix.format) has no GGUF tensor type; GGUF stores q8_0, q4_0 and q4_1")
        }
        try addTensor(name: name, type: t, dimensions: [matrix.columns, matrix.rows], bytes: matrix.bytes)
    }

    // MARK: Encoding

    func header() throws -> [UInt8] {
        if let v = metadata.first(where: { $0.key == "general.alignment" })?.value {
            guard case let .uint32(a) = v, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
                throw QuantizationError(.invalidMetadata, "general.alignment is \(v) (\(v.type)); set it to a u32 power of two such as 32")
            }
        }
        var out: [UInt8] = []
        out.u32(GGUFFile.magic)
        out.u32(3)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(metadata.count))
        for (k, v) in metadata {
            out.string(k)
            out.u32(v.type.rawValue)
            try out.value(v, key: k)
        }
        var offset = 0
        for t in tensors {
            out.string(t.name)
            out.u32(UInt32(t.dimensions.count))
            for d in t.dimensions { out.u64(UInt64(d)) }
            out.u32(t.typeID)
            out.u64(UInt64(offset))
            offset += padded(t.byteCount)
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: padded(out.count) - out.count))
        return out
    }

    func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The whole file in memory.
    public func serialize() throws -> [UInt8] {
        var out = try header()
        for t in tensors {
            let b = try t.produce()
            guard b.count == t.byteCount else {
                throw QuantizationError(.invalidData, "tensor '\(t.name)' produced \(b.count) bytes, declared \(t.byteCount)")
            }
            out.append(contentsOf: b)
            out.append(contentsOf: [UInt8](repeating: 0, count: padded(b.count) - b.count))
        }
        return out
    }

    /// Writes the file, producing one tensor at a time. The bytes go to `path` + `.partial` first and
    /// are renamed over `path` only when complete, so a failure never leaves a truncated file behind.
    public func write(to path: String) throws {
        let partial = path + ".partial"
        do {
            try writeDirectly(to: partial)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        guard rename(partial, path) == 0 else {
            let reason = String(describing: POSIXErrorCode(rawValue: errno).map { POSIXError($0) } as Any)
            try? FileManager.default.removeItem(atPath: partial)
            throw QuantizationError(.io, "cannot move the finished file to '\(path)'", underlying: reason)
        }
    }

    func writeDirectly(to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw QuantizationError(.io, "cannot create '\(path)'; check the directory exists and is writable")
        }
        do {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? h.close() }
            try h.write(contentsOf: try header())
            for t in tensors {
                let b = try t.produce()
                guard b.count == t.byteCount else {
                    throw QuantizationError(.invalidData, "tensor '\(t.name)' produced \(b.count) bytes, declared \(t.byteCount)")
                }
                try h.write(contentsOf: b)
                try h.write(contentsOf: [UInt8](repeating: 0, count: padded(b.count) - b.count))
            }
        } catch let e as QuantizationError {
            throw e
        } catch {
            throw QuantizationError(.io, "writing '\(path)' failed", underlying: "\(error)")
        }
    }
}

extension [UInt8] {
    mutating func u32(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        append(contentsOf: s.utf8)
    }

    mutating func value(_ v: GGUFValue, key: String) throws {
        switch v {
        case let .uint8(x): append(x)
        case let .int8(x): append(UInt8(bitPattern: x))
        case let .uint16(x): Swift.withUnsafeBytes(of: x.littleEndian) { append(contentsOf: $0) }
        case let .int16(x): Swift.withUnsafeBytes(of: x.littleEndian) { append(contentsOf: $0) }
        case let .uint32(x): u32(x)
        case let .int32(x): u32(UInt32(bitPattern: x))
        case let .float32(x): u32(x.bitPattern)
        case let .bool(x): append(x ? 1 : 0)
        case let .string(s): string(s)
        case let .uint64(x): u64(x)
        case let .int64(x): u64(UInt64(bitPattern: x))
        case let .float64(x): u64(x.bitPattern)
        case let .array(et, values):
            u32(et.rawValue)
            u64(UInt64(values.count))
            for e in values {
                guard e.type == et else {
                    throw QuantizationError(.invalidMetadata, "array '\(key)' declares \(et) elements but holds a \(e.type)")
                }
                try value(e, key: key)
            }
        }
    }
}
