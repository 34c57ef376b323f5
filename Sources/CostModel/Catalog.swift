import Foundation

/// The data every estimate starts from: models, GPUs, Azure VM SKUs, API
/// prices, PTU profiles and cost levers.
///
/// ``bundled()`` loads the JSON files shipped in the module's resources.
/// ``merging(contentsOf:)`` overlays a user file with the same layout (any
/// subset of the keys `models`, `gpus`, `vmSKUs`, `apiPrices`, `ptuProfiles`,
/// `levers`): an entry whose name already exists replaces it, a new name is
/// added. ``addingModel(huggingFaceConfig:name:file:)`` adds a model from a
/// Hugging Face `config.json`. Prices are data, never code.
public struct Catalog: Sendable, Hashable {
    public var models: [ModelSpec]
    public var gpus: [GPUSpec]
    public var vmSKUs: [VMSKU]
    public var apiPrices: [APIPrice]
    public var ptuProfiles: [PTUProfile]
    public var levers: [CostLeverSpec]

    public init(models: [ModelSpec] = [], gpus: [GPUSpec] = [], vmSKUs: [VMSKU] = [], apiPrices: [APIPrice] = [],
                ptuProfiles: [PTUProfile] = [], levers: [CostLeverSpec] = []) {
        self.models = models
        self.gpus = gpus
        self.vmSKUs = vmSKUs
        self.apiPrices = apiPrices
        self.ptuProfiles = ptuProfiles
        self.levers = levers
    }

    static let resourceFiles = ["models", "gpus", "vm-skus", "api-prices", "ptu", "levers"]

    /// The catalog shipped with InferenceKit (parsed once per process).
    public static func bundled() throws(CostModelError) -> Catalog {
        switch bundledResult {
        case .success(let catalog): return catalog
        case .failure(let error): throw error
        }
    }

    private static let bundledResult: Result<Catalog, CostModelError> = {
        do throws(CostModelError) {
            var catalog = Catalog()
            for file in resourceFiles {
                guard let url = Bundle.module.url(forResource: file, withExtension: "json") else {
                    throw CostModelError(.malformedCatalog, "The bundled catalog file \(file).json is missing from the CostModel resources; rebuild the package.")
                }
                try catalog.merge(data: try readFile(url), file: "\(file).json (bundled)")
            }
            try catalog.validateReferences(file: "bundled catalog")
            return .success(catalog)
        } catch {
            return .failure(error)
        }
    }()

    /// This catalog with a user JSON file laid over it.
    public func merging(contentsOf path: String) throws(CostModelError) -> Catalog {
        var copy = self
        let data = try Catalog.readFile(URL(fileURLWithPath: path))
        try copy.merge(data: data, file: path)
        try copy.validateReferences(file: path)
        return copy
    }

    /// This catalog with a user JSON document (same layout as the bundled files) laid over it.
    public func merging(data: Data, file: String) throws(CostModelError) -> Catalog {
        var copy = self
        try copy.merge(data: data, file: file)
        try copy.validateReferences(file: file)
        return copy
    }

    /// This catalog plus a model read from a Hugging Face `config.json`.
    public func addingModel(huggingFaceConfig data: Data, name: String, file: String = "config.json") throws(CostModelError) -> Catalog {
        var copy = self
        let model = try HuggingFaceConfig.model(from: data, name: name, file: file)
        copy.models.removeAll { $0.name.lowercased() == model.name.lowercased() }
        copy.models.append(model)
        return copy
    }

    /// The largest catalog or `config.json` file read (the bundled catalog is about 30 KB).
    public static let maxFileBytes = 16 << 20

    /// Reads a user-supplied catalog or `config.json` file: a regular file of at most ``maxFileBytes``
    /// (so `/dev/zero`, a directory or a multi-gigabyte file is an error, not a hang or an out-of-memory).
    public static func readUserFile(_ path: String) throws(CostModelError) -> Data {
        try readFile(URL(fileURLWithPath: path))
    }

    static func readFile(_ url: URL) throws(CostModelError) -> Data {
        let attributes: [FileAttributeKey: Any]
        do { attributes = try FileManager.default.attributesOfItem(atPath: url.path) } catch {
            throw CostModelError(.malformedCatalog, "Cannot read catalog file \(url.path); check the path and permissions.",
                                 underlying: error.localizedDescription)
        }
        guard (attributes[.type] as? FileAttributeType) == .typeRegular else {
            throw CostModelError(.malformedCatalog, "Catalog file \(url.path) is not a regular file; pass a JSON file.")
        }
        if let size = (attributes[.size] as? NSNumber)?.intValue, size > maxFileBytes {
            throw CostModelError(.malformedCatalog, "Catalog file \(url.path) is \(size) bytes, more than the \(maxFileBytes) accepted; pass a JSON catalog or config.json.")
        }
        do { return try Data(contentsOf: url) } catch {
            throw CostModelError(.malformedCatalog, "Cannot read catalog file \(url.path); check the path and permissions.",
                                 underlying: error.localizedDescription)
        }
    }

