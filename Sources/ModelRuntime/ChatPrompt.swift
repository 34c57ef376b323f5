import Tokenization

extension TextGenerator {
    /// Renders `messages` with the model's chat template (with the generation prompt) and tokenizes the result.
    public func chatPrompt(_ messages: [ChatMessage]) throws(ModelRuntimeError) -> [Int] { try model.chatPrompt(messages) }
}

extension LlamaModel {
    /// Renders `messages` with the model's chat template (with the generation prompt) and tokenizes the result.
    public func chatPrompt(_ messages: [ChatMessage]) throws(ModelRuntimeError) -> [Int] {
        let model = self
        guard let source = model.chatTemplateSource else {
            throw ModelRuntimeError(.invalidConfiguration, "the model file has no tokenizer.chat_template; pass a plain prompt instead")
        }
        let tk = model.tokenizer
        func text(_ id: Int?) -> String { id.flatMap { try? tk.decode([$0]) } ?? "" }
        do {
            let template = try ChatTemplate(source)
            let rendered = try template.render(messages: messages, addGenerationPrompt: true,
                                               bosToken: text(tk.configuration.bosTokenID), eosToken: text(tk.configuration.eosTokenID))
            return tk.encode(rendered, addSpecialTokens: true, parseSpecialTokens: true)
        } catch {
            throw ModelRuntimeError(.invalidConfiguration, "cannot render the model's chat template: \(error.message)", underlying: error.code.rawValue)
        }
    }

}
