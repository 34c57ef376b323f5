#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TensorCore

/// A Hugging Face checkpoint directory: one `model.safetensors`, or a
/// `model.safetensors.index.json` whose `weight_map` names the shard holding
/// each tensor.
///
/// ```swift
/// let checkpoint = try SafetensorsCheckpoint(directory: "SmolLM2-135M")
/// let config = try HuggingFaceLlamaConfig(contentsOf: "SmolLM2-135M/config.json")
/// try config.checkTensors(in: checkpoint)
/// let wq = try checkpoint.tensor(named: config.tensorNames(layer: 0).queryWeight)
/// ```
///
/// Every shard is opened (mapped and validated) by the initializer, and every
/// tensor the index lists must exist in the shard it names. Tensors a shard
/// holds but the index does not list are ignored, as `transformers` does.
public struct SafetensorsCheckpoint: Sendable {
    /// The single-file name Hugging Face uses.
    public static let singleFileName = "model.safetensors"
    /// The index file name of a sharded checkpoint.
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: String
    /// Open files by file name (one entry for an unsharded checkpoint).
    public let files: [String: SafetensorsFile]
    /// Which file holds each tensor.
    public let weightMap: [String: String]

    /// Opens the checkpoint in `directory`, preferring the index when both forms are present.
    ///
    /// - Throws: ``ModelRuntimeError/Code/io`` when the directory has neither
    ///   file or a file cannot be read; ``ModelRuntimeError/Code/invalidFile``
    ///   when the index is malformed, names a shard that is absent, or a shard is
    ///   not valid safetensors; ``ModelRuntimeError/Code/missingTensor`` when a
    ///   shard lacks a tensor the index assigns to it.
    public init(directory: String) throws(ModelRuntimeError) {
        self.directory = directory
        let indexPath = Self.join(directory, Self.indexFileName)
        let singlePath = Self.join(directory, Self.singleFileName)
        if Self.isRegularFile(indexPath) {
            let index = try Self.readIndex(indexPath)
            var files: [String: SafetensorsFile] = [:]
            for shard in Set(index.values).sorted() {
                let shardPath = Self.join(directory, shard)
                guard Self.isRegularFile(shardPath) else {
                    let example = index.first { $0.value == shard }?.key ?? "?"
                    throw ModelRuntimeError(.invalidFile, "checkpoint index '\(indexPath)' assigns tensors (e.g. '\(example)') to shard '\(shard)', which is not in '\(directory)'; the download is incomplete")
                }
                files[shard] = try SafetensorsFile(contentsOf: shardPath)
            }
            for (tensor, shard) in index.sorted(by: { $0.key < $1.key }) where files[shard]?.info(named: tensor) == nil {
                throw ModelRuntimeError(.missingTensor, "checkpoint index '\(indexPath)' assigns tensor '\(tensor)' to shard '\(shard)', which does not contain it")
            }
            self.files = files
            self.weightMap = index
        } else if Self.isRegularFile(singlePath) {
            let file = try SafetensorsFile(contentsOf: singlePath)
            self.files = [Self.singleFileName: file]
            var map: [String: String] = [:]
            for info in file.tensors { map[info.name] = Self.singleFileName }
            self.weightMap = map
        } else {
            throw ModelRuntimeError(.io, "'\(directory)' has neither \(Self.singleFileName) nor \(Self.indexFileName); pass a Hugging Face checkpoint directory")
        }
    }

    /// All tensor names, sorted.
    public var tensorNames: [String] { weightMap.keys.sorted() }

    /// The file holding `name`, or nil.
    public func file(containing name: String) -> SafetensorsFile? {
        weightMap[name].flatMap { files[$0] }
    }

    /// The header entry of `name`, or nil when no shard holds it.
    public func info(named name: String) -> SafetensorsTensorInfo? {
        file(containing: name)?.info(named: name)
    }

    /// The tensor called `name`, converted to Float32 (see ``SafetensorsFile/tensor(named:)``).
    public func tensor(named name: String) throws(ModelRuntimeError) -> Tensor {
        guard let file = file(containing: name) else { throw missing(name) }
        return try file.tensor(named: name)
    }

    /// Calls `body` with the raw bytes of `name` (see ``SafetensorsFile/withTensorBytes(_:_:)``).
    public func withTensorBytes<R>(
        _ name: String,
        _ body: (UnsafeRawBufferPointer) throws(ModelRuntimeError) -> R
    ) throws(ModelRuntimeError) -> R {
        guard let file = file(containing: name) else { throw missing(name) }
        return try file.withTensorBytes(name, body)
    }

    private func missing(_ name: String) -> ModelRuntimeError {
        ModelRuntimeError(.missingTensor, "checkpoint '\(directory)' has no tensor named '\(name)' (\(weightMap.count) tensors in \(files.count) file\(files.count == 1 ? "" : "s"))")
    }

    // MARK: - Index and file system

    private static func readIndex(_ path: String) throws(ModelRuntimeError) -> [String: String] {
        func invalid(_ message: String) -> ModelRuntimeError {
            ModelRuntimeError(.invalidFile, "checkpoint index '\(path)': \(message)")
        }
        let bytes = try readSmallFile(path, limit: 64 << 20)
        let json: SafetensorsJSONValue
        do {
            json = try SafetensorsJSONParser.parse(bytes)
        } catch {
            throw invalid("invalid JSON at byte \(error.offset): \(error.message)")
        }
        guard case let .object(root) = json else { throw invalid("is \(json.kindName), not a JSON object") }
        guard case let .object(map)? = root["weight_map"] else {
            throw invalid("has \(root["weight_map"].map(\.kindName) ?? "no") weight_map; it needs an object of tensor name → shard file name")
        }
        var index: [String: String] = [:]
        for (tensor, value) in map.entries {
            guard case let .string(shard) = value else {
                throw invalid("weight_map entry for '\(tensor)' is \(value.kindName), not a shard file name")
            }
            // A shard must be a plain file name inside the directory: no path traversal.
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/"), !shard.contains("\\"), !shard.contains("\0") else {
                throw invalid("weight_map assigns '\(tensor)' to '\(shard)', which is not a plain file name in the checkpoint directory")
            }
            index[tensor] = shard
        }
        return index
    }

    /// Reads a whole file of at most `limit` bytes.
    static func readSmallFile(_ path: String, limit: Int) throws(ModelRuntimeError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ModelRuntimeError(.io, "cannot open '\(path)'; check the path and its permissions", underlying: errnoDescription())
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelRuntimeError(.io, "cannot read '\(path)'", underlying: errnoDescription())
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
            guard bytes.count <= limit else {
                throw ModelRuntimeError(.invalidFile, "'\(path)' is larger than \(limit) bytes; it is not a configuration or index file")
            }
        }
    }

    static func isRegularFile(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func errnoDescription() -> String {
        let code = errno
        return "errno \(code): " + String(cString: strerror(code))
    }
}