    // MARK: Lookup

    /// The model called `name` (catalog name, alias, display name or Hugging Face id; case-insensitive).
    public func model(named name: String) throws(CostModelError) -> ModelSpec {
        let key = name.lowercased()
        if let m = models.first(where: {
            $0.name.lowercased() == key || $0.displayName.lowercased() == key
                || $0.aliases.contains { $0.lowercased() == key } || $0.huggingFaceID?.lowercased() == key
        }) { return m }
        throw .unknown("model", name, candidates: models.map(\.name))
    }

    public func gpu(named name: String) throws(CostModelError) -> GPUSpec {
        let key = name.lowercased()
        if let g = gpus.first(where: { $0.name.lowercased() == key || $0.aliases.contains { $0.lowercased() == key } }) {
            return g
        }
        throw .unknown("GPU", name, candidates: gpus.map(\.name))
    }

    public func vmSKU(named name: String) throws(CostModelError) -> VMSKU {
        var key = name.lowercased()
        if key.hasPrefix("standard_") { key.removeFirst("standard_".count) }
        if let v = vmSKUs.first(where: { $0.name.lowercased() == key }) { return v }
        throw .unknown("VM SKU", name, candidates: vmSKUs.map(\.name))
    }

    public func apiPrice(model name: String) throws(CostModelError) -> APIPrice {
        if let p = apiPrices.first(where: { $0.model.lowercased() == name.lowercased() }) { return p }
        throw .unknown("API model price", name, candidates: apiPrices.map(\.model))
    }

    public func ptuProfile(named name: String) throws(CostModelError) -> PTUProfile {
        if let p = ptuProfiles.first(where: { $0.name.lowercased() == name.lowercased() }) { return p }
        throw .unknown("PTU profile", name, candidates: ptuProfiles.map(\.name))
    }

    public func lever(named name: String) throws(CostModelError) -> CostLeverSpec {
        if let l = levers.first(where: { $0.name.lowercased() == name.lowercased() }) { return l }
        throw .unknown("cost lever", name, candidates: levers.map(\.name))
    }

    // MARK: Parsing

