import Foundation
import Hummingbird
import JuryDomain
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// A real HTTP server speaking the OpenAI Chat Completions format, for demos, tests and benchmarks.
///
/// Each model in the config is a judge with its own seeded, deterministic behaviour: the same
/// request text always gets the same label from the same judge. Errors are drawn per attempt
/// (the n-th time a judge sees a text), so retries can succeed.
public final class MockJudgeServer: Sendable {
    private let behaviours: [String: MockJudgeConfig.Behaviour]
    private let logger: Logger
    private let seen = Mutex([UInt64: Int]())
    private let requests = Mutex(0)
    /// When the first request came: outages are timed from it.
    private let firstRequestAt = Mutex<ContinuousClock.Instant?>(nil)

    public init(config: MockJudgeConfig, logger: Logger) {
        self.behaviours = Dictionary(config.judges.map { ($0.model, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
    }

    /// Requests served so far.
    public var requestCount: Int { requests.withLock { $0 } }

    /// Serves until the task is cancelled; `onStart` receives the port (useful with port 0).
    public func run(host: String = "127.0.0.1", port: Int, onStart: @escaping @Sendable (Int) -> Void = { _ in })
        async throws
    {
        let service = application(host: host, port: port, onStart: onStart)
        try await ServiceGroup(services: [service], logger: logger).run()
    }

    /// The server as a service: in a `ServiceGroup`, graceful shutdown stops it accepting and
    /// lets the requests under way finish.
    public func application(
        host: String = "127.0.0.1", port: Int, onStart: @escaping @Sendable (Int) -> Void = { _ in }
    ) -> some Service {
        let router = Router()
        router.post("v1/chat/completions") { request, _ in
            let body = try await request.body.collect(upTo: 4 << 20)
            return await self.respond(to: Data(body.readableBytesView), authorization: request.headers[.authorization])
        }
        router.get("health") { _, _ in "ok" }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "jury-mock-judge", backlog: 1024),
            onServerRunning: { channel in onStart(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    func respond(to body: Data, authorization: String?) async -> Response {
        requests.withLock { $0 += 1 }
        let first = firstRequestAt.withLock { first in
            if first == nil { first = .now }
            return first!
        }
        guard let request = try? JSONDecoder().decode(ChatRequest.self, from: body) else {
            return error(400, "the body is not a chat completions request", type: "invalid_request_error")
        }
        guard let behaviour = behaviours[request.model] else {
            return error(404, "The model `\(request.model)` does not exist", type: "invalid_request_error")
        }
        if let key = behaviour.apiKey, authorization != "Bearer \(key)" {
            return error(401, "Incorrect API key provided", type: "invalid_request_error")
        }
        let text = request.messages.last(where: { $0.role == "user" })?.content ?? ""
        let labels = request.responseFormat?.jsonSchema?.schema?.properties?.label?.enum ?? []
        guard !labels.isEmpty else {
            return error(400, "response_format must give the labels as an enum", type: "invalid_request_error")
        }
        let textHash = Self.hash(text, seed: behaviour.seed)
        let attempt = seen.withLock { seen in
            if seen.count > 2_000_000 { seen.removeAll() }
            defer { seen[textHash, default: 0] += 1 }
            return seen[textHash, default: 0]
        }
        let draw = { (salt: UInt64) in
            Self.uniform(textHash &+ salt &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(attempt) &* 0xBF58_476D_1CE4_E5B9)
        }

        if let latency = behaviour.latencyMs, latency.median > 0 {
            // Log-normal: the given median, and p95 at 1.645 standard deviations.
            let sigma = max(0, log(max(latency.p95, latency.median) / latency.median) / 1.645)
            let normal = Self.normal(draw(1), draw(2))
            try? await Task.sleep(for: .milliseconds(latency.median * exp(sigma * normal)))
        }
        let faults = behaviour.faults ?? .init()
        if let outage = faults.outageSeconds, ContinuousClock.now - first < .seconds(outage) {
            return error(faults.outageStatus ?? 503, "The service is temporarily unavailable", type: "server_error")
        }
        if draw(3) < (behaviour.rateLimitRate ?? 0) {
            var response = error(429, "Rate limit reached for \(request.model)", type: "rate_limit_error")
            response.headers[.retryAfter] = faults.retryAfter ?? "1"
            return response
        }
        if draw(4) < (behaviour.errorRate ?? 0) {
            return error(
                faults.errorStatus ?? 500, "The server had an error while processing your request", type: "server_error"
            )
        }

        // The label depends on the text only (not the attempt): a judge is consistent.
        let steady = { (salt: UInt64) in Self.uniform(textHash &+ salt &* 0x9E37_79B9_7F4A_7C15) }
        var label = MockClassifier.classify(text, labels: labels, fallback: labels[0])
        if steady(5) >= behaviour.accuracy {
            let others = labels.filter { $0 != label }
            if let bias = behaviour.bias, others.contains(bias.label), steady(6) < bias.weight {
                label = bias.label
            } else if !others.isEmpty {
                label = others[Int(steady(7) * Double(others.count)) % others.count]
            }
        }
        var content = Self.answerText(
            label: label, rationale: faults.rationale ?? "mock judge \(request.model) read the request")
        if let fixed = faults.content { content = fixed }
        if draw(8) < (faults.garbageRate ?? 0) { content = "I think this request is fine, probably." }
        let answer = ChatResponse(
            id: "mock-\(textHash)", object: "chat.completion", model: request.model + "-mock-2026-11",
            choices: [.init(index: 0, message: .init(role: "assistant", content: content), finishReason: "stop")],
            usage: .init(
                promptTokens: faults.usageTokens ?? Int64((text.utf8.count + 3) / 4), completionTokens: 16,
                promptTokensDetails: .init(cachedTokens: 0)))
        if draw(9) < (faults.stallRate ?? 0) {
            return halfBody(answer, then: .stall(seconds: faults.stallSeconds ?? 600))
        }
        if draw(10) < (faults.dropRate ?? 0) {
            return halfBody(answer, then: .drop)
        }
        return json(200, answer)
    }

    /// The answer's text: JSON with the label and a rationale, escaped as JSON escapes it.
    static func answerText(label: String, rationale: String) -> String {
        let data = (try? JSONEncoder().encode(["label": label, "rationale": rationale])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private enum AfterHalf {
        case stall(seconds: Double)
        case drop
    }

    private struct DroppedConnection: Error {}

    /// A 200 whose body stops halfway: then nothing for a while, or a dropped connection.
    private func halfBody(_ value: some Encodable, then after: AfterHalf) -> Response {
        let data = (try? JSONEncoder().encode(value)) ?? Data()
        let half = ByteBuffer(bytes: data.prefix(data.count / 2))
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(contentLength: data.count) { writer in
                try await writer.write(half)
                switch after {
                case .stall(let seconds):
                    try await Task.sleep(for: .seconds(seconds))
                case .drop:
                    break
                }
                throw DroppedConnection()
            })
    }

    private func error(_ status: Int, _ message: String, type: String) -> Response {
        json(status, ErrorEnvelope(error: .init(message: message, type: type)))
    }

    private func json(_ status: Int, _ value: some Encodable) -> Response {
        let data = (try? JSONEncoder().encode(value)) ?? Data()
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: - Deterministic randomness

    static func hash(_ text: String, seed: UInt64) -> UInt64 {
        var value: UInt64 = 0xCBF2_9CE4_8422_2325 ^ (seed &* 0x100_0000_01B3)
        for byte in text.utf8 {
            value = (value ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        return value
    }

    /// A number in [0, 1) from a 64-bit value (splitmix64 finaliser).
    static func uniform(_ input: UInt64) -> Double {
        var z = input &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        return Double(z >> 11) / Double(1 << 53)
    }

    /// A standard normal value from two uniforms (Box–Muller).
    static func normal(_ u1: Double, _ u2: Double) -> Double {
        sqrt(-2 * log(max(u1, 1e-12))) * cos(2 * .pi * u2)
    }
}

// MARK: - Wire format (the subset the mock reads and writes)

private struct ChatRequest: Decodable {
    struct Message: Decodable {
        let role: String
        let content: String
    }
    struct ResponseFormat: Decodable {
        let jsonSchema: JSONSchema?
        enum CodingKeys: String, CodingKey { case jsonSchema = "json_schema" }
    }
    struct JSONSchema: Decodable {
        let schema: Schema?
    }
    struct Schema: Decodable {
        let properties: Properties?
    }
    struct Properties: Decodable {
        let label: Property?
    }
    struct Property: Decodable {
        let `enum`: [String]?
    }
    let model: String
    let messages: [Message]
    let responseFormat: ResponseFormat?
    enum CodingKeys: String, CodingKey {
        case model, messages
        case responseFormat = "response_format"
    }
}

private struct ChatResponse: Encodable {
    struct Choice: Encodable {
        let index: Int
        let message: Message
        let finishReason: String
        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }
    }
    struct Message: Encodable {
        let role: String
        let content: String
    }
    struct Usage: Encodable {
        struct Details: Encodable {
            let cachedTokens: Int64
            enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
        }
        let promptTokens: Int64
        let completionTokens: Int64
        let promptTokensDetails: Details
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case promptTokensDetails = "prompt_tokens_details"
        }
    }
    let id: String
    let object: String
    let model: String
    let choices: [Choice]
    let usage: Usage
}

private struct ErrorEnvelope: Encodable {
    struct Detail: Encodable {
        let message: String
        let type: String
    }
    let error: Detail
}
