import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's entry in a GGUF file's tensor table.
public struct GGUFTensorInfo: Sendable, Hashable {
    public let name: String
    /// Dimensions in GGUF/ggml order: `dimensions[0]` is the contiguous (fastest) one, so a
    /// PyTorch `[rows, columns]` weight appears as `[columns, rows]`.
    public let dimensions: [Int]
    /// The raw ggml type id as stored.
    public let typeID: UInt32
    /// The type when this module supports it (`nil` for other ggml types).
    public let type: GGMLType?
    /// Offset of the data relative to the start of the data section.
    public let offset: Int
    /// Size of the data in bytes (`nil` when the type is not supported here).
    public let byteCount: Int?

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// The shape outermost first (`[rows, columns]` for a matrix), as `Tensor` uses.
    public var rowMajorShape: [Int] { dimensions.reversed() }
    /// The type name (`Q4_0`, or `type 12` when unsupported).
    public var typeName: String { type?.description ?? "type \(typeID)" }
}

/// Read-only bytes of a GGUF file: memory-mapped from disk, or owned in memory.
///
/// `@unchecked Sendable`: the bytes are never written after `init`, and the mapping or
/// allocation lives until `deinit`, so sharing the pointer across tasks is safe.
public final class GGUFStorage: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    /// True when `bytes` is an `mmap` mapping (released with `munmap`), false when it is an allocation.
    private let isMapped: Bool

    /// Copies `data` into an owned buffer.
    public init(copying data: some Collection<UInt8>) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        _ = p.initializeMemory(as: UInt8.self, from: data)
        bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[0..<data.count])
        isMapped = false
    }

    /// Memory-maps the file at `path` read-only.
    public init(mappingFileAt path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw QuantizationError(.io, "cannot open '\(path)'; check that the file exists and is readable", underlying: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw QuantizationError(.io, "cannot stat '\(path)'", underlying: String(cString: strerror(errno)))
        }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            isMapped = true
            return
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw QuantizationError(.io, "cannot memory-map '\(path)' (\(size) bytes)", underlying: String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: m, count: size)
        isMapped = true
    }

    /// Tells the kernel this process no longer needs the whole pages inside `range` of a mapped file
    /// (`madvise(MADV_DONTNEED)`): they leave the resident set and are read again from the page cache
    /// if touched. A loader calls it after repacking a tensor so the file and the packed copy are not
    /// both resident at peak. Does nothing for owned (copied) bytes.
    package func releasePages(_ range: Range<Int>) {
        guard isMapped, let base = bytes.baseAddress, !range.isEmpty, range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped {
            _ = munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            base.deallocate()
        }
    }
}

/// A parsed GGUF file (versions 2 and 3): metadata, tensor table and access to tensor data.
///
/// Parsing checks every count, length, offset and size against the file before use, so a
/// corrupt or hostile file gives a ``QuantizationError`` (`.badMagic`, `.unsupportedVersion`,
/// `.truncated`, `.outOfBounds`, `.absurdCount`, `.badString`, `.unsupportedType`,
/// `.invalidMetadata`) and never reads outside the buffer.
///
/// ```swift
/// let file = try GGUFFile(contentsOf: "model.gguf")   // memory-mapped
/// file.metadata["general.architecture"]              // .string("llama")
/// let w = try file.tensor(named: "blk.0.attn_q.weight") // dequantized Tensor [rows, columns]
/// ```
public struct GGUFFile: Sendable {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    public static let defaultAlignment = 32
    /// Deepest nesting of arrays accepted.
    public static let maximumArrayDepth = 8

