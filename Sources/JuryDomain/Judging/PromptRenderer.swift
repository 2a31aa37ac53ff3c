import Mustache

/// Renders a run's prompt templates for one example: a pure function of the example, so that
/// every judge in every process sees the same bytes.
///
/// Templates see the example's fields (its JSON payload), `id`, `taxonomy` (a list of
/// label and description) and `labels` (the label names). A field holding an object or an
/// array renders as canonical JSON (keys sorted, no spaces); sections iterate arrays and
/// dotted names reach into objects (`{{meta.shop}}`).
public struct PromptRenderer: Sendable {
    private let system: MustacheTemplate
    private let user: MustacheTemplate
    private let labels: [String]
    private let taxonomy: [[String: String]]
    /// The system message, when it reads nothing of the example (only `taxonomy` and `labels`):
    /// then it is the same for every example and is rendered once, here.
    private let constantSystem: String?

    public init(config: RunConfig) throws {
        system = try Self.compile(config.prompt.system)
        user = try Self.compile(config.prompt.user)
        labels = config.labels
        taxonomy = config.taxonomy.map { ["label": $0.label, "description": $0.description] }
        let probe = LookupRecorder(known: ["taxonomy": taxonomy, "labels": labels])
        let text = system.render(probe)
        constantSystem = probe.askedForOthers ? nil : text
    }

    /// Prompts are plain text: values go in as they are, not HTML-escaped.
    static func compile(_ template: String) throws -> MustacheTemplate {
        try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template)
    }

    public func render(id: String, payload: JSONValue) -> JudgeRequest {
        var context = TemplateValue.context(id: id, payload: payload)
        context["taxonomy"] = taxonomy
        context["labels"] = labels
        return JudgeRequest(
            system: constantSystem ?? system.render(context), user: user.render(context), labels: labels)
    }
}

/// A template's root context that answers `known` names and notes whether it was asked for any
/// other: a template that asks for nothing else renders the same for every example.
private final class LookupRecorder: MustacheParent {
    let known: [String: Any]
    var askedForOthers = false

    init(known: [String: Any]) { self.known = known }

    func child(named name: String) -> Any? {
        if let value = known[name] { return value }
        askedForOthers = true
        return nil
    }
}

/// A JSON value as the templates see it. Objects and arrays render as canonical JSON, never as
/// a Swift description, whose key order changes from process to process.
enum TemplateValue {
    /// What every template sees of an example: its fields, and `id`.
    static func context(id: String, payload: JSONValue) -> [String: Any] {
        var context: [String: Any] = [:]
        if case .object(let fields) = payload { context = fields.mapValues(make) }
        context["id"] = id
        return context
    }

    static func make(_ value: JSONValue) -> Any {
        switch value {
        case .null: return TemplateNull()
        case .bool(let value): return value
        case .integer(let value): return value
        case .number(let value): return value
        case .string(let value): return value
        case .array(let items): return TemplateArray(items: items)
        case .object(let fields): return TemplateObject(fields: fields)
        }
    }
}

struct TemplateObject: MustacheParent, MustacheCustomRenderable {
    let fields: [String: JSONValue]
    func child(named name: String) -> Any? { fields[name].map(TemplateValue.make) }
    var renderText: String { JSONValue.object(fields).jsonText }
    var isNull: Bool { false }
}

struct TemplateArray: MustacheSequence, MustacheCustomRenderable {
    let items: [JSONValue]
    func makeIterator() -> IndexingIterator<[Any]> { items.map(TemplateValue.make).makeIterator() }
    var renderText: String { JSONValue.array(items).jsonText }
    var isNull: Bool { false }
}

/// JSON null: renders as nothing and counts as false in sections.
struct TemplateNull: MustacheCustomRenderable {
    var renderText: String { "" }
    var isNull: Bool { true }
}
