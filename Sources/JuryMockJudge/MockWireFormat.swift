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
    }

    /// The kinds of error the mock gives, each written in the provider's own words.
    enum ErrorKind {
        case badRequest, unauthorized, notFound, rateLimited, server, overloaded, exhausted
    }

    /// Reads a request body; `pathModel` is the model a Gemini URL names. Nil: not a valid call.
    func call(from body: Data, pathModel: String?) -> Call? {
        guard let request = try? JSONValue.parse(body) else { return nil }
        let model: String?
        let user: String?
        var labelProperty: JSONValue?
        switch self {
        case .openAI:
            model = request["model"]?.text
            guard case .array(let messages)? = request["messages"] else { return nil }
            user = messages.last { $0["role"]?.text == "user" }?["content"]?.text
            labelProperty = request["response_format", "json_schema", "schema", "properties", "label"]
        case .anthropic:
            model = request["model"]?.text
            guard case .array(let messages)? = request["messages"], case .array(let tools)? = request["tools"] else {
                return nil
            }
            user = messages.last { $0["role"]?.text == "user" }?["content"]?.text
            labelProperty = tools.first?["input_schema", "properties", "label"]
        case .gemini:
            model = pathModel
            guard case .array(let contents)? = request["contents"], case .array(let parts)? = contents.last?["parts"]
            else { return nil }
            user = parts.compactMap { $0["text"]?.text }.joined()
            labelProperty = request["generationConfig", "responseSchema", "properties", "label"]
        }
        guard let model, let user, case .array(let values)? = labelProperty?["enum"] else { return nil }
        let labels = values.compactMap(\.text)
        return labels.isEmpty ? nil : Call(model: model, user: user, labels: labels)
    }

    /// The credential a request carries, from the header this provider uses.
    func credential(authorization: String?, apiKey: String?, googleKey: String?) -> String? {
        switch self {
        case .openAI: return authorization.map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
        case .anthropic: return apiKey
        case .gemini: return googleKey
        }
    }

    /// A successful answer: the label and rationale, or `text` in their place (garbage, a fixed
    /// answer). Token counts as the provider reports them.
    func answer(model: String, label: String, rationale: String, text: String?, inputTokens: Int64) -> JSONValue {
        let version = JSONValue.string(model + "-mock-2026-11")
        let json = text ?? JSONValue.object(["label": .string(label), "rationale": .string(rationale)]).jsonText
        switch self {
        case .openAI:
            return .object([
                "id": .string("chatcmpl-mock"), "object": .string("chat.completion"), "model": version,
                "choices": .array([
                    .object([
                        "index": .integer(0), "finish_reason": .string("stop"),
                        "message": .object(["role": .string("assistant"), "content": .string(json)]),
                    ])
                ]),
                "usage": .object([
                    "prompt_tokens": .integer(inputTokens), "completion_tokens": .integer(16),
                    "prompt_tokens_details": .object(["cached_tokens": .integer(0)]),
                ]),
            ])
        case .anthropic:
            // The forced tool call, or a text block when the answer is not the tool's input.
            let block: JSONValue =
                text.map { .object(["type": .string("text"), "text": .string($0)]) }
                ?? .object([
                    "type": .string("tool_use"), "id": .string("toolu_mock"), "name": .string("record_label"),
                    "input": .object(["label": .string(label), "rationale": .string(rationale)]),
                ])
            return .object([
                "id": .string("msg_mock"), "type": .string("message"), "role": .string("assistant"), "model": version,
                "content": .array([block]), "stop_reason": .string(text == nil ? "tool_use" : "end_turn"),
                "usage": .object([
                    "input_tokens": .integer(inputTokens), "output_tokens": .integer(16),
                    "cache_read_input_tokens": .integer(0), "cache_creation_input_tokens": .integer(0),
                ]),
            ])
        case .gemini:
            return .object([
                "candidates": .array([
                    .object([
                        "content": .object([
                            "role": .string("model"), "parts": .array([.object(["text": .string(json)])]),
                        ]),
                        "finishReason": .string("STOP"),
                    ])
                ]),
                "usageMetadata": .object([
                    "promptTokenCount": .integer(inputTokens), "candidatesTokenCount": .integer(16),
                    "totalTokenCount": .integer(inputTokens + 16), "cachedContentTokenCount": .integer(0),
                ]),
                "modelVersion": version,
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
