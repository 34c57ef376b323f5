import Foundation
import Testing
import Tokenization

/// The interpreter against jinja2's own renderings (see Vectors/generate_chat_template_vectors.py).
@Suite("Chat templates")
struct ChatTemplateTests {
    @Test("Family templates match jinja2", arguments: ["chatml", "llama3", "mistral", "gemma", "qwen2", "zephyr"])
    func family(_ name: String) throws {
        let template = try ChatTemplate(try ChatTemplateFixtures.templateSource(name))
        let file = try ChatTemplateFixtures.load(name, as: ChatTemplateCaseFile.self)
        #expect(file.cases.count > 30)
        for c in file.cases { checkChatTemplateCase(template, c, name) }
    }

    @Test("Feature mini templates match jinja2")
    func features() throws {
        let file = try ChatTemplateFixtures.load("features", as: ChatTemplateCaseFile.self)
        #expect(file.cases.count > 100)
        for c in file.cases {
            let source = try #require(c.template)
            do {
                let template = try ChatTemplate(source)
                checkChatTemplateCase(template, c, source.debugDescription)
            } catch {
                #expect(c.error?.code == error.code.rawValue, "\(source.debugDescription) failed to parse: \(error)")
            }
        }
    }

    struct PropertyFile: Decodable {
        let templates: [String]
        let cases: [ChatTemplateCase]
    }

    @Test("Random contents with braces, quotes and newlines render as jinja2 renders them")
    func randomContents() throws {
        let file = try ChatTemplateFixtures.load("property", as: PropertyFile.self)
        let templates = try file.templates.map { try ChatTemplate($0) }
        #expect(file.cases.count >= 200)
        for c in file.cases {
            let index = try #require(c.templateIndex)
            checkChatTemplateCase(templates[index], c, "property template \(index)")
        }
    }

    struct NegativeFile: Decodable {
        struct Entry: Decodable {
            let template: String
        }
        let syntax: [Entry]
        let unsupported: [Entry]
        let unsupportedAtRender: [Entry]
        private enum CodingKeys: String, CodingKey {
            case syntax, unsupported
            case unsupportedAtRender = "unsupported_at_render"
        }
    }

    @Test("Templates jinja2 rejects are templateSyntax errors")
    func malformed() throws {
        let file = try ChatTemplateFixtures.load("negative", as: NegativeFile.self)
        #expect(file.syntax.count > 20)
        for entry in file.syntax {
            #expect(throws: TokenizationError.self, "\(entry.template.debugDescription)") {
                _ = try ChatTemplate(entry.template)
            }
            do {
                _ = try ChatTemplate(entry.template)
            } catch {
                #expect(error.code == .templateSyntax, "\(entry.template.debugDescription): \(error)")
                #expect(error.message.contains(" at 1:"), "\(error.message) names no position")
            }
        }
    }

    @Test("Unsupported constructs are refused when parsing, naming the construct and its position")
    func unsupportedAtParse() throws {
        let file = try ChatTemplateFixtures.load("negative", as: NegativeFile.self)
        for entry in file.unsupported {
            do {
                _ = try ChatTemplate(entry.template)
                Issue.record("\(entry.template.debugDescription) was accepted")
            } catch {
                #expect(error.code == .unsupportedTemplate, "\(entry.template.debugDescription): \(error)")
                #expect(error.message.contains(" at 1:"), "\(error.message) names no position")
            }
        }
    }

    @Test("Constructs only visible at run time are refused when rendering, never rendered approximately")
    func unsupportedAtRender() throws {
        let file = try ChatTemplateFixtures.load("negative", as: NegativeFile.self)
        for entry in file.unsupportedAtRender {
            let template = try ChatTemplate(entry.template)
            do {
                let rendered = try template.render(messages: [], addGenerationPrompt: false)
                Issue.record("\(entry.template.debugDescription) rendered \(rendered.debugDescription)")
            } catch {
                #expect(error.code == .unsupportedTemplate, "\(entry.template.debugDescription): \(error)")
            }
        }
    }

    @Test("Errors name the construct and its line:column")
    func errorPositions() throws {
        do {
            _ = try ChatTemplate("line one\n{{ messages | shuffle }}")
            Issue.record("accepted an unknown filter")
        } catch {
            #expect(error.code == .unsupportedTemplate)
            #expect(error.message.contains("'shuffle'"))
            #expect(error.message.contains("2:15"), "\(error.message)")
        }
        do {
            _ = try ChatTemplate("a\nb\n  {% include 'x' %}")
            Issue.record("accepted include")
        } catch {
            #expect(error.code == .unsupportedTemplate)
            #expect(error.message.contains("include") && error.message.contains("3:6"), "\(error.message)")
        }
        do {
            _ = try ChatTemplate("{% for m in messages %}\n{{ m }}")
            Issue.record("accepted an unclosed for")
        } catch {
            #expect(error.code == .templateSyntax)
            #expect(error.message.contains("endfor"), "\(error.message)")
        }
    }

    @Test("raise_exception surfaces the template's message verbatim")
    func raiseException() throws {
        let template = try ChatTemplate("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok")
        #expect(try template.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false) == "ok")
        do {
            _ = try template.render(messages: [ChatMessage(role: "system", content: "s")], addGenerationPrompt: false)
            Issue.record("did not raise")
        } catch {
            #expect(error.code == .templateRender)
            #expect(error.message == "System role not supported")
        }
    }

    @Test("Context variables: defaults, overrides and reserved names")
    func variables() throws {
        let template = try ChatTemplate(
            "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|{{ extra | tojson }}|{{ add_generation_prompt }}|{{ messages | length }}")
        let extra: TemplateValue = ["z": 1, "a": [true, nil, 1.5, "é"]]
        let rendered = try template.render(
            messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
            variables: ["extra": extra, "tools": []])
        #expect(rendered == #"<s>|</s>|False|True|{"z": 1, "a": [true, null, 1.5, "é"]}|True|1"#)
        let overridden = try template.render(
            messages: [], addGenerationPrompt: false, bosToken: "<s>", variables: ["bos_token": "[B]", "extra": extra])
        #expect(overridden.hasPrefix("[B]|"))
        for reserved in ["messages", "add_generation_prompt"] {
            #expect(throws: TokenizationError.self) {
                _ = try template.render(messages: [], addGenerationPrompt: false, variables: [reserved: .none])
            }
            do {
                _ = try template.render(messages: [], addGenerationPrompt: false, variables: [reserved: .none])
            } catch {
                #expect(error.code == .invalidMessages)
            }
        }
    }

    @Test("TemplateObject keeps insertion order and compares like a Python dict")
    func templateObject() {
        var object: TemplateObject = ["b": 1, "a": 2]
        object["c"] = 3
        object["b"] = 4
        #expect(object.keys == ["b", "a", "c"])
        object["a"] = nil
        #expect(object.keys == ["b", "c"])
        #expect(object.map(\.key) == ["b", "c"])
        let forward: TemplateObject = ["x": 1, "y": 2]
        let backward: TemplateObject = ["y": 2, "x": 1]
        #expect(forward == backward)
    }

    @Test("A parsed template is a Sendable value, renderable from many tasks at once")
    func concurrentRendering() async throws {
        let template = try ChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}")
        let results = await withTaskGroup(of: String?.self) { group in
            for i in 0..<16 {
                group.addTask { try? template.render(messages: [ChatMessage(role: "user", content: "\(i)")], addGenerationPrompt: false) }
            }
            var all: [String] = []
            for await result in group { all.append(result ?? "error") }
            return all
        }
        #expect(Set(results) == Set((0..<16).map { "user:\($0);" }))
    }
}
