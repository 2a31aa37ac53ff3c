public import AsyncHTTPClient
public import Foundation
public import JuryDomain
import NIOCore
import NIOHTTP1

/// A judge behind a provider's HTTP API, in the provider's own format.
///
/// Keys come from the environment variable the judge's config names and go only into request
/// headers: never into a message, a log line or the database.
public struct HTTPJudge: Judge {
    /// The judges of real runs, over `client`, with keys from this process's environment.
    public static func factory(client: HTTPClient) -> @Sendable (JudgeConfig) throws -> any Judge {
        { config in try HTTPJudge(config: config, client: client) }
    }

    /// The format a judge's provider speaks, with the judge's parameters and API settings.
    public static func format(for config: JudgeConfig) -> any ProviderFormat {
        switch config.provider {
        case "anthropic":
            return AnthropicFormat(
                version: config.anthropicVersion, forceLabel: config.forceLabel, parameters: config.parameters)
        case "gemini": return GeminiFormat(parameters: config.parameters)
        default: return OpenAIFormat(parameters: config.parameters)
        }
    }

    public let config: JudgeConfig
    private let client: HTTPClient
    private let format: any ProviderFormat
    private let apiKey: String?
    private let endpoint: String

    /// - Parameter environment: where the key is looked up, by the name in `config.apiKeyEnv`.
    public init(
        config: JudgeConfig, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.config = config
        self.client = client
        self.format = Self.format(for: config)
        apiKey = try Self.apiKey(for: config, environment: environment)
        endpoint = format.endpoint(baseURL: config.baseURL, model: config.model)
    }

    /// The judge's key, from the environment variable its config names; nil when it names none.
    static func apiKey(for config: JudgeConfig, environment: [String: String]) throws -> String? {
        guard let variable = config.apiKeyEnv else { return nil }
        guard let key = environment[variable], !key.isEmpty else {
            throw JudgeError(
                .unauthorized,
                "judge \(config.name) needs its API key in the environment variable \(variable), which is not set")
        }
        return key
    }

    /// What a judge would send for `request`, without sending it: the URL, the headers (the
    /// key shown as `$VARIABLE`, never its value) and the body.
    public static func preview(config: JudgeConfig, request: JudgeRequest) throws -> (
        url: String, headers: [(String, String)], body: Data
    ) {
        let format = format(for: config)
        return (
            format.endpoint(baseURL: config.baseURL, model: config.model),
            [("Content-Type", "application/json")] + format.headers(apiKey: config.apiKeyEnv.map { "$" + $0 }),
            try format.body(for: request, model: config.model)
        )
    }

    public func classify(_ request: JudgeRequest) async throws -> JudgeAnswer {
        var http = HTTPClientRequest(url: endpoint)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in format.headers(apiKey: apiKey) { http.headers.add(name: name, value: value) }
        http.body = .bytes(ByteBuffer(bytes: try format.body(for: request, model: config.model)))

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
        let body = Data(bytes.readableBytesView)
        let observation = RateLimitObservation.parse { response.headers.first(name: $0) }
        guard response.status == .ok else {
            var error = Self.statusError(
                status: Int(response.status.code), headers: response.headers, body: body, config: config,
                format: format,
                endpoint: endpoint, redact: redact)
            error.rateLimit = observation
            throw error
        }
        do {
            var answer = try format.parseAnswer(body, labels: request.labels, judge: config.name)
            answer.rateLimit = observation
            return answer
        } catch let error as JudgeError {
            // What a judge said is kept for people; a key it echoed is not.
            throw JudgeError(error.code, redact(error.message), answer: error.answer.map(redact))
        }
    }

    /// What an error status means, in the judge's words: whether to retry, hold or stop.
    static func statusError(
        status: Int, headers: HTTPHeaders, body: Data, config: JudgeConfig, format: any ProviderFormat,
        endpoint: String, redact: (String) -> String
    ) -> JudgeError {
        let detail = format.errorDetail(body)
        let said = detail.message.map { ": " + redact(String($0.prefix(300))) } ?? ""
        let retryAfter = Self.retryAfter(headers) ?? detail.retryAfter
        if detail.exhausted {
            return JudgeError(
                .quotaExhausted,
                "judge \(config.name): HTTP \(status), the account's quota or spend limit is used up\(said)")
        }
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
            return JudgeError(.rateLimited, "judge \(config.name): HTTP 429\(said)", retryAfter: retryAfter)
        case 500...599:
            return JudgeError(.server, "judge \(config.name): HTTP \(status)\(said)", retryAfter: retryAfter)
        default:
            return JudgeError(.badRequest, "judge \(config.name): HTTP \(status)\(said)")
        }
    }

    /// Retry-After in seconds: `retry-after-ms`, then `retry-after` as seconds or an HTTP date.
    static func retryAfter(_ headers: HTTPHeaders) -> Double? {
        if let milliseconds = headers.first(name: "retry-after-ms").flatMap(Double.init) {
            return milliseconds / 1000
        }
        guard let value = headers.first(name: "retry-after") else { return nil }
        if let seconds = Double(value) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// Never let the key reach a message, whatever a server or library echoes.
    private func redact(_ text: String) -> String {
        Self.redact(text, key: apiKey)
    }

    static func redact(_ text: String, key: String?) -> String {
        guard let key, !key.isEmpty else { return text }
        return text.replacingOccurrences(of: key, with: "[redacted]")
    }
}
