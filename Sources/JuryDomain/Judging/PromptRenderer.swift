import Mustache

/// Renders a run's prompt templates for one example.
///
/// Templates see the example's fields (its JSON payload), `id`, `taxonomy` (a list of
/// label and description) and `labels` (the label names).
public struct PromptRenderer: Sendable {
    private let system: MustacheTemplate
    private let user: MustacheTemplate
    private let labels: [String]
    private let taxonomy: [[String: String]]

    public init(config: RunConfig) throws {
        system = try Self.compile(config.prompt.system)
        user = try Self.compile(config.prompt.user)
        labels = config.labels
        taxonomy = config.taxonomy.map { ["label": $0.label, "description": $0.description] }
    }

    /// Prompts are plain text: values go in as they are, not HTML-escaped.
    static func compile(_ template: String) throws -> MustacheTemplate {
        try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template)
    }

    public func render(id: String, payload: JSONValue) -> JudgeRequest {
        var context: [String: Any] = [:]
        if case .object(let fields) = payload {
            context = fields.mapValues(\.plain)
        }
        context["id"] = id
        context["taxonomy"] = taxonomy
        context["labels"] = labels
        return JudgeRequest(system: system.render(context), user: user.render(context), labels: labels)
    }
}
