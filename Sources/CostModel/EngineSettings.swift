/// Settings for a vLLM server that realises a ``DeploymentPlan``.
public struct VLLMSettings: Sendable, Hashable, Codable {
    public var model: String
    public var tensorParallelSize: Int
    public var pipelineParallelSize: Int
    public var maxModelLen: Int
    public var gpuMemoryUtilization: Double
    public var maxNumSeqs: Int
    public var maxNumBatchedTokens: Int
    /// `auto` (the weights' dtype) or `fp8`.
    public var kvCacheDtype: String
    /// `fp8` (online), `awq`/`compressed-tensors` (needs a quantized checkpoint), or nil for BF16.
    public var quantization: String?
    public var notes: [String]

    /// `vllm serve …` with every flag on its own line.
    public var commandLine: String {
        var args = ["vllm serve \(model)",
                    "--tensor-parallel-size \(tensorParallelSize)"]
        if pipelineParallelSize > 1 { args.append("--pipeline-parallel-size \(pipelineParallelSize)") }
        args += ["--max-model-len \(maxModelLen)",
                 "--gpu-memory-utilization \(fmt(gpuMemoryUtilization, 2))",
                 "--max-num-seqs \(maxNumSeqs)",
                 "--max-num-batched-tokens \(maxNumBatchedTokens)",
                 "--kv-cache-dtype \(kvCacheDtype)"]
        if let quantization { args.append("--quantization \(quantization)") }
        args.append("--enable-chunked-prefill")
        return args.joined(separator: " \\\n  ")
    }
}

/// An AKS GPU node pool that hosts a ``DeploymentPlan``.
public struct AKSNodePool: Sendable, Hashable, Codable {
    public var resourceGroup: String
    public var clusterName: String
    /// 1–12 lower-case letters and digits (AKS rule for Linux pools).
    public var name: String
    public var vmSize: String
    public var nodeCount: Int
    public var minCount: Int
    public var maxCount: Int
    public var gpusPerNode: Int
    /// GPUs each model-server pod requests (`nvidia.com/gpu` / `amd.com/gpu`).
    public var gpusPerPod: Int
    public var gpuResource: String

    /// The `az aks nodepool add` command.
    public var azCommand: String {
        [
            "az aks nodepool add",
            "--resource-group \(resourceGroup)",
            "--cluster-name \(clusterName)",
            "--name \(name)",
            "--node-vm-size \(vmSize)",
            "--node-count \(nodeCount)",
            "--enable-cluster-autoscaler",
            "--min-count \(minCount)",
            "--max-count \(maxCount)",
            "--node-taints \(gpuResource)=present:NoSchedule",
            "--labels workload=llm-serving gpu=\(vmSize.lowercased())",
        ].joined(separator: " \\\n  ")
    }
}

extension DeploymentPlan {
    /// The vLLM settings for this plan. `model` is the Hugging Face id (or a local path).
    public func vllmSettings(model: ModelSpec) -> VLLMSettings {
        var notes: [String] = []
        let quantization: String?
        switch weightPrecision {
        case .fp8:
            quantization = "fp8"
            notes.append("--quantization fp8 quantizes BF16 weights at load time; a pre-quantized FP8 checkpoint loads faster")
        case .int8:
            quantization = "compressed-tensors"
            notes.append("INT8 needs a W8A8 checkpoint in compressed-tensors format (point the model id at it)")
        case .int4:
            quantization = "awq"
            notes.append("INT4 needs an AWQ checkpoint of the model (point the model id at it); GPTQ works with --quantization gptq")
        case .fp32, .fp16, .bf16:
            quantization = nil
        }
        if gpu.lowercased().contains("mi300") { notes.append("Use the ROCm build of vLLM on MI300X") }
        if pipelineParallel > 1 { notes.append("Pipeline parallelism across nodes needs a Ray cluster spanning the \(pipelineParallel) VMs") }
        return VLLMSettings(
            model: model.huggingFaceID ?? "<path-to-\(model.name)-weights>", tensorParallelSize: tensorParallel,
            pipelineParallelSize: pipelineParallel, maxModelLen: maxModelLen, gpuMemoryUtilization: gpuMemoryUtilization,
            maxNumSeqs: maxBatch, maxNumBatchedTokens: maxBatchedTokens, kvCacheDtype: kvPrecision == .fp8 ? "fp8" : "auto",
            quantization: quantization, notes: notes)
    }

    /// An AKS node pool for this plan, autoscaling between the plan's VM count and twice that.
    public func aksNodePool(resourceGroup: String = "rg-inference", clusterName: String = "aks-inference", poolName: String? = nil) -> AKSNodePool {
        let defaultName = "gpu" + String(sku.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(9))
        let name = String((poolName ?? defaultName).lowercased().filter { $0.isLetter || $0.isNumber }.prefix(12))
        return AKSNodePool(resourceGroup: resourceGroup, clusterName: clusterName, name: name.isEmpty ? "gpupool" : name,
                           vmSize: "Standard_" + sku, nodeCount: vmCount, minCount: vmCount, maxCount: vmCount * 2,
                           gpusPerNode: gpusPerVM, gpusPerPod: pipelineParallel > 1 ? gpusPerVM : tensorParallel,
                           gpuResource: gpu.lowercased().contains("mi300") ? "amd.com/gpu" : "nvidia.com/gpu")
    }
}
