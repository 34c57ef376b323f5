import Foundation
import Testing
@testable import CostModel

@Suite struct CatalogTests {
    let catalog: Catalog
    init() throws { catalog = try Catalog.bundled() }

    @Test func bundledCatalogHasEveryRequiredEntry() throws {
        for name in ["phi-3-mini", "mistral-7b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b",
                     "qwen2.5-7b", "qwen2.5-72b", "gpt-4-estimate"] {
            _ = try catalog.model(named: name)
        }
        for name in ["V100", "A10", "A100-40GB-SXM", "A100-80GB-SXM", "A100-80GB-PCIe", "H100", "H200", "MI300X", "L4", "L40S"] {
            _ = try catalog.gpu(named: name)
        }
        // The reference's NC, ND and NV tables (section 9.2).
        for name in ["NC6s_v3", "NC24s_v3", "NC24ads_A100_v4", "NC48ads_A100_v4", "NC96ads_A100_v4", "ND96asr_v4",
                     "ND96amsr_A100_v4", "ND96isr_H100_v5", "ND96isr_H200_v5", "ND96is_MI300X_v5", "NV12s_v3", "NV36ads_A10_v5"] {
            _ = try catalog.vmSKU(named: name)
        }
        #expect(try catalog.model(named: "gpt-4-estimate").estimate)
        #expect(catalog.models.filter { !$0.estimate }.count >= 8)
        for m in catalog.models { #expect(!m.source.isEmpty && !m.date.isEmpty) }
        for g in catalog.gpus { #expect(!g.source.isEmpty && !g.date.isEmpty) }
        for v in catalog.vmSKUs { #expect(!v.source.isEmpty && !v.date.isEmpty) }
        for p in catalog.apiPrices { #expect(!p.source.isEmpty && !p.date.isEmpty) }
        for p in catalog.ptuProfiles { #expect(!p.source.isEmpty && !p.date.isEmpty) }
        for l in catalog.levers { #expect(!l.source.isEmpty && !l.date.isEmpty) }
    }

    /// The reference's VM tables, row by row: GPU, count, VRAM per GPU, total VRAM, vCPUs, RAM, $/h.
    @Test func vmSKUsMatchTheReferenceTables() throws {
        let rows: [(String, String, Int, Double, Double, Int?, Double?, Double?)] = [
            ("NC6s_v3", "V100-16GB", 1, 16, 16, 6, 112, 3.06),
            ("NC24s_v3", "V100-16GB", 4, 16, 64, 24, 448, 12.24),
            ("NC24ads_A100_v4", "A100-80GB-PCIe", 1, 80, 80, 24, 220, 3.67),
            ("NC48ads_A100_v4", "A100-80GB-PCIe", 2, 80, 160, 48, 440, 7.35),
            ("NC96ads_A100_v4", "A100-80GB-PCIe", 4, 80, 320, 96, 880, 14.69),
            ("ND96asr_v4", "A100-40GB-SXM", 8, 40, 320, nil, nil, 27.20),
            ("ND96amsr_A100_v4", "A100-80GB-SXM", 8, 80, 640, nil, nil, 32.77),
            ("ND96isr_H100_v5", "H100-SXM", 8, 80, 640, nil, nil, 98.32),
            ("ND96isr_H200_v5", "H200", 8, 141, 1128, nil, nil, nil),  // "Contact Microsoft"
            ("ND96is_MI300X_v5", "MI300X", 8, 192, 1536, nil, nil, 75.00),
        ]
        for (name, gpu, count, per, total, vcpus, ram, price) in rows {
            let vm = try catalog.vmSKU(named: name)
            #expect(vm.gpu == gpu, "\(name)")
            #expect(vm.gpuCount == count, "\(name)")
            #expect(vm.vramPerGPUGB == per, "\(name)")
            #expect(vm.totalVRAMGB == total, "\(name)")
            if let vcpus { #expect(vm.vcpus == vcpus, "\(name)") }
            if let ram { #expect(vm.ramGB == ram, "\(name)") }
            #expect(vm.pricePerHour == price, "\(name)")
        }
        #expect(try catalog.vmSKU(named: "ND96isr_H100_v5").hasInfiniBand)
        #expect(try catalog.vmSKU(named: "Standard_NC24ads_A100_v4").azureSize == "Standard_NC24ads_A100_v4")
        #expect(try catalog.vmSKU(named: "NC24ads_A100_v4").notes.contains { $0.contains("Sweden Central") })
    }

    @Test func apiPricesAndPTUMatchTheReference() throws {
        // Section 9.10 routing diagram: GPT-4o-mini $0.15, GPT-4o $2.50, GPT-4.1 $2.00 per 1M input; Batch API 50% off.
        #expect(try catalog.apiPrice(model: "gpt-4o-mini").inputPer1M == 0.15)
        #expect(try catalog.apiPrice(model: "gpt-4o").inputPer1M == 2.50)
        #expect(try catalog.apiPrice(model: "gpt-4.1").inputPer1M == 2.00)
        #expect(try catalog.apiPrice(model: "gpt-4o").batchDiscount == 0.5)
        // "1 PTU costs approximately $2/hour = ~$1,460/month": 2 × 730 h.
        let ptu = try catalog.ptuProfile(named: "gpt-4o")
        #expect(ptu.pricePerPTUHour * 730 == 1460)
        // "1 PTU supports approximately 6 RPM (with ~700 total tokens per request)": 4,200 / 700 = 6.
        #expect(ptu.tokensPerMinutePerPTU / (500 + ptu.outputTokenWeight * 200) == 6)
    }

    @Test func leversMatchTheReferenceTable() throws {
        let expected: [(String, Double, Double)] = [
            ("model-routing", 0.30, 0.80), ("semantic-cache", 0.50, 0.90), ("prompt-compression", 0.10, 0.40),
            ("output-limits", 0.10, 0.30), ("batch-api", 0.50, 0.50), ("quantization", 0.50, 0.75),
            ("spot", 0.60, 0.90), ("reserved", 0.30, 0.60),
        ]
        for (name, low, high) in expected {
            let lever = try catalog.lever(named: name)
            #expect(lever.savingsLow == low && lever.savingsHigh == high, "\(name)")
        }
    }

    /// Parameter totals computed from the architecture against the published totals (within 1%).
    @Test(arguments: ["phi-3-mini", "mistral-7b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b"])
    func computedParametersMatchPublished(name: String) throws {
        let m = try catalog.model(named: name)
        let ratio = m.parameterCount / m.publishedParameters
        #expect(abs(ratio - 1) < 0.01, "\(name): computed \(m.parameterCount), published \(m.publishedParameters)")
    }

    @Test func exactParameterCountsByHand() throws {
        // Llama 3.1 8B: embeddings 128,256 × 4,096 = 525,336,576, untied → ×2 = 1,050,673,152.
        // Per layer: Q 4096² = 16,777,216; K,V 2 × 4096 × 1024 = 8,388,608; O 16,777,216;
        // MLP 3 × 4096 × 14,336 = 176,160,768; two RMSNorms 8,192 → 218,112,000. × 32 = 6,979,584,000.
        // + final norm 4,096 → 8,030,261,248 (the safetensors total of the release).
        #expect(try catalog.model(named: "llama-3.1-8b").parameterCount == 8_030_261_248)
        // Llama 3.1 70B: embeddings 2 × 128,256 × 8,192 = 2,101,346,304; per layer Q+O 134,217,728,
        // K+V 16,777,216, MLP 3 × 8192 × 28672 = 704,643,072, norms 16,384 → 855,654,400 × 80
        // = 68,452,352,000; + 8,192 final norm → 70,553,706,496.
        #expect(try catalog.model(named: "llama-3.1-70b").parameterCount == 70_553_706_496)
        // Mixtral 8x7B: per layer attention 41,943,040 + 8 experts × 176,160,768 + router 4096 × 8
        // + norms 8,192 = 1,451,270,144; × 32 = 46,440,644,608; + embeddings 2 × 32,000 × 4,096
        // = 262,144,000 + final norm 4,096 → 46,702,792,704. Active: attention + 2 experts + router + norms = 394,305,536 × 32 + 262,148,096 = 12,879,925,248.
        let mixtral = try catalog.model(named: "mixtral-8x7b")
        #expect(mixtral.parameterCount == 46_702_792_704)
        #expect(mixtral.activeParameterCount == 12_879_925_248)
    }

    @Test func unknownNamesListTheClosest() throws {
        #expect {
            _ = try catalog.model(named: "llama-3.1-7b")
        } throws: { error in
            guard let e = error as? CostModelError else { return false }
            return e.code == .unknownName && e.message.contains("'llama-3.1-70b'") && e.message.contains("'llama-3.1-8b'")
        }
        #expect {
            _ = try catalog.gpu(named: "H10")
        } throws: { ($0 as? CostModelError)?.message.contains("H100") == true }
        #expect {
            _ = try catalog.vmSKU(named: "ND96isr_H100_v6")
        } throws: { ($0 as? CostModelError)?.message.contains("ND96isr_H100_v5") == true }
        #expect(editDistance(Array("kitten"), Array("sitting")) == 3)
    }

    @Test func userFileOverridesAndExtends() throws {
        let json = """
        {"vmSKUs": [{"name": "ND96isr_H200_v5", "series": "ND", "gpu": "H200", "gpuCount": 8, "vramPerGPUGB": 141,
                      "pricePerHour": 110.0, "network": "InfiniBand NDR 400 Gb/s", "source": "my quote", "date": "2026-11"}],
         "gpus": [{"name": "B200", "vendor": "NVIDIA", "memoryGiB": 180, "memoryBandwidthGBs": 8000, "fp32TFLOPS": 80,
                   "fp16TFLOPS": 2250, "fp8TFLOPS": 4500, "interconnect": "NVLink 5", "interconnectGBs": 900,
                   "allReduceLatencyMicroseconds": 5, "source": "datasheet", "date": "2025-01"}]}
        """
        let merged = try catalog.merging(data: Data(json.utf8), file: "mine.json")
        #expect(try merged.vmSKU(named: "ND96isr_H200_v5").pricePerHour == 110)
        #expect(merged.vmSKUs.count == catalog.vmSKUs.count)
        #expect(try merged.gpu(named: "b200").memoryGiB == 180)
        #expect(merged.gpus.count == catalog.gpus.count + 1)
    }

    @Test func malformedFilesNameFileEntryAndField() throws {
        func message(_ json: String) -> String? {
            do { _ = try catalog.merging(data: Data(json.utf8), file: "bad.json"); return nil } catch { return error.message }
        }
        let negative = message(#"{"models": [{"name": "x", "layers": -3, "hiddenSize": 8, "attentionHeads": 2, "kvHeads": 2, "intermediateSize": 8, "vocabSize": 8, "maxContext": 8, "source": "s", "date": "d"}]}"#)
        #expect(negative?.contains("bad.json") == true && negative?.contains("models[0] 'x'") == true && negative?.contains("'layers'") == true)
        let missing = message(#"{"gpus": [{"name": "G", "vendor": "V", "memoryGiB": 8}]}"#)
        #expect(missing?.contains("gpus[0] 'G'") == true && missing?.contains("'memoryBandwidthGBs'") == true)
        let wrongType = message(#"{"apiPrices": [{"model": "m", "inputPer1M": "cheap", "outputPer1M": 1, "source": "s", "date": "d"}]}"#)
        #expect(wrongType?.contains("'inputPer1M'") == true)
        let badGPU = message(#"{"vmSKUs": [{"name": "X1", "series": "NC", "gpu": "Z9", "gpuCount": 1, "vramPerGPUGB": 8, "source": "s", "date": "d"}]}"#)
        #expect(badGPU?.contains("'gpu'") == true && badGPU?.contains("Z9") == true)
        #expect(message("{not json") != nil)
        #expect(message(#"{"modles": []}"#)?.contains("modles") == true)
        let gqa = message(#"{"models": [{"name": "x", "layers": 2, "hiddenSize": 8, "attentionHeads": 4, "kvHeads": 3, "intermediateSize": 8, "vocabSize": 8, "maxContext": 8, "source": "s", "date": "d"}]}"#)
        #expect(gqa?.contains("'kvHeads'") == true)
        #expect(throws: CostModelError.self) { try catalog.merging(contentsOf: "/nonexistent/catalog.json") }
    }

    @Test func huggingFaceConfigBecomesAModel() throws {
        // The config.json of Llama 3.1 8B (architecture keys only).
        let config = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256,
         "tie_word_embeddings": false, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
        """
        let merged = try catalog.addingModel(huggingFaceConfig: Data(config.utf8), name: "my-llama")
        let m = try merged.model(named: "my-llama")
        #expect(m.parameterCount == 8_030_261_248)
        #expect(m.headDim == 128)
        #expect(m.kvBytesPerToken(.bf16) == 131_072)
        // Mixtral-style MoE keys.
        let moe = """
        {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2}
        """
        let mx = try HuggingFaceConfig.model(from: Data(moe.utf8), name: "mx")
        #expect(mx.parameterCount == 46_702_792_704)
        // Qwen2 implies Q/K/V bias; 7.61B published.
        let qwen = """
        {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
         "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": false}
        """
        let q = try HuggingFaceConfig.model(from: Data(qwen.utf8), name: "q")
        #expect(q.attentionBias)
        #expect(abs(q.parameterCount / 7.61e9 - 1) < 0.005)
        #expect {
            _ = try HuggingFaceConfig.model(from: Data(#"{"hidden_size": 4096}"#.utf8), name: "broken", file: "cfg.json")
        } throws: { ($0 as? CostModelError)?.message.contains("cfg.json") == true }
    }
}