    mutating func merge(data: Data, file: String) throws(CostModelError) {
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CostModelError(.malformedCatalog, "Catalog file \(file) must hold a JSON object with keys such as \"models\" or \"gpus\".")
            }
            root = object
        } catch let error as CostModelError {
            throw error
        } catch {
            throw CostModelError(.malformedCatalog, "Catalog file \(file) is not valid JSON; fix the syntax.", underlying: error.localizedDescription)
        }
        let known: Set<String> = ["models", "gpus", "vmSKUs", "apiPrices", "ptuProfiles", "levers"]
        for key in root.keys where !known.contains(key) {
            throw CostModelError(.malformedCatalog, "Catalog file \(file) has an unknown top-level key '\(key)'; use \(known.sorted().joined(separator: ", ")).")
        }
        for (index, entry) in try Catalog.entries(root, "models", file).enumerated() {
            upsert(&models, try Catalog.parseModel(try Fields(entry, file: file, list: "models", index: index)), key: \.name)
        }
        for (index, entry) in try Catalog.entries(root, "gpus", file).enumerated() {
            upsert(&gpus, try Catalog.parseGPU(try Fields(entry, file: file, list: "gpus", index: index)), key: \.name)
        }
        for (index, entry) in try Catalog.entries(root, "vmSKUs", file).enumerated() {
            upsert(&vmSKUs, try Catalog.parseVM(try Fields(entry, file: file, list: "vmSKUs", index: index)), key: \.name)
        }
        for (index, entry) in try Catalog.entries(root, "apiPrices", file).enumerated() {
            upsert(&apiPrices, try Catalog.parsePrice(try Fields(entry, file: file, list: "apiPrices", index: index, nameKey: "model")), key: \.model)
        }
        for (index, entry) in try Catalog.entries(root, "ptuProfiles", file).enumerated() {
            upsert(&ptuProfiles, try Catalog.parsePTU(try Fields(entry, file: file, list: "ptuProfiles", index: index)), key: \.name)
        }
        for (index, entry) in try Catalog.entries(root, "levers", file).enumerated() {
            upsert(&levers, try Catalog.parseLever(try Fields(entry, file: file, list: "levers", index: index)), key: \.name)
        }
    }

    private func upsert<T>(_ list: inout [T], _ item: T, key: KeyPath<T, String>) {
        if let i = list.firstIndex(where: { $0[keyPath: key].lowercased() == item[keyPath: key].lowercased() }) {
            list[i] = item
        } else {
            list.append(item)
        }
    }

    private static func entries(_ root: [String: Any], _ key: String, _ file: String) throws(CostModelError) -> [Any] {
        guard let value = root[key] else { return [] }
        guard let list = value as? [Any] else {
            throw CostModelError(.malformedCatalog, "Catalog file \(file): '\(key)' must be a JSON array of objects.")
        }
        return list
    }

    /// Cross-entry checks: every VM SKU names a known GPU with about the stated memory.
    func validateReferences(file: String) throws(CostModelError) {
        for vm in vmSKUs {
            guard let gpu = gpus.first(where: { $0.name.lowercased() == vm.gpu.lowercased() }) else {
                throw .malformed(file: file, entry: "vmSKUs '\(vm.name)'", field: "gpu",
                                 "GPU '\(vm.gpu)' is not in the GPU catalog (known: \(gpus.map(\.name).joined(separator: ", ")))")
            }
            if abs(gpu.memoryGiB - vm.vramPerGPUGB) > 0.15 * gpu.memoryGiB {
                throw .malformed(file: file, entry: "vmSKUs '\(vm.name)'", field: "vramPerGPUGB",
                                 "\(vm.vramPerGPUGB) GB disagrees with the \(gpu.memoryGiB) GiB of GPU '\(gpu.name)'")
            }
        }
    }

    static func parseModel(_ f: Fields) throws(CostModelError) -> ModelSpec {
        let layers = try f.int("layers", max: 1000)
        let hidden = try f.int("hiddenSize", max: 1 << 20)
        let heads = try f.int("attentionHeads", max: 4096)
        let kvHeads = try f.int("kvHeads", max: 4096)
        guard kvHeads <= heads, heads % kvHeads == 0 else {
            throw .malformed(file: f.file, entry: f.entry, field: "kvHeads", "\(kvHeads) must divide attentionHeads (\(heads))")
        }
        let headDim = try f.optionalInt("headDim", max: 4096)
        if headDim == nil, hidden % heads != 0 {
            throw .malformed(file: f.file, entry: f.entry, field: "headDim",
                             "missing, and hiddenSize \(hidden) is not a multiple of attentionHeads \(heads); give headDim explicitly")
        }
        let experts = try f.optionalInt("experts", max: 4096) ?? 1
        let active = try f.optionalInt("activeExperts", max: 4096) ?? 1
        guard active <= experts else {
            throw .malformed(file: f.file, entry: f.entry, field: "activeExperts", "\(active) exceeds experts (\(experts))")
        }
        let published = try f.optionalDouble("publishedParameters", max: 1e14)
        return ModelSpec(
            name: try f.string("name").lowercased(), displayName: try f.optionalString("displayName"),
            aliases: try f.stringArray("aliases"), huggingFaceID: try f.optionalString("huggingFaceID"),
            layers: layers, hiddenSize: hidden, attentionHeads: heads, kvHeads: kvHeads,
            headDim: headDim,
            intermediateSize: try f.int("intermediateSize", max: 1 << 22), vocabSize: try f.int("vocabSize", max: 1 << 24),
            tiedEmbeddings: try f.optionalBool("tiedEmbeddings") ?? false, attentionBias: try f.optionalBool("attentionBias") ?? false,
            experts: experts, activeExperts: active, maxContext: try f.int("maxContext", max: 1 << 24),
            publishedParameters: published, nominalParameters: try f.optionalDouble("nominalParameters", max: 1e14),
            estimate: try f.optionalBool("estimate") ?? false, source: try f.string("source"), date: try f.string("date"))
    }

    static func parseGPU(_ f: Fields) throws(CostModelError) -> GPUSpec {
        let kindText = try f.optionalString("kind") ?? "gpu"
        guard let kind = DeviceKind(rawValue: kindText) else {
            throw .malformed(file: f.file, entry: f.entry, field: "kind", "'\(kindText)' must be \"gpu\" or \"cpu\"")
        }
        var precisions: [Precision] = []
        for text in try f.stringArray("precisions") {
            guard let p = Precision(rawValue: text) else {
                throw .malformed(file: f.file, entry: f.entry, field: "precisions",
                                 "'\(text)' is not one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            precisions.append(p)
        }
        return GPUSpec(
            name: try f.string("name"), aliases: try f.stringArray("aliases"), vendor: try f.string("vendor"), kind: kind,
            memoryGiB: try f.double("memoryGiB", min: 0.25, max: 1e5), memoryBandwidthGBs: try f.double("memoryBandwidthGBs", min: 1, max: 1e6),
            fp32TFLOPS: try f.double("fp32TFLOPS", min: 0.001, max: 1e6), fp16TFLOPS: try f.double("fp16TFLOPS", min: 0.001, max: 1e6),
            fp8TFLOPS: try f.optionalDouble("fp8TFLOPS", min: 0.001, max: 1e6), int8TOPS: try f.optionalDouble("int8TOPS", min: 0.001, max: 1e6),
            interconnect: try f.string("interconnect"), interconnectGBs: try f.double("interconnectGBs", min: 0.1, max: 1e5, allowZero: true),
            allReduceLatencyMicroseconds: try f.double("allReduceLatencyMicroseconds", max: 1e6, allowZero: true),
            precisions: precisions.isEmpty ? Precision.allCases : precisions,
            source: try f.string("source"), date: try f.string("date"))
    }

    static func parseVM(_ f: Fields) throws(CostModelError) -> VMSKU {
        VMSKU(
            name: try f.string("name"), series: try f.string("series"), gpu: try f.string("gpu"),
            gpuCount: try f.int("gpuCount", max: 64), vramPerGPUGB: try f.double("vramPerGPUGB", max: 1e5),
            vcpus: try f.optionalInt("vcpus", max: 10_000), ramGB: try f.optionalDouble("ramGB", max: 1e6),
            pricePerHour: try f.optionalDouble("pricePerHour", min: 1e-4, max: 1e5), network: try f.optionalString("network") ?? "Ethernet",
            useCase: try f.optionalString("useCase") ?? "", notes: try f.stringArray("notes"), regions: try f.stringArray("regions"),
            source: try f.string("source"), date: try f.string("date"))
    }

    static func parsePrice(_ f: Fields) throws(CostModelError) -> APIPrice {
        let discount = try f.optionalDouble("batchDiscount", max: 1, allowZero: true) ?? 0
        return APIPrice(
            model: try f.string("model"), inputPer1M: try f.double("inputPer1M", min: 1e-6, max: 1e4),
            cachedInputPer1M: try f.optionalDouble("cachedInputPer1M", min: 1e-6, max: 1e4, allowZero: true),
            outputPer1M: try f.double("outputPer1M", min: 1e-6, max: 1e4), batchDiscount: discount,
            source: try f.string("source"), date: try f.string("date"))
    }

    static func parsePTU(_ f: Fields) throws(CostModelError) -> PTUProfile {
        PTUProfile(
            name: try f.string("name"), model: try f.string("model"), pricePerPTUHour: try f.double("pricePerPTUHour", min: 1e-4, max: 1e4),
            monthlyReservationPerPTU: try f.optionalDouble("monthlyReservationPerPTU", min: 1e-4, max: 1e6),
            yearlyReservationPerPTUMonth: try f.optionalDouble("yearlyReservationPerPTUMonth", min: 1e-4, max: 1e6),
            minimumPTUs: try f.int("minimumPTUs", max: 100_000), increment: try f.int("increment", max: 100_000),
            tokensPerMinutePerPTU: try f.double("tokensPerMinutePerPTU", min: 1, max: 1e9),
            outputTokenWeight: try f.double("outputTokenWeight", min: 0.01, max: 100),
            source: try f.string("source"), date: try f.string("date"))
    }

    static func parseLever(_ f: Fields) throws(CostModelError) -> CostLeverSpec {
        let target = try f.string("appliesTo")
        guard let appliesTo = LeverTarget(rawValue: target) else {
            throw .malformed(file: f.file, entry: f.entry, field: "appliesTo", "'\(target)' must be \"api\" or \"gpu\"")
        }
        let low = try f.double("savingsLow", max: 1, allowZero: true)
        let high = try f.double("savingsHigh", max: 1, allowZero: true)
        guard low <= high else {
            throw .malformed(file: f.file, entry: f.entry, field: "savingsHigh", "\(high) is below savingsLow (\(low))")
        }
        let name = try f.string("name")
        let displayName = try f.optionalString("displayName")
        return CostLeverSpec(
            name: name, displayName: displayName ?? name,
            appliesTo: appliesTo, savingsLow: low, savingsHigh: high, effort: try f.optionalString("effort") ?? "",
            tradeOff: try f.optionalString("tradeOff") ?? "", source: try f.string("source"), date: try f.string("date"))
    }
}

/// Typed access to one JSON object, with errors that name the file, the entry and the field.
struct Fields {
    let values: [String: Any]
    let file: String
    let entry: String

    init(_ object: Any, file: String, list: String, index: Int, nameKey: String = "name") throws(CostModelError) {
        guard let values = object as? [String: Any] else {
            throw CostModelError(.malformedCatalog, "Catalog file \(file), \(list)[\(index)]: each entry must be a JSON object.")
        }
        self.values = values
        self.file = file
        if let name = values[nameKey] as? String { entry = "\(list)[\(index)] '\(name)'" } else { entry = "\(list)[\(index)]" }
    }

    init(values: [String: Any], file: String, entry: String) {
        self.values = values
        self.file = file
        self.entry = entry
    }

    /// JSONSerialization returns booleans as NSNumber with Objective-C type "c" (on Linux and Darwin).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    private func fail(_ field: String, _ problem: String) -> CostModelError {
        .malformed(file: file, entry: entry, field: field, problem)
    }

    func string(_ key: String) throws(CostModelError) -> String {
        guard let raw = values[key] else { throw fail(key, "missing (required)") }
        guard let s = raw as? String, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw fail(key, "must be a non-empty string")
        }
        return s
    }

    func optionalString(_ key: String) throws(CostModelError) -> String? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        return try string(key)
    }

    func stringArray(_ key: String) throws(CostModelError) -> [String] {
        guard let raw = values[key], !(raw is NSNull) else { return [] }
        guard let list = raw as? [String] else { throw fail(key, "must be an array of strings") }
        return list
    }

    func optionalBool(_ key: String) throws(CostModelError) -> Bool? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        // JSONSerialization yields NSNumber for both numbers and booleans; require a real boolean.
        guard let n = raw as? NSNumber, Fields.isBoolean(n) else {
            throw fail(key, "must be true or false")
        }
        return n.boolValue
    }

    func double(_ key: String, min: Double = 0, max: Double, allowZero: Bool = false) throws(CostModelError) -> Double {
        guard let value = try optionalDouble(key, min: min, max: max, allowZero: allowZero) else { throw fail(key, "missing (required)") }
        return value
    }

    /// A number in `[min, max]` (or exactly 0 when `allowZero`); `min` keeps rates that the estimators divide
    /// by away from denormal values like 1e-320 that would turn a cost or a PTU count into infinity.
    func optionalDouble(_ key: String, min: Double = 0, max: Double, allowZero: Bool = false) throws(CostModelError) -> Double? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let n = raw as? NSNumber, !Fields.isBoolean(n) else { throw fail(key, "must be a number") }
        let v = n.doubleValue
        guard v.isFinite, allowZero ? v >= 0 : v > 0 else {
            throw fail(key, "\(v) must be \(allowZero ? "zero or more" : "greater than zero")")
        }
        guard v <= max else { throw fail(key, "\(v) is implausibly large (at most \(max))") }
        guard v >= min || (allowZero && v == 0) else { throw fail(key, "\(v) is implausibly small (at least \(min))") }
        return v
    }

    func int(_ key: String, max: Int) throws(CostModelError) -> Int {
        guard let value = try optionalInt(key, max: max) else { throw fail(key, "missing (required)") }
        return value
    }

    func optionalInt(_ key: String, max: Int) throws(CostModelError) -> Int? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let n = raw as? NSNumber, !Fields.isBoolean(n) else { throw fail(key, "must be an integer") }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), d >= 1 else { throw fail(key, "\(n) must be a whole number of at least 1") }
        guard d <= Double(max) else { throw fail(key, "\(n) is implausibly large (at most \(max))") }
        return Int(d)
    }
}

extension CostModelError {
    /// An unknown name in any catalog section, with the closest names listed.
    public static func unknownEntry(_ name: String, candidates: [String]) -> CostModelError {
        .unknown("catalog entry", name, candidates: candidates)
    }
}

/// Where the bundled catalog files live (for tools that copy or inspect them).
public enum CostModelResources {
    /// The path of a bundled catalog file, e.g. `path("models")` → `…/models.json`.
    public static func path(_ name: String) -> String? {
        Bundle.module.url(forResource: name, withExtension: "json")?.path
    }
}
