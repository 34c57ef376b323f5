// Several chat requests at once through the continuous-batching engine, streamed as they come.
// swift run -c release BatchedChat .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
import Engine
import Foundation
import ModelRuntime
import Tokenization

let args = CommandLine.arguments
guard args.count >= 2 else {
    print("usage: BatchedChat MODEL.gguf")
    exit(2)
}
let questions = ["What is the capital of France?", "Name three primary colours.", "What is 12 times 12?", "Say hello in Spanish."]
do {
    let model = try LlamaModel(contentsOf: args[1])
    let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 4096))
    let answers = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for (i, q) in questions.enumerated() {
            let prompt = try model.chatPrompt([ChatMessage(role: "user", content: q)])
            let stream = try engine.generate(EngineRequest(promptTokens: prompt, parameters: GenerationParameters(sampling: .greedy, maxTokens: 40)))
            group.addTask {
                var text = ""
                for try await event in stream {
                    switch event {
                    case let .token(token, _): text += token.text
                    case let .finished(done): text += done.trailingText
                    }
                }
                return (i, text)
            }
        }
        var out = [String](repeating: "", count: questions.count)
        for try await (i, text) in group { out[i] = text }
        return out
    }
    for (q, a) in zip(questions, answers) { print("Q: \(q)\nA: \(a)\n") }
    let s = engine.statistics()
    print("[\(s.steps) engine steps for \(questions.count) requests; \(s.prefixCacheHitTokens) prompt tokens from the prefix cache]")
    await engine.shutdown()
} catch {
    print("error: \(error)")
    exit(1)
}
