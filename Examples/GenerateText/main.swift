// Loads a GGUF model and streams a greedy answer to a prompt.
// swift run -c release GenerateText .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf "The capital of France is"
import Foundation
import ModelRuntime

let args = CommandLine.arguments
guard args.count >= 2 else {
    print("usage: GenerateText MODEL.gguf [PROMPT]")
    exit(2)
}
do {
    let model = try LlamaModel(contentsOf: args[1])
    let generator = try TextGenerator(model: model, contextLimit: 1024)
    let prompt = args.count > 2 ? args[2] : "The three primary colours are"
    FileHandle.standardOutput.write(Data(prompt.utf8))
    let result = try generator.generate(prompt: prompt, parameters: GenerationParameters(sampling: .greedy, maxTokens: 48)) { token in
        FileHandle.standardOutput.write(Data(token.text.utf8))
        return true
    }
    print("\n[\(result.tokens.count) tokens, \(String(format: "%.1f", Double(max(result.tokens.count - 1, 0)) / max(result.decodeSeconds, 1e-9))) tokens/s]")
} catch {
    print("error: \(error)")
    exit(1)
}
