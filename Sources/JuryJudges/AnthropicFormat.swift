public import Foundation
public import JuryDomain

/// Anthropic Messages, natively: the label is forced with a tool whose input schema holds the
/// enum, required through `tool_choice`. (Anthropic's OpenAI compatibility layer ignores
/// `response_format`, so it would not force the label at all.) The system prompt, the part
/// every example shares, is marked for prompt caching.
public struct AnthropicFormat: ProviderFormat {
    /// The API version Jury speaks.
    static let version = "2023-06-01"
    static let toolName = "record_label"

    public init() {}

    public func endpoint(baseURL: String, model: String) -> String {
        baseURL.withoutTrailingSlash + "/messages"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        [("anthropic-version", Self.version)] + (apiKey.map { [("x-api-key", $0)] } ?? [])
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        try JSONEncoder().encode(
            MessagesRequest(
                model: model, maxTokens: 1024, temperature: 0,
                system: [.init(type: "text", text: request.system, cacheControl: .init(type: "ephemeral"))],
                messages: [.init(role: "user", content: request.user)],
                tools: [
                    .init(
                        name: Self.toolName, description: "Record the one label of the taxonomy that fits, and why.",
                        inputSchema: LabelSchema(labels: request.labels))
                ],
                toolChoice: .init(type: "tool", name: Self.toolName)))
    }

    public func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        let response = try strictResponse(body, fail: fail)
        guard case .array(let blocks)? = response["content"] else {
            throw fail("the response is not a message")
        }
        let reader = AnswerReader(labels: labels, judge: judge)
        let answer: (label: String, rationale: String?)
        if let tool = blocks.first(where: { $0["type"]?.text == "tool_use" && $0["name"]?.text == Self.toolName }) {
            guard case .object(let input)? = tool["input"] else { throw fail("the tool call has no input object") }
            answer = try reader.read(fields: input, answer: JSONValue.object(input).jsonText)
        } else if let text = blocks.compactMap({ $0["type"]?.text == "text" ? $0["text"]?.text : nil }).first {
            // The tool was required; a text answer is still read if it holds the JSON.
            answer = try reader.read(text: text)
        } else {
            throw fail("the message has neither the tool call nor text")
        }
        let usage = response["usage"]
        let count = { (key: String) in usage?[key].flatMap(Self.tokens) }
        let fresh = count("input_tokens")
        let cacheRead = count("cache_read_input_tokens")
        let cacheWrite = count("cache_creation_input_tokens")
        // Anthropic counts cached input apart; Jury's prompt tokens are all the input.
        let input = fresh.map { $0 &+ (cacheRead ?? 0) &+ (cacheWrite ?? 0) }
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale, promptTokens: input,
            completionTokens: count("output_tokens"), cachedTokens: cacheRead, modelVersion: response["model"]?.text)
    }

    public func errorDetail(_ body: Data) -> (message: String?, exhausted: Bool, retryAfter: Double?) {
        let error = try? JSONValue.parse(body)
        let message = error?["error", "message"]?.text
        // A used-up credit balance or spend limit is a 400 that no retry cures.
        let lowered = message?.lowercased() ?? ""
        let exhausted = lowered.contains("credit balance") || lowered.contains("spend limit")
        return (message, exhausted, nil)
    }

    static func tokens(_ value: JSONValue) -> Int? {
        switch value {
        case .integer(let count): return Int(max(0, count))
        case .number(let count) where count.isFinite: return count >= 9.2e18 ? Int.max : Int(max(0, count.rounded()))
        default: return nil
        }
    }
}

// MARK: - Wire format

private struct MessagesRequest: Encodable {
    struct SystemBlock: Encodable {
        struct CacheControl: Encodable { let type: String }
        let type: String
        let text: String
        let cacheControl: CacheControl
        enum CodingKeys: String, CodingKey {
            case type, text
            case cacheControl = "cache_control"
        }
    }
    struct Message: Encodable {
        let role: String
        let content: String
    }
    struct Tool: Encodable {
        let name: String
        let description: String
        let inputSchema: LabelSchema
        enum CodingKeys: String, CodingKey {
            case name, description
            case inputSchema = "input_schema"
        }
    }
    struct ToolChoice: Encodable {
        let type: String
        let name: String
    }
    let model: String
    let maxTokens: Int
    let temperature: Double
    let system: [SystemBlock]
    let messages: [Message]
    let tools: [Tool]
    let toolChoice: ToolChoice
    enum CodingKeys: String, CodingKey {
        case model, temperature, system, messages, tools
        case maxTokens = "max_tokens"
        case toolChoice = "tool_choice"
    }
}
