import Foundation
import Quantization
import ModelRuntime
import Testing
import Tokenization

/// Where the test models are: `$INFERENCEKIT_MODELS_DIR`, else `<package root>/.cache/models`.
enum TestModels {
    static let smolLM2Name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let missingMessage: Comment = "run `make models` to fetch SmolLM2-135M-Instruct.Q4_1.gguf"

    static var directory: String {
        if let dir = ProcessInfo.processInfo.environment["INFERENCEKIT_MODELS_DIR"], !dir.isEmpty { return dir }
        // #filePath is <root>/Tests/TokenizationTests/TestSupport.swift
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".cache/models").path
    }

    static var smolLM2Path: String? {
        let path = (directory as NSString).appendingPathComponent(smolLM2Name)
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// `INFERENCEKIT_REQUIRE_TEST_MODELS=1` turns a missing model into a failure instead of a skip.
    static var required: Bool { ProcessInfo.processInfo.environment["INFERENCEKIT_REQUIRE_TEST_MODELS"] == "1" }

    /// Run the model tests when the model is present, or when it is required (they then fail).
    static var shouldRun: Bool { smolLM2Path != nil || required }

    /// The model's path, or a recorded failure.
    static func requireSmolLM2() -> String? {
        guard let path = smolLM2Path else {
            Issue.record(missingMessage)
            return nil
        }
        return path
    }
}

/// The SmolLM2 tokenizer built from the GGUF metadata, once per test process.
enum SmolLM2 {
    static let tokenizer: Result<Tokenizer, any Error>? = {
        guard let path = TestModels.smolLM2Path else { return nil }
        return Result { try Tokenizer(try configuration(fromGGUFAt: path)) }
    }()

    /// The production adapter (ModelRuntime's `TokenizerConfiguration(gguf:)`), so these tests check
    /// the tokenizer a model actually gets.
    static func configuration(fromGGUFAt path: String) throws -> TokenizerConfiguration {
        try TokenizerConfiguration(gguf: try GGUFFile(contentsOf: path))
    }
}

/// Reads a JSON fixture from the test bundle's `Fixtures` folder.
func loadFixture<T: Decodable>(_ name: String, as type: T.Type = T.self) throws -> T {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"), "fixture \(name).json is missing; regenerate it with the script in Tests/TokenizationTests/Vectors")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

/// Shows a string with its escapes, for failure messages.
func show(_ s: String) -> String { s.debugDescription }
