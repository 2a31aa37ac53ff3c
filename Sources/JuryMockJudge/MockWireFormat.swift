import Foundation
import JuryDomain

/// The three provider APIs the mock judge speaks: how a call is read, and how an answer and an
/// error are written, each as the real provider writes them.
enum MockWireFormat: Sendable {
    case openAI, anthropic, gemini

    /// What the mock needs of a call, whatever its format.
    struct Call {
        let model: String
        let user: String
        let labels: [String]
        /// Anthropic: the label is forced through a tool, so it is answered as a tool call.
        var byTool = false
    }

    /// The kinds of error the mock gives, each written in the provider's own words.
    enum ErrorKind {
        case badRequest, unauthorized, notFound, rateLimited, server, overloaded, exhausted
    }

    /// A request the provider would refuse, with its message.
    struct Refusal: Error {
        let message: String
    }

    /// The newest Anthropic API version the mock knows; it and later ones take no sampling parameter.
    static let anthropicVersionWithoutSampling = "2026-10-21"

    /// Reads a request body; `pathModel` is the model a Gemini URL names, `version` the
    /// `anthropic-version` header. Nil: not a call the mock reads (no model, no prompt, the
    /// label not forced as an enum). Throws `Refusal` for a parameter the provider refuses now.
    func call(from body: Data, pathModel: String?, version: String? = nil) throws -> Call? {
        guard let request = try? JSONValue.parse(body) else { return nil }
        let model: String?
        let user: String?
        var labelProperty: JSONValue?
        var byTool = false
        switch self {
        case .openAI:
            model = request["model"]?.text
            guard case .array(let messages)? = request["messages"] else { return nil }
            user = messages.last { $0["role"]?.text == "user" }?["content"]?.text
            labelProperty = request["response_format", "json_schema", "schema", "properties", "label"]
            if let model, Self.isReasoningModel(model) {
                // As OpenAI answers its reasoning models.
                if let temperature = request["temperature"], temperature != .integer(1), temperature != .number(1) {
                    throw Refusal(
                        message:
                            "Unsupported value: 'temperature' does not support \(temperature.jsonText) with this model. Only the default (1) value is supported."
                    )
                }
                if request["max_tokens"] != nil {
                    throw Refusal(
                        message:
                            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
                    )
                }
            }
        case .anthropic:
            model = request["model"]?.text
            guard case .array(let messages)? = request["messages"] else { return nil }
            user = messages.last { $0["role"]?.text == "user" }?["content"]?.text
            if case .array(let tools)? = request["tools"] {
                byTool = true
                labelProperty = tools.first?["input_schema", "properties", "label"]
            } else {
                labelProperty = request["output_config", "format", "schema", "properties", "label"]
            }
            guard request["max_tokens"] != nil else { throw Refusal(message: "max_tokens: Field required") }
            let current = (version ?? "") >= Self.anthropicVersionWithoutSampling
            for parameter in ["temperature", "top_p", "top_k"] where request[parameter] != nil {
                if current {
                    throw Refusal(message: "\(parameter): Extra inputs are not permitted")
                }
                if let model, Self.isGeneration5Claude(model) {
                    throw Refusal(message: "`\(parameter)` is not supported for \(model); remove it")
                }
            }
            if let thinking = request["thinking", "type"]?.text, thinking != "disabled",
                request["tool_choice", "type"]?.text == "tool"
            {
                throw Refusal(message: "Thinking may not be enabled when tool_choice forces tool use.")
            }
        case .gemini:
            model = pathModel
            guard case .array(let contents)? = request["contents"], case .array(let parts)? = contents.last?["parts"]
            else { return nil }
            user = parts.compactMap { $0["text"]?.text }.joined()
            labelProperty = request["generationConfig", "responseSchema", "properties", "label"]
        }
        guard let model, let user, case .array(let values)? = labelProperty?["enum"] else { return nil }
        let labels = values.compactMap(\.text)
        return labels.isEmpty ? nil : Call(model: model, user: user, labels: labels, byTool: byTool)
    }

    /// OpenAI's reasoning models, by name: the gpt-5 family and the o-series.
    static func isReasoningModel(_ model: String) -> Bool {
        (try? /(gpt-5|o[1-9])([-.].*)?/.wholeMatch(in: model)) != nil
    }

    /// Claude models of generation 5 (`claude-opus-5`, `claude-sonnet-5-1`, ...), which take no
    /// sampling parameter on any API version.
    static func isGeneration5Claude(_ model: String) -> Bool {
        (try? /claude-([a-z]+-)?5([-.].*)?/.wholeMatch(in: model)) != nil
    }

