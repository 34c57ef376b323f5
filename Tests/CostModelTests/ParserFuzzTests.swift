import Foundation
import Testing
@testable import CostModel

/// Seeded mutation fuzzing of the two parsers that read user files: catalog JSON and Hugging Face
/// `config.json`. Every mutated document must either parse into entries the estimators can use, or
/// fail with a `CostModelError` that names the file (and, when one field was corrupted, the entry and
/// the field). A crash — a trap on an overflow, a force unwrap, an index out of range — aborts the run.
@Suite struct ParserFuzz {
    /// A JSON value that can also hold raw literals JSONSerialization would never write (NaN, 1e999).
    indirect enum J {
        case object([(String, J)])
        case array([J])
        case raw(String)   // a number, true/false/null or any other literal text, written verbatim

        init(_ any: Any) {
            switch any {
            case let d as [String: Any]: self = .object(d.keys.sorted().map { ($0, J(d[$0]!)) })
            case let a as [Any]: self = .array(a.map(J.init))
            case let s as String: self = .raw(J.quote(s))
            case let n as NSNumber: self = .raw(Fields.isBoolean(n) ? (n.boolValue ? "true" : "false") : n.stringValue)
            default: self = .raw("null")
            }
        }

        static func quote(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
                default: out.unicodeScalars.append(u)
                }
            }
            return out + "\""
        }

        var text: String {
            switch self {
            case .object(let kv): return "{" + kv.map { J.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
            case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
            case .raw(let r): return r
            }
        }
    }

    /// Replacement values: wrong types, out-of-range, non-finite, huge, fractional, empty.
    static let hostile = [
        "-1", "0", "-0", "0.5", "2.5", "1e-320", "1e308", "-1e308", "1e999", "-1e999", "NaN", "Infinity",
        "9223372036854775807", "9223372036854775808", "123456789012345678901234567890", "4096", "3", "7", "1",
        "\"\"", "\"   \"", "\"x\"", "\"12\"", "\"fp16\"", "\"\\u0000\"", "true", "false", "null", "[]", "{}",
        "[1, 2]", "[\"a\", 1]", "{\"a\": 1}", "[[]]", "\"H100\"", "\"gpu\"", "\"api\"",
    ]

    enum Mutation { case field(String), structure, bytes }

    /// Applies one random mutation. `.field(key)` means one entry's `key` was corrupted.
    static func mutate(_ doc: J, _ rng: inout SplitMix) -> (J, Mutation) {
        guard case .object(var top) = doc, !top.isEmpty else { return (doc, .structure) }
        let t = rng.below(top.count)
        let (listKey, listValue) = top[t]
        switch rng.below(10) {
        case 0..<6:   // corrupt, delete or add one field of one entry (catalog lists) or of the object itself
            if case .array(var entries) = listValue, !entries.isEmpty {
                let e = rng.below(entries.count)
                guard case .object(var fields) = entries[e], !fields.isEmpty else { return (doc, .structure) }
                let f = rng.below(fields.count)
                let key = fields[f].0
                switch rng.below(5) {
                case 0: fields.remove(at: f)
                case 1: fields.append(("unexpected\(rng.below(3))", .raw(hostile[rng.below(hostile.count)])))
                default: fields[f].1 = .raw(hostile[rng.below(hostile.count)])
                }
                entries[e] = .object(fields)
                top[t].1 = .array(entries)
                return (.object(top), .field(key))
            }
            // A flat object (config.json): corrupt one key.
            switch rng.below(4) {
            case 0: top.remove(at: t)
            default: top[t].1 = .raw(hostile[rng.below(hostile.count)])
            }
            return (.object(top), .field(listKey))
        case 6:       // replace a whole entry or list with something else
            if case .array(var entries) = listValue, !entries.isEmpty, rng.below(2) == 0 {
                entries[rng.below(entries.count)] = .raw(hostile[rng.below(hostile.count)])
                top[t].1 = .array(entries)
            } else {
                top[t].1 = .raw(hostile[rng.below(hostile.count)])
            }
            return (.object(top), .structure)
        case 7:       // duplicate an entry (same name twice) or add an unknown top-level key
            if case .array(var entries) = listValue, !entries.isEmpty, rng.below(2) == 0 {
                entries.append(entries[rng.below(entries.count)])
                top[t].1 = .array(entries)
            } else {
                top.append(("extra", .array([])))
            }
            return (.object(top), .structure)
        default:
            return (doc, .bytes)
        }
    }

    /// Byte-level damage: truncate, delete, duplicate or overwrite a few bytes.
    static func damage(_ text: String, _ rng: inout SplitMix) -> Data {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return Data() }
        for _ in 0...rng.below(3) {
            let i = rng.below(bytes.count)
            switch rng.below(5) {
            case 0: bytes.removeSubrange(i...)
            case 1: bytes.remove(at: i)
            case 2: bytes.insert(bytes[i], at: i)
            case 3:
                let syntax = Array("{}[],:\"0-e.\\ ".utf8)
                bytes[i] = syntax[rng.below(syntax.count)]
            default: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            if bytes.isEmpty { break }
        }
        return Data(bytes)
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// What a parsed model must satisfy for the estimators to be safe to call.
    static func checkUsable(_ m: ModelSpec, _ context: String) {
        #expect(m.layers >= 1 && m.attentionHeads >= 1 && m.kvHeads >= 1 && m.headDim >= 1, "\(context): \(m)")
        #expect(m.parameterCount.isFinite && m.parameterCount > 0, "\(context)")
        #expect(m.kvBytesPerToken(.fp16).isFinite && m.kvBytesPerToken(.fp16) > 0, "\(context)")
        #expect(m.activeExperts >= 1 && m.activeExperts <= m.experts, "\(context)")
    }

    @Test func mutatedCatalogFilesFailWithTypedErrorsNamingFileEntryAndField() throws {
        let bundled = try Catalog.bundled()
        var bases: [J] = []
        for name in Catalog.resourceFiles {
            let path = try #require(CostModelResources.path(name))
            bases.append(J(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))))
        }
        let llama = try bundled.model(named: "llama-3.1-8b"), h100 = try bundled.gpu(named: "H100")
        let workload = Workload(requestsPerSecond: 1, prompt: TokenDistribution(mean: 500, p95: 1000, max: 2000),
                                output: TokenDistribution(mean: 100, p95: 200, max: 500))
        let loose = ServiceLevelObjectives(p95TimeToFirstToken: 30, p95TimePerOutputToken: 1)
        let ptuLoad = PTUWorkload(peakRequestsPerMinute: 100, averageRequestsPerMinute: 50, inputTokensPerRequest: 500, outputTokensPerRequest: 200)
        var rng = SplitMix(state: 20_261_129)
        var failures = 0, successes = 0
        for i in 0..<3_000 {
            let file = "fuzz-\(i).json"
            var (doc, mutation) = Self.mutate(bases[rng.below(bases.count)], &rng)
            if rng.below(4) == 0 { (doc, _) = Self.mutate(doc, &rng) }   // sometimes two mutations
            let data = mutation == .bytes ? Self.damage(doc.text, &rng) : Data(doc.text.utf8)
            do {
                let merged = try bundled.merging(data: data, file: file)
                successes += 1
                for m in merged.models { Self.checkUsable(m, "\(file): \(String(decoding: data, as: UTF8.self).prefix(300))") }
                for g in merged.gpus { #expect(g.memoryGiB > 0 && g.memoryBandwidthGBs > 0 && g.fp16TFLOPS > 0, "\(file)") }
                for v in merged.vmSKUs { #expect(v.gpuCount >= 1 && (v.pricePerHour ?? 1) > 0, "\(file)") }
                // Whatever parsed must be safe to estimate with: run the estimators on every changed entry.
                for m in merged.models where !bundled.models.contains(m) {
                    _ = try? MemoryEstimator.breakdown(model: m, gpu: h100)
                    if let r = try? RooflineModel(model: m, gpu: h100, precision: .bf16) {
                        #expect(r.timePerOutputToken(batch: 4, contextTokens: 1000).isFinite, "\(file)")
                    }
                }
                for g in merged.gpus where !bundled.gpus.contains(g) {
                    if let r = try? RooflineModel(model: llama, gpu: g, precision: .bf16) {
                        let t = r.timePerOutputToken(batch: 4, contextTokens: 1000)
                        #expect(t.isFinite && t > 0, "\(file)")
                    }
                }
                for p in merged.ptuProfiles where !bundled.ptuProfiles.contains(p) {
                    if let price = try? merged.apiPrice(model: p.model) { _ = try? PTUCalculator.analyse(ptuLoad, profile: p, price: price) }
                }
                for v in merged.vmSKUs where !bundled.vmSKUs.contains(v) && v.pricePerHour != nil {
                    _ = try? DeploymentPlanner(catalog: merged).plan(model: llama, workload: workload, slos: loose,
                                                                    options: PlannerOptions(skus: [v.name], precisions: [.bf16]))
                }
            } catch {
                failures += 1
                #expect(error.code == .malformedCatalog, "\(file): \(error)")
                #expect(error.message.contains(file), "\(file): the message must name the file: \(error.message)")
                if case .field = mutation, error.message.contains(", entry ") {
                    #expect(error.message.contains("field '"), "\(file): \(error.message)")
                }
            }
        }
        // Both outcomes happened plenty (the fuzzer is not only producing garbage, nor only no-ops).
        #expect(failures > 1_000 && successes > 100, "failures \(failures), successes \(successes)")
    }

    @Test func mutatedHuggingFaceConfigsFailWithTypedErrors() throws {
        let configs = [
            // Llama 3.1 8B, Mixtral 8x7B, Qwen2.5 7B and a multimodal wrapper (architecture keys only).
            #"{"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": false, "max_position_embeddings": 131072, "head_dim": 128}"#,
            #"{"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2}"#,
            #"{"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 152064, "attention_bias": true, "moe_intermediate_size": 2560, "num_experts": 4}"#,
            #"{"model_type": "llava", "text_config": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32, "vocab_size": 32064}}"#,
        ].map { J(try! JSONSerialization.jsonObject(with: Data($0.utf8))) }
        var rng = SplitMix(state: 4_242)
        var failures = 0, successes = 0
        for i in 0..<3_000 {
            let file = "config-\(i).json"
            var (doc, mutation) = Self.mutate(configs[rng.below(configs.count)], &rng)
            if rng.below(3) == 0 { (doc, _) = Self.mutate(doc, &rng) }
            let data = mutation == .bytes ? Self.damage(doc.text, &rng) : Data(doc.text.utf8)
            do {
                let m = try HuggingFaceConfig.model(from: data, name: "fuzz", file: file)
                successes += 1
                Self.checkUsable(m, "\(file): \(String(decoding: data, as: UTF8.self))")
            } catch {
                failures += 1
                #expect(error.code == .malformedCatalog, "\(file): \(error)")
                #expect(error.message.contains(file), "\(file): \(error.message)")
                if case .field = mutation, error.message.contains(", entry ") {
                    #expect(error.message.contains("field '"), "\(file): \(error.message)")
                }
            }
        }
        #expect(failures > 1_000 && successes > 100, "failures \(failures), successes \(successes)")
    }

    /// Device files, directories and missing paths are typed errors, not a hang reading `/dev/zero`.
    @Test func unreadableFilesAreTypedErrors() throws {
        let bundled = try Catalog.bundled()
        for path in ["/dev/zero", "/dev/null", "/tmp", "/nonexistent/catalog.json", ""] {
            #expect(throws: CostModelError.self) { _ = try bundled.merging(contentsOf: path) }
            #expect(throws: CostModelError.self) { _ = try Catalog.readUserFile(path) }
        }
    }

    /// Hand-picked hostile configs that once slipped through or could trap.
    @Test func degenerateArchitecturesAreRejected() {
        func problem(_ json: String) -> String? {
            do { _ = try HuggingFaceConfig.model(from: Data(json.utf8), name: "x", file: "c.json"); return nil } catch { return error.message }
        }
        // More heads than hidden units and no head_dim: hidden / heads = 0 would give a model with no KV cache.
        let tiny = problem(#"{"hidden_size": 4, "num_attention_heads": 8, "num_hidden_layers": 2, "intermediate_size": 8, "vocab_size": 10}"#)
        #expect(tiny?.contains("head_dim") == true || tiny?.contains("hidden_size") == true)
        // hidden_size not divisible by heads and no head_dim.
        #expect(problem(#"{"hidden_size": 100, "num_attention_heads": 3, "num_hidden_layers": 2, "intermediate_size": 8, "vocab_size": 10}"#) != nil)
        // A document that is not an object, or an empty name.
        #expect(problem("[1, 2]")?.contains("c.json") == true)
        #expect(problem("") != nil)
        #expect(throws: CostModelError.self) { _ = try HuggingFaceConfig.model(from: Data("{}".utf8), name: "  ") }
    }
}

extension ParserFuzz.Mutation: Equatable {}
