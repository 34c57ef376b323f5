import Foundation
import Quantization
import Testing
import Tokenization

/// Where SmolLM2 lives for the chat-template tests: `$INFERENCEKIT_MODELS_DIR`, else `<package root>/.cache/models`.
enum ChatTemplateTestModel {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let missing: Comment = "run `make models` to fetch SmolLM2-135M-Instruct.Q4_1.gguf"

    static var path: String? {
        let directory: URL
        if let dir = ProcessInfo.processInfo.environment["INFERENCEKIT_MODELS_DIR"], !dir.isEmpty {
            directory = URL(fileURLWithPath: dir)
        } else {
            // #filePath is <root>/Tests/TokenizationTests/ChatTemplateModelTests.swift
            directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".cache/models")
        }
        let path = directory.appendingPathComponent(fileName).path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// `INFERENCEKIT_REQUIRE_TEST_MODELS=1` turns a missing model into a failure instead of a skip.
    static var shouldRun: Bool { path != nil || ProcessInfo.processInfo.environment["INFERENCEKIT_REQUIRE_TEST_MODELS"] == "1" }
}

@Suite("Chat templates: SmolLM2's own template")
struct ChatTemplateModelTests {
    @Test(
        "SmolLM2's tokenizer.chat_template renders as jinja2 renders it",
        .enabled(if: ChatTemplateTestModel.shouldRun, ChatTemplateTestModel.missing))
    func smolLM2() throws {
        guard let path = ChatTemplateTestModel.path else {
            Issue.record(ChatTemplateTestModel.missing)
            return
        }
        let metadata = try GGUFFile(contentsOf: path).metadata
        let source = try #require(metadata["tokenizer.chat_template"]?.stringValue, "the model has no tokenizer.chat_template")
        struct File: Decodable {
            let templateLength: Int
            let cases: [ChatTemplateCase]
            private enum CodingKeys: String, CodingKey {
                case cases
                case templateLength = "template_length"
            }
        }
        let file = try ChatTemplateFixtures.load("smollm2", as: File.self)
        #expect(source.unicodeScalars.count == file.templateLength, "the model's template differs from the one the fixtures were rendered from")
        let template = try ChatTemplate(source)
        for c in file.cases { checkChatTemplateCase(template, c, "SmolLM2") }
    }
}