    /// The credential a request carries, from the header this provider uses.
    func credential(authorization: String?, apiKey: String?, googleKey: String?) -> String? {
        switch self {
        case .openAI: return authorization.map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
        // The key in x-api-key, or as a bearer token, as the current Python SDK sends it.
        case .anthropic: return apiKey ?? authorization.map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
        case .gemini: return googleKey
        }
    }

    /// A successful answer: the label and rationale, or `text` in their place (garbage, a fixed
    /// answer), or a refusal. Token counts as the provider reports them, thinking included.
    func answer(
        model: String, label: String, rationale: String, text: String?, inputTokens: Int64, thinkingTokens: Int64 = 0,
        refuse: Bool = false, byTool: Bool = false
    ) -> JSONValue {
        let version = JSONValue.string(model + "-mock-2026-11")
        let json = text ?? JSONValue.object(["label": .string(label), "rationale": .string(rationale)]).jsonText
        let answerTokens: Int64 = 16
        let refusal = "I can't help with labelling this request."
        switch self {
        case .openAI:
            // completion_tokens holds the reasoning tokens; the details say how many.
            let message: JSONValue =
                refuse
                ? .object(["role": .string("assistant"), "content": .null, "refusal": .string(refusal)])
                : .object(["role": .string("assistant"), "content": .string(json), "refusal": .null])
            return .object([
                "id": .string("chatcmpl-mock"), "object": .string("chat.completion"), "model": version,
                "created": .integer(1_796_000_000),
                "choices": .array([
                    .object(["index": .integer(0), "finish_reason": .string("stop"), "message": message])
                ]),
                "usage": .object([
                    "prompt_tokens": .integer(inputTokens), "completion_tokens": .integer(answerTokens + thinkingTokens),
                    "total_tokens": .integer(inputTokens + answerTokens + thinkingTokens),
                    "prompt_tokens_details": .object(["cached_tokens": .integer(0)]),
                    "completion_tokens_details": .object(["reasoning_tokens": .integer(thinkingTokens)]),
                ]),
            ])
        case .anthropic:
            var blocks: [JSONValue] = []
            if thinkingTokens > 0 {
                blocks.append(
                    .object([
                        "type": .string("thinking"), "thinking": .string("Weighing the labels."),
                        "signature": .string("mock-signature"),
                    ]))
            }
            if refuse {
                blocks.append(.object(["type": .string("text"), "text": .string(refusal)]))
            } else if byTool, text == nil {
                blocks.append(
                    .object([
                        "type": .string("tool_use"), "id": .string("toolu_mock"), "name": .string("record_label"),
                        "input": .object(["label": .string(label), "rationale": .string(rationale)]),
                    ]))
            } else {
                blocks.append(.object(["type": .string("text"), "text": .string(json)]))
            }
            let stop = refuse ? "refusal" : byTool && text == nil ? "tool_use" : "end_turn"
            var usage: [String: JSONValue] = [
                "input_tokens": .integer(inputTokens), "output_tokens": .integer(answerTokens + thinkingTokens),
                "cache_read_input_tokens": .integer(0), "cache_creation_input_tokens": .integer(0),
            ]
            if thinkingTokens > 0 {
                usage["output_tokens_details"] = .object(["thinking_tokens": .integer(thinkingTokens)])
            }
            return .object([
                "id": .string("msg_mock"), "type": .string("message"), "role": .string("assistant"), "model": version,
                "content": .array(blocks), "stop_reason": .string(stop), "stop_sequence": .null,
                "usage": .object(usage),
            ])
        case .gemini:
            // thoughtsTokenCount stands apart from candidatesTokenCount; both are billed as output.
            var usage: [String: JSONValue] = [
                "promptTokenCount": .integer(inputTokens),
                "candidatesTokenCount": .integer(refuse ? 0 : answerTokens),
                "totalTokenCount": .integer(inputTokens + (refuse ? 0 : answerTokens) + thinkingTokens),
                "cachedContentTokenCount": .integer(0),
            ]
            if thinkingTokens > 0 { usage["thoughtsTokenCount"] = .integer(thinkingTokens) }
            let candidate: JSONValue =
                refuse
                ? .object(["finishReason": .string("SAFETY"), "index": .integer(0)])
                : .object([
                    "content": .object([
                        "role": .string("model"), "parts": .array([.object(["text": .string(json)])]),
                    ]),
                    "finishReason": .string("STOP"), "index": .integer(0),
                ])
            return .object([
                "candidates": .array([candidate]), "usageMetadata": .object(usage), "modelVersion": version,
            ])
        }
    }

