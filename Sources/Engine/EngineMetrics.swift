import Metrics
import ModelRuntime

/// The engine's metrics through swift-metrics, named as vLLM names them so dashboards built for a
/// vLLM fleet read this engine too. One dimension, `model_name`; finished requests add
/// `finished_reason` (stop, length, abort). Histograms are aggregating recorders in seconds.
///
/// | metric | kind |
/// |---|---|
/// | `vllm:time_to_first_token_seconds` | histogram |
/// | `vllm:inter_token_latency_seconds` | histogram (one gap per sequence per step) |
/// | `vllm:request_time_per_output_token_seconds` | histogram |
/// | `vllm:e2e_request_latency_seconds` | histogram |
/// | `vllm:num_requests_running`, `vllm:num_requests_waiting` | gauges |
/// | `vllm:kv_cache_usage_perc` | gauge (0 … 1) |
/// | `vllm:num_preemptions` | counter |
/// | `vllm:prefix_cache_queries`, `vllm:prefix_cache_hits` | counters (tokens) |
/// | `vllm:spec_decode_num_draft_tokens`, `vllm:spec_decode_num_accepted_tokens` | counters |
/// | `vllm:prompt_tokens`, `vllm:generation_tokens` | counters |
/// | `vllm:request_success` | counter, by `finished_reason` |
struct EngineMetrics {
    let timeToFirstToken: Recorder
    let interTokenLatency: Recorder
    let timePerOutputToken: Recorder
    let e2eLatency: Recorder
    let running: Gauge
    let waiting: Gauge
    let kvUsage: Gauge
    let preemptions: Counter
    let prefixQueries: Counter
    let prefixHits: Counter
    let draftTokens: Counter
    let acceptedDraftTokens: Counter
    let promptTokens: Counter
    let generationTokens: Counter
    let modelName: String

    init(modelName: String) {
        let d = [("model_name", modelName)]
        self.modelName = modelName
        timeToFirstToken = Recorder(label: "vllm:time_to_first_token_seconds", dimensions: d, aggregate: true)
        interTokenLatency = Recorder(label: "vllm:inter_token_latency_seconds", dimensions: d, aggregate: true)
        timePerOutputToken = Recorder(label: "vllm:request_time_per_output_token_seconds", dimensions: d, aggregate: true)
        e2eLatency = Recorder(label: "vllm:e2e_request_latency_seconds", dimensions: d, aggregate: true)
        running = Gauge(label: "vllm:num_requests_running", dimensions: d)
        waiting = Gauge(label: "vllm:num_requests_waiting", dimensions: d)
        kvUsage = Gauge(label: "vllm:kv_cache_usage_perc", dimensions: d)
        preemptions = Counter(label: "vllm:num_preemptions", dimensions: d)
        prefixQueries = Counter(label: "vllm:prefix_cache_queries", dimensions: d)
        prefixHits = Counter(label: "vllm:prefix_cache_hits", dimensions: d)
        draftTokens = Counter(label: "vllm:spec_decode_num_draft_tokens", dimensions: d)
        acceptedDraftTokens = Counter(label: "vllm:spec_decode_num_accepted_tokens", dimensions: d)
        promptTokens = Counter(label: "vllm:prompt_tokens", dimensions: d)
        generationTokens = Counter(label: "vllm:generation_tokens", dimensions: d)
    }

    func requestFinished(_ c: GenerationCompletion, reason: String) {
        e2eLatency.record(c.latency)
        if c.completionTokens > 1 {
            timePerOutputToken.record((c.latency - c.timeToFirstToken) / Double(c.completionTokens - 1))
        }
        finished(reason: reason)
    }

    func finished(reason: String) {
        Counter(label: "vllm:request_success", dimensions: [("model_name", modelName), ("finished_reason", reason)]).increment()
    }
}
