/// One message of a conversation, as Hugging Face chat templates receive it:
/// a dict with `role` and `content`.
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A model's chat template (`tokenizer.chat_template`), parsed once and
/// rendered the way Hugging Face `transformers`' `apply_chat_template` renders
/// it with jinja2.
///
/// The interpreter implements the subset of Jinja that chat templates use; see
/// <doc:ChatTemplates>. A template it cannot render faithfully is refused with
/// ``TokenizationError/Code/unsupportedTemplate`` — at ``init(_:)`` when the
/// construct is visible in the source, otherwise at ``render(messages:addGenerationPrompt:bosToken:eosToken:variables:)`` —
/// never rendered approximately.
public struct ChatTemplate: Sendable {
    /// The template text as given.
    public let source: String
    private let nodes: [JinjaNode]

    /// Parses a template.
    ///
    /// - Throws: ``TokenizationError/Code/unsupportedTemplate`` naming the construct and its `line:column`
    ///   (`{% include %}`, an unknown filter, …); ``TokenizationError/Code/templateSyntax`` for a malformed template.
    public init(_ source: String) throws(TokenizationError) {
        self.source = source
        let tokens = try JinjaLexer(source: source).tokenize()
        var parser = JinjaParser(tokens: tokens)
        nodes = try parser.parseTemplate()
    }

    /// Renders a conversation.
    ///
    /// The template sees the variables `apply_chat_template` passes: `messages` (a list of
    /// `{"role", "content"}` dicts), `add_generation_prompt`, `tools` and `documents` (both `none`
    /// unless given in `variables`), `bos_token` and `eos_token`, and every entry of `variables`
    /// (which may override `bos_token`, `eos_token`, `tools` and `documents`). The globals
    /// `raise_exception`, `strftime_now`, `namespace`, `range` and `dict` are available.
    ///
    /// - Throws: ``TokenizationError/Code/templateRender`` when jinja2 would raise (the template's
    ///   `raise_exception` message is the error's ``TokenizationError/message``, verbatim),
    ///   ``TokenizationError/Code/unsupportedTemplate`` when the template needs a feature this
    ///   interpreter lacks, ``TokenizationError/Code/invalidMessages`` when `variables` tries to
    ///   replace `messages` or `add_generation_prompt`.
    public func render(
        messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String = "", eosToken: String = "",
        variables: [String: TemplateValue] = [:]
    ) throws(TokenizationError) -> String {
        for reserved in ["messages", "add_generation_prompt"] where variables[reserved] != nil {
            throw TokenizationError(
                .invalidMessages, "variables must not contain '\(reserved)'; pass it through the \(reserved == "messages" ? "messages" : "addGenerationPrompt") parameter")
        }
        let globals = JinjaScope(parent: nil)
        globals.set("tools", .none)
        globals.set("documents", .none)
        globals.set("bos_token", .string(bosToken))
        globals.set("eos_token", .string(eosToken))
        for (name, value) in variables { globals.set(name, JinjaValue(value)) }
        globals.set(
            "messages",
            .list(
                messages.map { message in
                    var dict = JinjaDict()
                    dict["role"] = .string(message.role)
                    dict["content"] = .string(message.content)
                    return .dict(dict)
                }))
        globals.set("add_generation_prompt", .bool(addGenerationPrompt))
        let interpreter = JinjaInterpreter()
        var out = ""
        _ = try interpreter.execute(nodes, scope: JinjaScope(parent: globals), into: &out)
        return out
    }
}
