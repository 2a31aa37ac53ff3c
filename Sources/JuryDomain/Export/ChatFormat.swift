import Mustache

/// Writes agreed examples as OpenAI fine-tuning conversations: the user's request (the run's
/// `training.user` template), and the reply a model should learn. Refusing and clarifying
/// labels reply with their taxonomy `reply` template; accepting labels with `training.assistant`.
public struct ChatFormat: Sendable {
    private let system: MustacheTemplate?
    private let user: MustacheTemplate
    private let assistant: MustacheTemplate?
    private let replies: [String: MustacheTemplate]

    /// Why an agreed example was not written.
    public enum Skip: String, Sendable, CaseIterable {
        /// Its label accepts the request and the config gives no `training.assistant`.
        case acceptedWithoutAssistant = "accepted, no training.assistant"
        /// Its label refuses or clarifies and has no `reply`.
        case labelWithoutReply = "label has no reply"
    }

    public init(config: RunConfig) throws {
        guard let training = config.training else {
            throw JuryError(
                .invalidConfig,
                "run '\(config.name)' has no `training` section: chat export needs `training.user` (the user's message, a template over the example's fields) and a `reply` for each refusing label"
            )
        }
        system = try training.system.map(PromptRenderer.compile)
        user = try PromptRenderer.compile(training.user)
        assistant = try training.assistant.map(PromptRenderer.compile)
        var replies: [String: MustacheTemplate] = [:]
        for entry in config.taxonomy {
            if let reply = entry.reply { replies[entry.label] = try PromptRenderer.compile(reply) }
        }
        self.replies = replies
        self.kinds = Dictionary(uniqueKeysWithValues: config.labels.map { ($0, config.kind(of: $0) ?? .refuse) })
    }

    private let kinds: [String: RunConfig.Label.Kind]

    /// The conversation for one example labelled `label`, as one JSON line; or why there is none.
    public func line(id: String, payload: JSONValue, label: String) -> Result<String, SkipReason> {
        var context = TemplateValue.context(id: id, payload: payload)
        context["label"] = label
        let reply: MustacheTemplate
        if kinds[label] == .accept {
            guard let assistant else { return .failure(SkipReason(.acceptedWithoutAssistant)) }
            reply = assistant
        } else {
            guard let template = replies[label] else { return .failure(SkipReason(.labelWithoutReply)) }
            reply = template
        }
        var messages: [JSONValue] = []
        if let system { messages.append(Self.message("system", system.render(context))) }
        messages.append(Self.message("user", user.render(context)))
        messages.append(Self.message("assistant", reply.render(context)))
        return .success(JSONValue.object(["messages": .array(messages)]).jsonText)
    }

    public struct SkipReason: Error, Sendable {
        public let skip: Skip
        init(_ skip: Skip) { self.skip = skip }
    }

    static func message(_ role: String, _ content: String) -> JSONValue {
        .object(["role": .string(role), "content": .string(content)])
    }
}