    /// An error response: its HTTP status and body, as the provider writes them.
    func error(_ kind: ErrorKind, status: Int? = nil, message: String, retryAfter: Double? = nil) -> (Int, JSONValue) {
        let code: Int
        switch kind {
        case .badRequest: code = 400
        case .unauthorized: code = 401
        case .notFound: code = 404
        case .rateLimited: code = 429
        case .server: code = 500
        case .overloaded: code = 529
        case .exhausted: code = self == .anthropic ? 400 : 429
        }
        let status = status ?? code
        switch self {
        case .openAI:
            let type: String
            switch kind {
            case .rateLimited: type = "rate_limit_error"
            case .server, .overloaded: type = "server_error"
            case .exhausted: type = "insufficient_quota"
            default: type = "invalid_request_error"
            }
            return (
                status,
                .object([
                    "error": .object(["message": .string(message), "type": .string(type), "code": .string(type)])
                ])
            )
        case .anthropic:
            let type: String
            switch kind {
            case .badRequest, .exhausted: type = "invalid_request_error"
            case .unauthorized: type = "authentication_error"
            case .notFound: type = "not_found_error"
            case .rateLimited: type = "rate_limit_error"
            case .server: type = "api_error"
            case .overloaded: type = "overloaded_error"
            }
            return (
                status,
                .object([
                    "type": .string("error"),
                    "error": .object(["type": .string(type), "message": .string(message)]),
                ])
            )
        case .gemini:
            let statusName: String
            var details: [JSONValue] = []
            switch kind {
            case .badRequest: statusName = "INVALID_ARGUMENT"
            case .unauthorized: statusName = "UNAUTHENTICATED"
            case .notFound: statusName = "NOT_FOUND"
            case .rateLimited, .exhausted: statusName = "RESOURCE_EXHAUSTED"
            case .server: statusName = "INTERNAL"
            case .overloaded: statusName = "UNAVAILABLE"
            }
            if let retryAfter {
                details.append(
                    .object([
                        "@type": .string("type.googleapis.com/google.rpc.RetryInfo"),
                        "retryDelay": .string("\(retryAfter)s"),
                    ]))
            }
            if kind == .exhausted {
                details.append(
                    .object([
                        "@type": .string("type.googleapis.com/google.rpc.QuotaFailure"),
                        "violations": .array([
                            .object(["quotaId": .string("GenerateRequestsPerDayPerProjectPerModel-FreeTier")])
                        ]),
                    ]))
            }
            return (
                status,
                .object([
                    "error": .object([
                        "code": .integer(Int64(status)), "message": .string(message), "status": .string(statusName),
                        "details": .array(details),
                    ])
                ])
            )
        }
    }

    /// The provider's rate-limit headers for what the limiter decided.
    func rateLimitHeaders(_ decision: MockLimiter.Decision, now: Date = Date()) -> [(String, String)] {
        var headers: [(String, String)] = []
        switch self {
        case .openAI:
            // Durations as OpenAI writes them: "12ms", "1.5s".
            func duration(_ seconds: Double) -> String {
                seconds < 1 ? "\(Int((seconds * 1000).rounded(.up)))ms" : "\((seconds * 1000).rounded(.up) / 1000)s"
            }
            if let remaining = decision.remainingRequests, let reset = decision.requestsReset {
                headers += [
                    ("x-ratelimit-remaining-requests", "\(Int(remaining))"),
                    ("x-ratelimit-reset-requests", duration(reset)),
                ]
            }
            if let remaining = decision.remainingTokens, let reset = decision.tokensReset {
                headers += [
                    ("x-ratelimit-remaining-tokens", "\(Int(remaining))"),
                    ("x-ratelimit-reset-tokens", duration(reset)),
                ]
            }
        case .anthropic:
            // Resets as RFC 3339 times.
            func time(_ seconds: Double) -> String { now.addingTimeInterval(seconds).formatted(.iso8601) }
            if let remaining = decision.remainingRequests, let reset = decision.requestsReset {
                headers += [
                    ("anthropic-ratelimit-requests-remaining", "\(Int(remaining))"),
                    ("anthropic-ratelimit-requests-reset", time(reset)),
                ]
            }
            if let remaining = decision.remainingTokens, let reset = decision.tokensReset {
                headers += [
                    ("anthropic-ratelimit-tokens-remaining", "\(Int(remaining))"),
                    ("anthropic-ratelimit-tokens-reset", time(reset)),
                ]
            }
        case .gemini:
            break  // Gemini sends no such headers; its 429s carry RetryInfo.
        }
        return headers
    }
}
