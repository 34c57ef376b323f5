import Foundation
import Testing
import Tokenization

/// Decoding for the fixtures `Vectors/generate_chat_template_vectors.py` writes with jinja2.
enum ChatTemplateFixtures {
    static func url(_ name: String, _ ext: String) throws -> URL {
        try #require(
            Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/chat-templates"),
            "chat-templates/\(name).\(ext) is missing; regenerate with Tests/TokenizationTests/Vectors/generate_chat_template_vectors.py")
    }

    static func load<T: Decodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: try url(name, "json")))
    }

    static func templateSource(_ name: String) throws -> String {
        try String(contentsOf: try url(name, "jinja"), encoding: .utf8)
    }
}

/// A type-tagged value (`{"int": 1}`, `{"object": [["k", …]]}`): keeps int/float apart and object key order.
struct ChatTemplateTaggedValue: Decodable {
    let value: TemplateValue

    private enum Key: String, CodingKey { case none, bool, int, double, string, array, object }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        if container.contains(.none) {
            value = .none
        } else if let b = try container.decodeIfPresent(Bool.self, forKey: .bool) {
            value = .bool(b)
        } else if let i = try container.decodeIfPresent(Int.self, forKey: .int) {
            value = .int(i)
        } else if let d = try container.decodeIfPresent(Double.self, forKey: .double) {
            value = .double(d)
        } else if let s = try container.decodeIfPresent(String.self, forKey: .string) {
            value = .string(s)
        } else if let items = try container.decodeIfPresent([ChatTemplateTaggedValue].self, forKey: .array) {
            value = .array(items.map(\.value))
        } else {
            let pairs = try container.decode([ChatTemplateNamedValue].self, forKey: .object)
            value = .object(TemplateObject(pairs.map { ($0.name, $0.value) }))
        }
    }
}

/// `["name", tagged value]`.
struct ChatTemplateNamedValue: Decodable {
    let name: String
    let value: TemplateValue

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        name = try container.decode(String.self)
        value = try container.decode(ChatTemplateTaggedValue.self).value
    }
}

struct ChatTemplateExpectedError: Decodable {
    let code: String
    /// Raised by the template's own `raise_exception`: the message must match verbatim.
    let raised: Bool
    let message: String
}

struct ChatTemplateCase: Decodable {
    let messages: [ChatMessage]
    let addGenerationPrompt: Bool
    let bosToken: String
    let eosToken: String
    let variables: [ChatTemplateNamedValue]
    let expected: String?
    let error: ChatTemplateExpectedError?
    let template: String?
    let templateIndex: Int?

    private enum CodingKeys: String, CodingKey {
        case messages, variables, expected, error, template
        case addGenerationPrompt = "add_generation_prompt", bosToken = "bos_token", eosToken = "eos_token"
        case templateIndex = "template_index"
    }

    var variableDictionary: [String: TemplateValue] {
        Dictionary(variables.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
    }

    var label: String {
        "messages \(messages.map { "\($0.role): \($0.content.debugDescription)" }), add_generation_prompt \(addGenerationPrompt)"
    }
}

struct ChatTemplateCaseFile: Decodable {
    let cases: [ChatTemplateCase]
}

/// Renders one fixture case and compares it with jinja2's verdict, scalar for scalar.
func checkChatTemplateCase(_ template: ChatTemplate, _ c: ChatTemplateCase, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let rendered = try template.render(
            messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, bosToken: c.bosToken, eosToken: c.eosToken,
            variables: c.variableDictionary)
        if let expected = c.expected {
            // String == is canonical equivalence; a prompt must match jinja2 code point for code point.
            #expect(
                Array(rendered.unicodeScalars) == Array(expected.unicodeScalars),
                "\(context): \(c.label)\n got: \(rendered.debugDescription)\nwant: \(expected.debugDescription)", sourceLocation: sourceLocation)
        } else {
            Issue.record("\(context): \(c.label): rendered \(rendered.debugDescription), jinja2 raised \(c.error?.message ?? "?")", sourceLocation: sourceLocation)
        }
    } catch {
        guard let expectedError = c.error else {
            Issue.record("\(context): \(c.label): threw \(error), jinja2 rendered \(c.expected?.debugDescription ?? "?")", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code.rawValue == expectedError.code, "\(context): \(error) vs jinja2 \(expectedError.message)", sourceLocation: sourceLocation)
        if expectedError.raised {
            #expect(error.message == expectedError.message, "\(context): raise_exception message", sourceLocation: sourceLocation)
        }
    }
}
