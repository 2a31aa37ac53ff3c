public import Foundation
public import JuryDomain

/// OpenAI Chat Completions, which OpenAI and every OpenAI-compatible server (vLLM, Ollama,
/// llama.cpp, LiteLLM, Azure OpenAI) serve. The label is forced with `response_format`: a
/// strict JSON schema whose `label` is an enum of the taxonomy.
///
/// Jury sends no sampling parameter: reasoning models (the gpt-5 family, the o-series) refuse
/// any temperature but 1. A judge's `parameters` add what the model takes (`reasoning_effort`,
/// `max_completion_tokens`, `temperature`, `seed`, `service_tier`).
public struct OpenAIFormat: ProviderFormat {
    let parameters: [String: JSONValue]

    public init(parameters: [String: JSONValue] = [:]) {
        self.parameters = parameters
    }

    public func endpoint(baseURL: String, model: String) -> String {
        baseURL.withoutTrailingSlash + "/chat/completions"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("Authorization", "Bearer \($0)")] } ?? []
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        let body: JSONValue = .object([
            "model": .string(model),
            "messages": .array([
                .object(["role": .string("system"), "content": .string(request.system)]),
                .object(["role": .string("user"), "content": .string(request.user)]),
            ]),
            "response_format": .object([
                "type": .string("json_schema"),
                "json_schema": .object([
                    "name": .string("verdict"), "strict": .bool(true),
                    "schema": LabelSchema.json(labels: request.labels, closed: true),
                ]),
            ]),
        ])
        return try encode(body, parameters: parameters)
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
        guard let choice = completion.choices.first else { throw fail("the response has no choice") }
        // A model that declines says so in `refusal`, and its content is empty.
        if let refusal = choice.message.refusal, !refusal.isEmpty {
            throw JudgeError(
                .refused, "judge \(judge) declined to label: \(refusal.prefix(300))", answer: refusal)
        }
        guard let content = choice.message.content, !content.isEmpty else {
            if choice.finishReason == "length" {
                throw fail(
                    "the answer was cut off at the output cap before any text (raise max_completion_tokens, or lower reasoning_effort)"
                )
            }
            throw fail("the response has no message content")
        }
        let answer = try AnswerReader(labels: labels, judge: judge).read(text: content)
        let usage = completion.usage
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale,
            promptTokens: usage?.promptTokens?.count,
            // Reasoning tokens are part of completion_tokens already, as they are billed.
            completionTokens: usage?.completionTokens?.count,
            cachedTokens: usage?.promptTokensDetails?.cachedTokens?.count,
            cacheWriteTokens: usage?.promptTokensDetails?.cacheWriteTokens?.count,
            thinkingTokens: usage?.completionTokensDetails?.reasoningTokens?.count,
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

private struct ChatResponse: Decodable {
    struct Choice: Decodable {
        struct Message: Decodable {
            let content: String?
            let refusal: String?
        }
        let message: Message
        let finishReason: String?
        enum CodingKeys: String, CodingKey {
            case message
            case finishReason = "finish_reason"
        }
    }
    struct Usage: Decodable {
        struct PromptDetails: Decodable {
            let cachedTokens: TokenCount?
            let cacheWriteTokens: TokenCount?
            enum CodingKeys: String, CodingKey {
                case cachedTokens = "cached_tokens"
                case cacheWriteTokens = "cache_write_tokens"
            }
        }
        struct CompletionDetails: Decodable {
            let reasoningTokens: TokenCount?
            enum CodingKeys: String, CodingKey { case reasoningTokens = "reasoning_tokens" }
        }
        let promptTokens: TokenCount?
        let completionTokens: TokenCount?
        let promptTokensDetails: PromptDetails?
        let completionTokensDetails: CompletionDetails?
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case promptTokensDetails = "prompt_tokens_details"
            case completionTokensDetails = "completion_tokens_details"
        }
    }
    let model: String?
    let choices: [Choice]
    let usage: Usage?
}