    public let version: UInt32
    /// Metadata in file order.
    public let metadataEntries: [(key: String, value: GGUFValue)]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment` or 32.
    public let alignment: Int
    /// Byte offset of the data section.
    public let dataOffset: Int
    public let storage: GGUFStorage

    /// Memory-maps and parses the file at `path`.
    public init(contentsOf path: String) throws {
        try self.init(storage: GGUFStorage(mappingFileAt: path))
    }

    /// Parses bytes held in memory.
    public init(bytes: [UInt8]) throws {
        try self.init(storage: GGUFStorage(copying: bytes))
    }

    public init(storage: GGUFStorage) throws {
        self.storage = storage
        var r = ByteReader(storage.bytes)
        guard storage.bytes.count >= 4 else { throw QuantizationError(.truncated, "file is \(storage.bytes.count) bytes, too short for a GGUF header; is it a GGUF file?") }
        let magic = try r.u32("magic")
        guard magic == Self.magic else {
            throw QuantizationError(.badMagic, String(format: "file starts with 0x%08x, not the GGUF magic \"GGUF\"; is this a GGUF file?", magic))
        }
        version = try r.u32("version")
        guard version == 3 || version == 2 else {
            throw QuantizationError(.unsupportedVersion, "GGUF version \(version) is not supported; this reader handles versions 2 and 3 (re-convert old files with llama.cpp's tools)")
        }
        let tensorCount = try r.count("tensor count", minimumElementSize: 8 + 4 + 4 + 8)
        let kvCount = try r.count("metadata count", minimumElementSize: 8 + 4 + 1)
        var entries: [(key: String, value: GGUFValue)] = []
        var dict: [String: GGUFValue] = [:]
        for i in 0..<kvCount {
            let key = try r.string("key of metadata entry \(i)")
            let rawType = try r.u32("type of '\(key)'")
            guard let t = GGUFValueType(rawValue: rawType) else {
                throw QuantizationError(.unsupportedType, "metadata '\(key)' has unknown value type \(rawType)", underlying: "offset \(r.offset - 4)")
            }
            let value = try r.value(t, context: key, depth: 0)
            guard dict[key] == nil else { throw QuantizationError(.invalidMetadata, "metadata key '\(key)' appears twice") }
            dict[key] = value
            entries.append((key, value))
        }
        metadataEntries = entries
        metadata = dict
        if let a = dict["general.alignment"] {
            guard case let .uint32(v) = a, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw QuantizationError(.invalidMetadata, "general.alignment is \(a) (\(a.type)); it must be a u32 power of two")
            }
            alignment = Int(v)
        } else {
            alignment = Self.defaultAlignment
        }
        var infos: [GGUFTensorInfo] = []
        var names = Set<String>()
        for i in 0..<tensorCount {
            let name = try r.string("name of tensor \(i)")
            let nDims = try r.u32("rank of '\(name)'")
            guard nDims >= 1, nDims <= 4 else {
                throw QuantizationError(.absurdCount, "tensor '\(name)' has rank \(nDims); GGUF tensors have rank 1–4")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let raw = try r.u64("dimension \(d) of '\(name)'")
                guard raw <= UInt64(Int32.max) * 1024, let v = Int(exactly: raw) else {
                    throw QuantizationError(.outOfBounds, "tensor '\(name)' dimension \(d) is \(raw), larger than any file could hold")
                }
                let (p, o) = elements.multipliedReportingOverflow(by: v)
                guard !o else { throw QuantizationError(.outOfBounds, "tensor '\(name)' dimensions \(dims + [v]) overflow the element count") }
                elements = p
                dims.append(v)
            }
            let typeID = try r.u32("type of '\(name)'")
            let rawOffset = try r.u64("offset of '\(name)'")
            guard let offset = Int(exactly: rawOffset), offset <= storage.bytes.count else {
                throw QuantizationError(.outOfBounds, "tensor '\(name)' data offset \(rawOffset) is past the end of the file (\(storage.bytes.count) bytes)")
            }
            guard offset % alignment == 0 else {
                throw QuantizationError(.outOfBounds, "tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            guard names.insert(name).inserted else { throw QuantizationError(.invalidMetadata, "tensor name '\(name)' appears twice") }
            let type = GGMLType(rawValue: typeID)
            var size: Int?
            if let type {
                guard dims[0] % type.blockSize == 0 else {
                    throw QuantizationError(.invalidShape, "tensor '\(name)' (\(type)) has \(dims[0]) elements per row, not a multiple of its block size \(type.blockSize)")
                }
                let (s, o) = (elements / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
                guard !o else { throw QuantizationError(.outOfBounds, "tensor '\(name)' size overflows") }
                size = s
            }
            infos.append(GGUFTensorInfo(name: name, dimensions: dims, typeID: typeID, type: type, offset: offset, byteCount: size))
        }
        let headerEnd = r.offset
        let pad = (alignment - headerEnd % alignment) % alignment
        dataOffset = headerEnd + pad
        let dataSize = storage.bytes.count - min(dataOffset, storage.bytes.count)
        if !infos.isEmpty, dataOffset > storage.bytes.count {
            throw QuantizationError(.truncated, "file ends at \(storage.bytes.count) bytes, before its data section at \(dataOffset)")
        }
        for t in infos {
            guard let size = t.byteCount else { continue }
            let (end, o) = t.offset.addingReportingOverflow(size)
            guard !o, end <= dataSize else {
                throw QuantizationError(.outOfBounds,
                    "tensor '\(t.name)' (\(t.typeName), \(size) bytes at data offset \(t.offset)) extends past the end of the file; the file is truncated or corrupt")
            }
        }
        tensors = infos
    }

    /// The tensor entry called `name`.
    public func info(named name: String) throws -> GGUFTensorInfo {
        guard let t = tensors.first(where: { $0.name == name }) else {
            throw QuantizationError(.invalidMetadata, "no tensor named '\(name)' in this file (\(tensors.count) tensors)")
        }
        return t
    }

    /// The raw bytes of a tensor (a view into the mapping; valid while this file value lives).
    public func withTensorBytes<R>(_ info: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let size = info.byteCount else {
            throw QuantizationError(.unsupportedType, "tensor '\(info.name)' has \(info.typeName), which this module cannot decode (supported: F32, F16, Q8_0, Q4_0, Q4_1)")
        }
        let start = dataOffset + info.offset
        return try body(UnsafeRawBufferPointer(rebasing: storage.bytes[start..<(start + size)]))
    }

    /// A copy of a tensor's raw bytes.
    public func tensorBytes(_ info: GGUFTensorInfo) throws -> [UInt8] {
        try withTensorBytes(info) { Array($0) }
    }

    /// A tensor decoded to Float32, shape outermost first (`[rows, columns]`).
    public func tensor(named name: String) throws -> Tensor {
        let info = try info(named: name)
        let shape = Shape(info.rowMajorShape)
        return try withTensorBytes(info) { raw in
            switch info.type {
            case .f32?:
                return Tensor(shape: shape) { out in
                    for i in 0..<out.count { out[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian) }
                }
            case .f16?:
                return Tensor(shape: shape) { out in
                    for i in 0..<out.count { out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian)) }
                }
            default:
                return try quantizedMatrix(info, raw).dequantize().reshaped(shape)
            }
        }
    }

    /// A Q8_0/Q4_0/Q4_1 tensor as a ``QuantizedMatrix`` `[∏ outer dims, dimensions[0]]`.
    public func quantizedMatrix(named name: String) throws -> QuantizedMatrix {
        let info = try info(named: name)
        return try withTensorBytes(info) { try quantizedMatrix(info, $0) }
    }

    private func quantizedMatrix(_ info: GGUFTensorInfo, _ raw: UnsafeRawBufferPointer) throws -> QuantizedMatrix {
        guard let f = info.type?.quantizationFormat else {
            throw QuantizationError(.unsupportedType, "tensor '\(info.name)' is \(info.typeName), not a quantized block type")
        }
        let cols = info.dimensions[0]
        guard cols > 0, info.elementCount > 0 else {
            throw QuantizationError(.invalidShape, "tensor '\(info.name)' has dimensions \(info.dimensions); a quantized matrix needs every dimension ≥ 1")
        }
        return try QuantizedMatrix(format: f, rows: info.elementCount / cols, columns: cols, bytes: Array(raw))
    }
}

/// Bounds-checked little-endian reader over untrusted bytes.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset = 0
    init(_ b: UnsafeRawBufferPointer) { buffer = b }
    var remaining: Int { buffer.count - offset }

    mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, n <= remaining else {
            throw QuantizationError(.truncated, "file ends while reading \(what): needs \(n) bytes at offset \(offset), \(max(remaining, 0)) left")
        }
        defer { offset += n }
        return offset
    }

    mutating func u8(_ w: String) throws -> UInt8 { buffer[try take(1, w)] }
    mutating func u16(_ w: String) throws -> UInt16 { UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(2, w), as: UInt16.self)) }
    mutating func u32(_ w: String) throws -> UInt32 { UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(4, w), as: UInt32.self)) }
    mutating func u64(_ w: String) throws -> UInt64 { UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(8, w), as: UInt64.self)) }

    /// A 64-bit count that must be satisfiable by the remaining bytes at `minimumElementSize` bytes each.
    mutating func count(_ what: String, minimumElementSize: Int) throws -> Int {
        let c = try u64(what)
        guard c <= UInt64(remaining / max(minimumElementSize, 1)) else {
            throw QuantizationError(.absurdCount, "\(what) is \(c), more than the \(remaining) remaining bytes can hold; the file is corrupt")
        }
        return Int(c)
    }

    mutating func string(_ what: String) throws -> String {
        let n = try u64("length of \(what)")
        guard n <= UInt64(remaining) else {
            throw QuantizationError(.truncated, "\(what) claims \(n) bytes at offset \(offset - 8), but only \(remaining) remain")
        }
        let start = try take(Int(n), what)
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: buffer[start..<(start + Int(n))]), as: UTF8.self) else {
            throw QuantizationError(.badString, "\(what) at offset \(start) is not valid UTF-8")
        }
        return s
    }

    mutating func value(_ t: GGUFValueType, context: String, depth: Int) throws -> GGUFValue {
        switch t {
        case .uint8: return .uint8(try u8(context))
        case .int8: return .int8(Int8(bitPattern: try u8(context)))
        case .uint16: return .uint16(try u16(context))
        case .int16: return .int16(Int16(bitPattern: try u16(context)))
        case .uint32: return .uint32(try u32(context))
        case .int32: return .int32(Int32(bitPattern: try u32(context)))
        case .float32: return .float32(Float(bitPattern: try u32(context)))
        case .uint64: return .uint64(try u64(context))
        case .int64: return .int64(Int64(bitPattern: try u64(context)))
        case .float64: return .float64(Double(bitPattern: try u64(context)))
        case .bool:
            let b = try u8(context)
            guard b <= 1 else { throw QuantizationError(.invalidMetadata, "'\(context)' is a bool stored as \(b); expected 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try string("value of '\(context)'"))
        case .array:
            guard depth < GGUFFile.maximumArrayDepth else {
                throw QuantizationError(.absurdCount, "'\(context)' nests arrays deeper than \(GGUFFile.maximumArrayDepth) levels")
            }
            let raw = try u32("element type of '\(context)'")
            guard let et = GGUFValueType(rawValue: raw) else {
                throw QuantizationError(.unsupportedType, "array '\(context)' has unknown element type \(raw)")
            }
            let n = try count("element count of '\(context)'", minimumElementSize: et.minimumSize)
            var values: [GGUFValue] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(try value(et, context: context, depth: depth + 1)) }
            return .array(elementType: et, values)
        }
    }
}
