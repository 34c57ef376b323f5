#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TensorCore

/// A `.safetensors` file, memory-mapped read-only and validated before use.
///
/// The format is an 8-byte little-endian header length `N`, `N` bytes of
/// UTF-8 JSON mapping each tensor name to its `dtype`, `shape` and
/// `data_offsets` (plus an optional `__metadata__` string map), then the data
/// section. ``init(contentsOf:)`` checks every number in the header against
/// the file before anything is read: `N` is at most 100 MB and within the
/// file; the JSON is valid, an object, and has no duplicate keys; every dtype
/// is one ``SafetensorsDType`` names; every shape is non-negative and its
/// element count and byte count fit in `Int`; each tensor's `data_offsets`
/// cover exactly `elementCount × dtype size` bytes; and, as the format
/// requires ("the byte buffer needs to be entirely indexed, and cannot
/// contain holes"), the tensors tile the data section from 0 to its end
/// with no gap and no overlap. A file that fails any check throws
/// ``ModelRuntimeError/Code/invalidFile`` naming the file, the tensor and the
/// problem; no header value can cause an out-of-bounds read.
///
/// ```swift
/// let file = try SafetensorsFile(contentsOf: "model.safetensors")
/// let embeddings = try file.tensor(named: "model.embed_tokens.weight")   // [vocab, hidden]
/// ```
///
/// The mapping stays valid for the life of the object. As with any `mmap`,
/// another process truncating the file while it is mapped makes later reads
/// of the lost pages fault (SIGBUS); weight files are not expected to change
/// under a running model.
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable after `init`, and
    // the bytes behind `buffer` are a PROT_READ mapping (or a private copy) that
    // nothing writes, so concurrent readers cannot race.

    /// The path the file was opened from, or the name given to ``init(bytes:name:)``.
    public let path: String
    /// Every tensor, in data-section order (ascending ``SafetensorsTensorInfo/byteRange``).
    public let tensors: [SafetensorsTensorInfo]
    /// The header's `__metadata__` map (empty when absent), e.g. `["format": "pt"]`.
    public let metadata: [String: String]
    /// `N`, the byte length of the JSON header (including any padding).
    public let headerByteCount: Int
    /// The file offset where the data section begins (`8 + N`).
    public var dataSectionOffset: Int { 8 + headerByteCount }
    /// The total size of the file in bytes.
    public var fileByteCount: Int { buffer.count }

    /// The most header bytes accepted (the limit the reference implementation uses).
    public static let maximumHeaderByteCount = 100_000_000

    private let buffer: SafetensorsFileBuffer
    private let positions: [String: Int]

    /// Maps and validates the file at `path`.
    ///
    /// - Throws: ``ModelRuntimeError/Code/io`` when the file cannot be opened,
    ///   read or mapped; ``ModelRuntimeError/Code/invalidFile`` when it is not a
    ///   well-formed safetensors file.
    public convenience init(contentsOf path: String) throws(ModelRuntimeError) {
        try self.init(buffer: try SafetensorsFileBuffer(mapping: path), path: path)
    }

    /// Validates a safetensors file held in memory (the bytes are copied).
    ///
    /// - Parameter name: how error messages and ``path`` refer to the bytes.
    public convenience init(bytes: [UInt8], name: String) throws(ModelRuntimeError) {
        try self.init(buffer: SafetensorsFileBuffer(copying: bytes), path: name)
    }

    private init(buffer: SafetensorsFileBuffer, path: String) throws(ModelRuntimeError) {
        let parsed = try SafetensorsHeaderParser.parse(buffer.bytes, file: path)
        self.buffer = buffer
        self.path = path
        self.tensors = parsed.tensors
        self.metadata = parsed.metadata
        self.headerByteCount = parsed.headerByteCount
        var positions: [String: Int] = [:]
        positions.reserveCapacity(parsed.tensors.count)
        for (i, info) in parsed.tensors.enumerated() { positions[info.name] = i }
        self.positions = positions
    }

    /// Tensor names, in data-section order.
    public var tensorNames: [String] { tensors.map(\.name) }

    /// The header entry of the tensor called `name`, or nil when the file has none.
    public func info(named name: String) -> SafetensorsTensorInfo? {
        positions[name].map { tensors[$0] }
    }

    /// Calls `body` with the raw little-endian bytes of the tensor called `name`.
    ///
    /// The buffer is a view into the mapping, valid only inside `body`; it is
    /// not necessarily aligned to the element size.
    ///
    /// - Throws: ``ModelRuntimeError/Code/missingTensor`` when the file has no such tensor, or what `body` throws.
    public func withTensorBytes<R>(
        _ name: String,
        _ body: (UnsafeRawBufferPointer) throws(ModelRuntimeError) -> R
    ) throws(ModelRuntimeError) -> R {
        guard let info = info(named: name) else { throw missing(name) }
        return try withBytes(of: info, body)
    }

    /// The tensor called `name`, converted to Float32.
    ///
    /// `F32` is copied, `F16` widened exactly, `BF16` widened exactly (a
    /// bfloat16 is the high half of a Float32).
    ///
    /// - Throws: ``ModelRuntimeError/Code/missingTensor`` when the file has no
    ///   such tensor; ``ModelRuntimeError/Code/unsupportedTensorType`` when its
    ///   dtype is not one of ``SafetensorsDType/convertibleToFloat32``.
    public func tensor(named name: String) throws(ModelRuntimeError) -> Tensor {
        guard let info = info(named: name) else { throw missing(name) }
        let convert: (UnsafeRawPointer, Int, UnsafeMutablePointer<Float>) -> Void
        switch info.dtype {
        case .f32: convert = SafetensorsConversion.copyF32
        case .f16: convert = SafetensorsConversion.convertF16
        case .bf16: convert = SafetensorsConversion.convertBF16
        default:
            throw ModelRuntimeError(
                .unsupportedTensorType,
                "safetensors file '\(path)': tensor '\(name)' is \(info.dtype) \(info.shape); only "
                    + SafetensorsDType.convertibleToFloat32.map(\.rawValue).joined(separator: ", ")
                    + " convert to Float32 (read other types with withTensorBytes)"
            )
        }
        let count = info.elementCount
        return try withBytes(of: info) { bytes in
            Tensor(shape: Shape(info.shape)) { (out: inout UnsafeMutableBufferPointer<Float>) in
                // A zero-element tensor has no bytes (and possibly a nil base address).
                guard count > 0, let source = bytes.baseAddress, let destination = out.baseAddress else { return }
                convert(source, count, destination)
            }
        }
    }

    private func withBytes<R>(
        of info: SafetensorsTensorInfo,
        _ body: (UnsafeRawBufferPointer) throws(ModelRuntimeError) -> R
    ) throws(ModelRuntimeError) -> R {
        let start = dataSectionOffset + info.byteRange.lowerBound
        let end = dataSectionOffset + info.byteRange.upperBound
        // The parser proved start ≤ end ≤ buffer.count; keep the mapping alive while `body` runs.
        return try withExtendedLifetime(buffer) { () throws(ModelRuntimeError) -> R in
            try body(UnsafeRawBufferPointer(rebasing: buffer.bytes[start..<end]))
        }
    }

    private func missing(_ name: String) -> ModelRuntimeError {
        let sample = tensors.prefix(3).map { "'\($0.name)'" }.joined(separator: ", ")
        return ModelRuntimeError(
            .missingTensor,
            "safetensors file '\(path)' has no tensor named '\(name)' (it has \(tensors.count) tensors"
                + (tensors.isEmpty ? ")" : ", e.g. \(sample))")
        )
    }
}

