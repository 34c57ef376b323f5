/// Parses and validates a safetensors header against the file that holds it.
enum SafetensorsHeaderParser {
    struct Parsed {
        var tensors: [SafetensorsTensorInfo]
        var metadata: [String: String]
        var headerByteCount: Int
    }

    static func parse(_ file: UnsafeRawBufferPointer, file name: String) throws(ModelRuntimeError) -> Parsed {
        func invalid(_ message: String) -> ModelRuntimeError {
            ModelRuntimeError(.invalidFile, "safetensors file '\(name)': \(message)")
        }
        guard file.count >= 8 else {
            throw invalid("is \(file.count) bytes; a safetensors file starts with an 8-byte header length — the file is truncated or not safetensors")
        }
        let declared = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard declared <= UInt64(SafetensorsFile.maximumHeaderByteCount) else {
            throw invalid("header length \(declared) exceeds the format's limit of \(SafetensorsFile.maximumHeaderByteCount) bytes — the file is corrupt or not safetensors")
        }
        let headerCount = Int(declared)
        guard headerCount <= file.count - 8 else {
            throw invalid("header length \(headerCount) runs past the end of the \(file.count)-byte file — the file is truncated")
        }
        let header = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerCount)])
        let json: SafetensorsJSONValue
        do {
            json = try SafetensorsJSONParser.parse(header)
        } catch {
            throw invalid("header JSON is invalid at header byte \(error.offset): \(error.message)")
        }
        guard case let .object(object) = json else {
            throw invalid("header is \(json.kindName), not a JSON object")
        }
        let dataCount = file.count - 8 - headerCount

        var tensors: [SafetensorsTensorInfo] = []
        tensors.reserveCapacity(object.entries.count)
        var metadata: [String: String] = [:]
        for (key, value) in object.entries {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, invalid: invalid)
                continue
            }
            let info = try parseTensor(key, value, dataCount: dataCount, invalid: invalid)
            tensors.append(info)
        }

        // The data section must be tiled exactly: sorted by offset, each tensor starts where the last ended.
        tensors.sort { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }
        var cursor = 0
        var previous: SafetensorsTensorInfo?
        for info in tensors {
            if info.byteRange.lowerBound < cursor, let previous {
                throw invalid("tensor \(quoted(info.name)) data_offsets [\(info.byteRange.lowerBound), \(info.byteRange.upperBound)] overlap tensor \(quoted(previous.name)) [\(previous.byteRange.lowerBound), \(previous.byteRange.upperBound)]; each byte of the data section must belong to exactly one tensor")
            }
            if info.byteRange.lowerBound > cursor {
                let after = previous.map { "after tensor \(quoted($0.name))" } ?? "at the start of the data section"
                throw invalid("data section has a hole of \(info.byteRange.lowerBound - cursor) bytes \(after), before tensor \(quoted(info.name)) at offset \(info.byteRange.lowerBound); the format requires the data to be fully indexed")
            }
            cursor = info.byteRange.upperBound
            previous = info
        }
        guard cursor == dataCount else {
            let last = previous.map { "the last tensor, \(quoted($0.name)), ends" } ?? "the header declares no tensor data, ending"
            throw invalid("\(last) at data offset \(cursor) but the data section holds \(dataCount) bytes; the format forbids unindexed trailing bytes")
        }
        return Parsed(tensors: tensors, metadata: metadata, headerByteCount: headerCount)
    }

    private static func parseMetadata(
        _ value: SafetensorsJSONValue,
        invalid: (String) -> ModelRuntimeError
    ) throws(ModelRuntimeError) -> [String: String] {
        switch value {
        case .null:
            return [:]
        case let .object(entries):
            var metadata: [String: String] = [:]
            for (key, value) in entries.entries {
                guard case let .string(string) = value else {
                    throw invalid("__metadata__ value for \(quoted(key)) is \(value.kindName); the format allows only string values")
                }
                metadata[key] = string
            }
            return metadata
        default:
            throw invalid("__metadata__ is \(value.kindName); it must be an object of strings")
        }
    }

    private static func parseTensor(
        _ name: String,
        _ value: SafetensorsJSONValue,
        dataCount: Int,
        invalid: (String) -> ModelRuntimeError
    ) throws(ModelRuntimeError) -> SafetensorsTensorInfo {
        guard case let .object(entry) = value else {
            throw invalid("tensor \(quoted(name)) is described by \(value.kindName), not an object with dtype, shape and data_offsets")
        }
        guard case let .string(dtypeName)? = entry["dtype"] else {
            throw invalid("tensor \(quoted(name)) has \(entry["dtype"].map(\.kindName) ?? "no") dtype; it needs a dtype string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw invalid("tensor \(quoted(name)) has unknown dtype '\(dtypeName.prefix(40))'; known: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard case let .array(shapeValues)? = entry["shape"] else {
            throw invalid("tensor \(quoted(name)) has \(entry["shape"].map(\.kindName) ?? "no") shape; it needs an array of dimensions")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeValues.count)
        var elementCount = 1
        for (axis, dimension) in shapeValues.enumerated() {
            guard case let .integer(d) = dimension, d >= 0 else {
                throw invalid("tensor \(quoted(name)) shape[\(axis)] is \(describe(dimension)); dimensions must be non-negative integers")
            }
            // Multiply left to right, as `Shape.elementCount` will.
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw invalid("tensor \(quoted(name)) shape \(shapeDescription(shapeValues)) has more elements than fit in 64 bits")
            }
            elementCount = product
            shape.append(d)
        }
        let (bits, bitOverflow) = elementCount.multipliedReportingOverflow(by: dtype.bitsPerElement)
        guard !bitOverflow else {
            throw invalid("tensor \(quoted(name)) \(dtype) shape \(brief(shape)) needs more bytes than fit in 64 bits")
        }
        guard bits % 8 == 0 else {
            throw invalid("tensor \(quoted(name)) \(dtype) shape \(brief(shape)) is \(bits) bits, not a whole number of bytes")
        }
        let byteCount = bits / 8
        guard case let .array(offsets)? = entry["data_offsets"], offsets.count == 2 else {
            throw invalid("tensor \(quoted(name)) has \(entry["data_offsets"].map(\.kindName) ?? "no") data_offsets; it needs [begin, end]")
        }
        guard case let .integer(begin) = offsets[0], case let .integer(end) = offsets[1], begin >= 0, end >= 0 else {
            throw invalid("tensor \(quoted(name)) data_offsets [\(describe(offsets[0])), \(describe(offsets[1]))] must be two non-negative integers")
        }
        guard begin <= end else {
            throw invalid("tensor \(quoted(name)) data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end <= dataCount else {
            throw invalid("tensor \(quoted(name)) data_offsets [\(begin), \(end)] run past the \(dataCount)-byte data section — the file is truncated or corrupt")
        }
        guard end - begin == byteCount else {
            throw invalid("tensor \(quoted(name)) data_offsets [\(begin), \(end)] hold \(end - begin) bytes but \(dtype) shape \(brief(shape)) needs \(byteCount)")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    private static func describe(_ value: SafetensorsJSONValue) -> String {
        switch value {
        case let .integer(i): String(i)
        case let .double(d): String(d)
        default: value.kindName
        }
    }

    private static func shapeDescription(_ values: [SafetensorsJSONValue]) -> String {
        let shown = values.prefix(8).map(describe).joined(separator: ", ")
        return "[" + shown + (values.count > 8 ? ", … (\(values.count) dimensions)]" : "]")
    }

    private static func brief(_ shape: [Int]) -> String {
        shapeDescription(shape.map { .integer($0) })
    }

    /// A name for an error message, quoted and cut short: a hostile header can hold megabyte-long names.
    static func quoted(_ name: String) -> String {
        name.count <= 120 ? "'\(name)'" : "'\(name.prefix(120))…' (\(name.utf8.count) bytes)"
    }
}
