public import Foundation
public import JuryDomain

/// OpenAI Chat Completions, which OpenAI and every OpenAI-compatible server (vLLM, Ollama,
/// llama.cpp, LiteLLM, Azure OpenAI) serve. The label is forced with `response_format`: a
/// strict JSON schema whose `label` is an enum of the taxonomy.
public struct OpenAIFormat: ProviderFormat {
    public init() {}

    public func endpoint(baseURL: String, model: String) -> String {
        baseURL.withoutTrailingSlash + "/chat/completions"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("Authorization", "Bearer \($0)")] } ?? []
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        try JSONEncoder().encode(
            ChatRequest(
                model: model,
                messages: [.init(role: "system", content: request.system), .init(role: "user", content: request.user)],
                temperature: 0,
                responseFormat: .init(
                    type: "json_schema",
                    jsonSchema: .init(name: "verdict", strict: true, schema: .init(labels: request.labels)))))
    }

    public func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        try Self.parseAnswer(body, labels: labels, judge: judge)
    }

    /// Reads a Chat Completions response body (static, for tests of untrusted input).
    public static func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        _ = try strictResponse(body, fail: fail)
        guard let completion = try? JSONDecoder().decode(ChatResponse.self, from: body) else {
            throw fail("the response is not a chat completion")
        }
        guard let content = completion.choices.first?.message.content else {
            throw fail("the response has no message content")
        }
        let answer = try AnswerReader(labels: labels, judge: judge).read(text: content)
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale,
            promptTokens: completion.usage?.promptTokens?.count,
            completionTokens: completion.usage?.completionTokens?.count,
            cachedTokens: completion.usage?.promptTokensDetails?.cachedTokens?.count,
            modelVersion: completion.model)
    }

    public func errorDetail(_ body: Data) -> (message: String?, exhausted: Bool, retryAfter: Double?) {
        let error = try? JSONValue.parse(body)
        let code = error?["error", "code"]?.text ?? error?["error", "type"]?.text
        // OpenAI says `insufficient_quota` when the account's credit or spend limit is used up.
        return (error?["error", "message"]?.text, code == "insufficient_quota", nil)
    }
}

// MARK: - Wire format

private struct ChatRequest: Encodable {
    struct Message: Encodable {
        let role: String
        let content: String
    }
    struct ResponseFormat: Encodable {
        let type: String
        let jsonSchema: JSONSchemaFormat
        enum CodingKeys: String, CodingKey {
            case type
            case jsonSchema = "json_schema"
        }
    }
    struct JSONSchemaFormat: Encodable {
        let name: String
        let strict: Bool
        let schema: StrictSchema
    }
    /// Strict mode wants every object closed.
    struct StrictSchema: Encodable {
        let schema: LabelSchema
        init(labels: [String]) { schema = LabelSchema(labels: labels) }
        enum CodingKeys: String, CodingKey { case type, properties, required, additionalProperties }
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(schema.type, forKey: .type)
            try container.encode(schema.properties, forKey: .properties)
            try container.encode(schema.required, forKey: .required)
            try container.encode(false, forKey: .additionalProperties)
        }
    }
    let model: String
    let messages: [Message]
    let temperature: Double
    let responseFormat: ResponseFormat

    enum CodingKeys: String, CodingKey {
        case model, messages, temperature
        case responseFormat = "response_format"
    }
}

private struct ChatResponse: Decodable {
    struct Choice: Decodable {
        struct Message: Decodable {
            let content: String?
        }
        let message: Message
    }
    struct Usage: Decodable {
        struct Details: Decodable {
            let cachedTokens: TokenCount?
            enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
        }
        let promptTokens: TokenCount?
        let completionTokens: TokenCount?
        let promptTokensDetails: Details?
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case promptTokensDetails = "prompt_tokens_details"
        }
    }
    let model: String?
    let choices: [Choice]
    let usage: Usage?
}