/// The bytes of one safetensors file: a read-only `mmap` or a private heap copy, released on deinit.
final class SafetensorsFileBuffer: @unchecked Sendable {
    // @unchecked Sendable: `bytes` is set once in init and never written
    // through (the mapping is PROT_READ; the copy is private to this object).
    let bytes: UnsafeRawBufferPointer
    private let isMapped: Bool
    /// The heap block `init(copying:)` allocated, freed on deinit.
    private let allocation: UnsafeMutableRawPointer?

    var count: Int { bytes.count }

    init(copying source: [UInt8]) {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 16)
        source.withUnsafeBytes { memory.copyMemory(from: $0) }
        bytes = UnsafeRawBufferPointer(start: memory.baseAddress, count: source.count)
        allocation = memory.baseAddress
        isMapped = false
    }

    init(mapping path: String) throws(ModelRuntimeError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ModelRuntimeError(.io, "cannot open safetensors file '\(path)'; check the path and its permissions", underlying: Self.errnoDescription())
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw ModelRuntimeError(.io, "cannot stat safetensors file '\(path)'", underlying: Self.errnoDescription())
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw ModelRuntimeError(.io, "'\(path)' is not a regular file; pass the path of a .safetensors file")
        }
        let size = Int(status.st_size)
        if size == 0 {
            // mmap rejects a zero length; an empty file is simply too short to parse.
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            allocation = nil
            isMapped = false
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              base != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw ModelRuntimeError(.io, "cannot memory-map safetensors file '\(path)' (\(size) bytes)", underlying: Self.errnoDescription())
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
        allocation = nil
        isMapped = true
    }

    deinit {
        if isMapped, let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
        allocation?.deallocate()
    }

    private static func errnoDescription() -> String {
        let code = errno
        return "errno \(code): " + String(cString: strerror(code))
    }
}
