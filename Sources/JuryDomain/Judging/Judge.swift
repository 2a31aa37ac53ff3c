/// What a judge is asked: the rendered prompt and the labels it must choose from.
public struct JudgeRequest: Sendable {
    public let system: String
    public let user: String
    public let labels: [String]

    public init(system: String, user: String, labels: [String]) {
        self.system = system
        self.user = user
        self.labels = labels
    }
}

/// A judge's answer: one label of the taxonomy, and why.
public struct JudgeAnswer: Sendable, Equatable {
    public let label: String
    public let rationale: String?
    public let promptTokens: Int?
    public let completionTokens: Int?

    public init(label: String, rationale: String?, promptTokens: Int? = nil, completionTokens: Int? = nil) {
        self.label = label
        self.rationale = rationale
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// Something that labels examples: a model behind an HTTP API, or an in-process stand-in.
public protocol Judge: Sendable {
    /// Labels one example. Throws `JudgeError` when the call fails; the worker decides on retries.
    func classify(_ request: JudgeRequest) async throws -> JudgeAnswer
}
