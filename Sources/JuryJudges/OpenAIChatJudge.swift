public import AsyncHTTPClient
public import Foundation
public import JuryDomain
import NIOCore
import NIOHTTP1

/// A judge behind the OpenAI Chat Completions API, which OpenAI, Anthropic, Gemini and any
/// OpenAI-compatible server (vLLM, Ollama, Jury's mock judge) all serve.
///
/// The label is forced through `response_format` with a JSON schema whose `label` is an enum
/// of the taxonomy, then checked again here: an answer outside the taxonomy is an error.
public struct OpenAIChatJudge: Judge {
    /// The judges of real runs, over `client`, with keys from this process's environment.
    public static func factory(client: HTTPClient) -> @Sendable (JudgeConfig) throws -> any Judge {
        { config in try OpenAIChatJudge(config: config, client: client) }
    }

    public let config: JudgeConfig
    private let client: HTTPClient
    private let apiKey: String?
    private let endpoint: String

    /// - Parameter environment: where the key is looked up, by the name in `config.apiKeyEnv`.
    public init(
        config: JudgeConfig, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.config = config
        self.client = client
        if let variable = config.apiKeyEnv {
            guard let key = environment[variable], !key.isEmpty else {
                throw JudgeError(
                    .unauthorized,
                    "judge \(config.name) needs its API key in the environment variable \(variable), which is not set")
            }
            apiKey = key
        } else {
            apiKey = nil
        }
        let base = config.baseURL.hasSuffix("/") ? String(config.baseURL.dropLast()) : config.baseURL
        endpoint = base + "/chat/completions"
    }

    public func classify(_ request: JudgeRequest) async throws -> JudgeAnswer {
        var http = HTTPClientRequest(url: endpoint)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        if let apiKey {
            http.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        }
        http.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body(for: request))))

        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(http, timeout: .milliseconds(Int64(config.timeoutSeconds * 1000)))
            bytes = try await response.body.collect(upTo: 4 << 20)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw JudgeError(.timeout, "judge \(config.name): no answer within \(config.timeoutSeconds)s")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw JudgeError(.network, "judge \(config.name): \(redact(String(describing: error)))")
        }
        guard response.status == .ok else {
            throw statusError(response, body: bytes)
        }
        return try parse(bytes, labels: request.labels)
    }

    private func body(for request: JudgeRequest) -> ChatRequest {
        ChatRequest(
            model: config.model,
            messages: [.init(role: "system", content: request.system), .init(role: "user", content: request.user)],
            temperature: 0,
            responseFormat: .init(
                type: "json_schema",
                jsonSchema: .init(
                    name: "verdict", strict: true,
                    schema: .init(
                        type: "object",
                        properties: .init(
                            label: .init(type: "string", enum: request.labels),
                            rationale: .init(type: "string", enum: nil)),
                        required: ["label", "rationale"],
                        additionalProperties: false))))
    }

    private func statusError(_ response: HTTPClientResponse, body: ByteBuffer) -> JudgeError {
        let status = response.status.code
        let detail = (try? JSONDecoder().decode(ErrorEnvelope.self, from: Data(body.readableBytesView)))?.error.message
        let said = detail.map { ": " + redact(String($0.prefix(300))) } ?? ""
        switch status {
        case 401, 403:
            // The provider's message can quote part of the key: leave it out.
            let variable = config.apiKeyEnv.map { "the key in \($0)" } ?? "an API key (set api_key_env)"
            return JudgeError(.unauthorized, "judge \(config.name): HTTP \(status); check \(variable)")
        case 404:
            return JudgeError(
                .notFound, "judge \(config.name): HTTP 404 for model \(config.model) at \(endpoint)\(said)")
        case 408:
            return JudgeError(.timeout, "judge \(config.name): HTTP 408\(said)")
        case 429:
            return JudgeError(
                .rateLimited, "judge \(config.name): HTTP 429\(said)", retryAfter: retryAfter(response.headers))
        case 500...599:
            return JudgeError(
                .server, "judge \(config.name): HTTP \(status)\(said)", retryAfter: retryAfter(response.headers))
        default:
            return JudgeError(.badRequest, "judge \(config.name): HTTP \(status)\(said)")
        }
    }

    private func parse(_ bytes: ByteBuffer, labels: [String]) throws -> JudgeAnswer {
        try Self.parseAnswer(Data(bytes.readableBytesView), labels: labels, judge: config.name)
    }

    /// Reads a Chat Completions response body: the answer must be JSON with one label of the
    /// taxonomy. Everything in it is untrusted: a repeated key, a label outside the taxonomy,
    /// or a body that is not a completion is an error naming the judge; token counts that make
    /// no sense are clamped or left out.
    public static func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        if let problem = JSONStrictness.problem(in: body) { throw fail("the response is not valid JSON: \(problem)") }
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

    private func retryAfter(_ headers: HTTPHeaders) -> Double? {
        if let milliseconds = headers.first(name: "retry-after-ms").flatMap(Double.init) {
            return milliseconds / 1000
        }
        guard let value = headers.first(name: "retry-after") else { return nil }
        if let seconds = Double(value) { return seconds }
        // An HTTP date: wait until then.
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// Never let the key reach a message, whatever a server or library echoes.
    private func redact(_ text: String) -> String {
        guard let apiKey, !apiKey.isEmpty else { return text }
        return text.replacingOccurrences(of: apiKey, with: "[redacted]")
    }
}

// MARK: - Wire format

private struct ChatRequest: Encodable {
    struct Message: Codable {
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
        let schema: Schema
    }
    struct Schema: Encodable {
        let type: String
        let properties: Properties
        let required: [String]
        let additionalProperties: Bool
    }
    struct Properties: Encodable {
        let label: Property
        let rationale: Property
    }
    struct Property: Encodable {
        let type: String
        let `enum`: [String]?
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

/// A token count as a provider reports it: any JSON number, kept within 0...Int64.max; anything
/// else reads as missing rather than failing the whole answer.
private struct TokenCount: Decodable {
    let count: Int?

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let whole = try? container.decode(Int64.self) {
            count = Int(max(0, whole))
        } else if let number = try? container.decode(Double.self), number.isFinite {
            count = number >= 9.2e18 ? Int.max : Int(max(0, number.rounded()))
        } else {
            count = nil
        }
    }
}

private struct ErrorEnvelope: Decodable {
    struct Detail: Decodable {
        let message: String?
    }
    let error: Detail
}
