import Foundation
import HTTPTypes
import Hummingbird
import JuryDomain
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// A real HTTP server speaking the judges' APIs (OpenAI Chat Completions, Anthropic Messages,
/// Gemini generateContent), for demos, tests and benchmarks.
///
/// Each model in the config is a judge with its own seeded, deterministic behaviour: the same
/// request text always gets the same label from the same judge. Errors are drawn per attempt
/// (the n-th time a judge sees a text), so retries can succeed.
public final class MockJudgeServer: Sendable {
    private let behaviours: [String: MockJudgeConfig.Behaviour]
    private let logger: Logger
    private let seen = Mutex([UInt64: Int]())
    private let requests = Mutex(0)
    private let limiter = MockLimiter()
    /// When the first request came: outages are timed from it.
    private let firstRequestAt = Mutex<ContinuousClock.Instant?>(nil)
    private let batches: MockBatches
    private let messageBatches: MockMessageBatches
    private let geminiBatches: MockGeminiBatches
    /// How late each call of a batch API answers.
    private let batchLatencyMs: Double

    public init(config: MockJudgeConfig, logger: Logger) {
        self.behaviours = Dictionary(config.judges.map { ($0.model, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
        self.batches = MockBatches(settings: config.batches ?? .init())
        self.messageBatches = MockMessageBatches(settings: config.batches ?? .init())
        self.geminiBatches = MockGeminiBatches(settings: config.batches ?? .init())
        self.batchLatencyMs = config.batches?.latencyMs ?? 0
    }

    /// Requests served so far.
    public var requestCount: Int { requests.withLock { $0 } }

    /// Batches created through the batch API, and the requests answered in them.
    public var batchCounts: (batches: Int, requests: Int) {
        let all = [batches.counts, messageBatches.counts, geminiBatches.counts]
        return (all.map(\.batches).reduce(0, +), all.map(\.requests).reduce(0, +))
    }

    /// Requests answered 429 because a model's enforced limit was reached.
    public var limitedCount: Int { limiter.rateLimited }

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
        if batchLatencyMs > 0 { router.add(middleware: BatchAPILatency(latency: .milliseconds(batchLatencyMs))) }
        router.post("v1/chat/completions") { request, _ in
            await self.respond(.openAI, to: request, pathModel: nil)
        }
        router.post("v1/messages") { request, _ in
            await self.respond(.anthropic, to: request, pathModel: nil)
        }
        // Gemini names the model in the path: /v1beta/models/MODEL:generateContent, and
        // MODEL:batchGenerateContent for a batch.
        router.post("v1beta/models/:call") { request, context in
            let call = context.parameters.get("call") ?? ""
            if call.hasSuffix(":batchGenerateContent") {
                let body = await self.body(of: request, upTo: 1 << 20)
                let (status, value) = self.geminiBatches.create(
                    model: String(call.dropLast(":batchGenerateContent".count)), body: body,
                    credential: self.googleCredential(request))
                return self.json(status, value)
            }
            let model = call.hasSuffix(":generateContent") ? String(call.dropLast(16)) : nil
            return await self.respond(.gemini, to: request, pathModel: model)
        }
        addBatchRoutes(router)
        router.get("health") { _, _ in "ok" }
        // What a benchmark reads: requests served (online), those refused by the enforced limits,
        // and batches created with the requests answered in them.
        router.get("stats") { _, _ in
            let (batches, batchRequests) = self.batchCounts
            return
                #"{"requests": \#(self.requestCount), "rate_limited": \#(self.limitedCount), "batches": \#(batches), "batch_requests": \#(batchRequests)}"#
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "jury-mock-judge", backlog: 1024),
            onServerRunning: { channel in onStart(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    private func googleCredential(_ request: Request) -> String? {
        MockWireFormat.gemini.credential(
            authorization: request.headers[.authorization], apiKey: nil,
            googleKey: request.headers[HTTPField.Name("x-goog-api-key")!])
    }

    /// Gemini's Batch Mode (`MockGeminiBatches`): resumable uploads, batches, responses files.
    private func addGeminiBatchRoutes(_ router: Router<BasicRequestContext>) {
        let respond: MockGeminiBatches.Responder = { body, credential, model in
            let reply = await self.reply(.gemini, body: body, credential: credential, pathModel: model, inBatch: true)
            return (reply.status, reply.body)
        }
        router.post("upload/v1beta/files") { request, _ in
            let body = await self.body(of: request, upTo: 256 << 20)
            func header(_ name: String) -> String? { request.headers[HTTPField.Name(name)!] }
            let reply: MockGeminiBatches.UploadReply
            if let upload = request.uri.queryParameters.get("upload_id") {
                reply = self.geminiBatches.continueUpload(
                    String(upload), body: body, command: header("x-goog-upload-command"),
                    offset: header("x-goog-upload-offset"))
            } else {
                reply = self.geminiBatches.startUpload(
                    body: body, command: header("x-goog-upload-command"),
                    protocol: header("x-goog-upload-protocol"), length: header("x-goog-upload-header-content-length"),
                    host: request.head.authority ?? "127.0.0.1")
            }
            var response =
                reply.body.map { self.json(reply.status, $0) }
                ?? Response(status: .init(code: reply.status), body: .init(byteBuffer: ByteBuffer()))
            for (name, value) in reply.headers { response.headers[HTTPField.Name(name)!] = value }
            return response
        }
        router.get("v1beta/files/:call") { _, context in
            let call = context.parameters.get("call") ?? ""
            guard call.hasSuffix(":download"),
                let content = self.geminiBatches.content(of: "files/" + call.dropLast(":download".count))
            else {
                let (status, body) = MockGeminiBatches.error(.notFound, "File not found.")
                return self.json(status, body)
            }
            return self.file(content, type: "application/octet-stream")
        }
        router.get("v1beta/batches") { request, _ in
            let size = request.uri.queryParameters.get("pageSize").flatMap { Int($0) } ?? 50
            let (status, value) = self.geminiBatches.list(
                pageSize: size, pageToken: request.uri.queryParameters.get("pageToken").map { String($0) })
            return self.json(status, value)
        }
        router.get("v1beta/batches/:id") { _, context in
            let (status, value) = await self.geminiBatches.retrieve(
                "batches/" + (context.parameters.get("id") ?? ""), respond: respond)
            return self.json(status, value)
        }
        // `:cancel` is part of the last path segment, as Google's custom methods are.
        router.post("v1beta/batches/:id") { _, context in
            let call = context.parameters.get("id") ?? ""
            guard call.hasSuffix(":cancel") else {
                let (status, body) = MockGeminiBatches.error(.notFound, "Not found.")
                return self.json(status, body)
            }
            let (status, value) = self.geminiBatches.cancel("batches/" + call.dropLast(":cancel".count))
            return self.json(status, value)
        }
    }

    /// OpenAI's Batch API (`MockBatches`) and Anthropic's Message Batches (`MockMessageBatches`).
    private func addBatchRoutes(_ router: Router<BasicRequestContext>) {
        addGeminiBatchRoutes(router)
        let respond: MockBatches.Responder = { body, credential, _ in
            let reply = await self.reply(.openAI, body: body, credential: credential, pathModel: nil, inBatch: true)
            return (reply.status, reply.body)
        }
        let respondAsAnthropic: MockBatches.Responder = { body, credential, version in
            let reply = await self.reply(
                .anthropic, body: body, credential: credential, pathModel: nil, version: version, inBatch: true)
            return (reply.status, reply.body)
        }
        let versionHeader = HTTPField.Name("anthropic-version")!
        @Sendable func anthropicCredential(_ request: Request) -> String? {
            MockWireFormat.anthropic.credential(
                authorization: request.headers[.authorization], apiKey: request.headers[HTTPField.Name("x-api-key")!],
                googleKey: nil)
        }
        router.post("v1/messages/batches") { request, _ in
            let body = await self.body(of: request, upTo: 256 << 20)
            let (status, value) = self.messageBatches.create(
                body: body, credential: anthropicCredential(request), version: request.headers[versionHeader],
                host: request.head.authority ?? "127.0.0.1")
            return self.json(status, value)
        }
        router.get("v1/messages/batches") { request, _ in
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 20
            let (status, value) = self.messageBatches.list(
                limit: limit, afterID: request.uri.queryParameters.get("after_id").map { String($0) })
            return self.json(status, value)
        }
        router.get("v1/messages/batches/:id") { _, context in
            let (status, value) = await self.messageBatches.retrieve(
                context.parameters.get("id") ?? "", respond: respondAsAnthropic)
            return self.json(status, value)
        }
        router.post("v1/messages/batches/:id/cancel") { _, context in
            let (status, value) = self.messageBatches.cancel(context.parameters.get("id") ?? "")
            return self.json(status, value)
        }
        router.get("v1/messages/batches/:id/results") { _, context in
            guard let results = self.messageBatches.results(of: context.parameters.get("id") ?? "") else {
                return self.json(404, ["type": "error", "error": ["type": "not_found_error"]] as JSONValue)
            }
            return self.file(results, type: "application/binary")
        }
        @Sendable func credential(_ request: Request) -> String? {
            MockWireFormat.openAI.credential(
                authorization: request.headers[.authorization], apiKey: nil, googleKey: nil)
        }
        router.post("v1/files") { request, _ in
            let body = await self.body(of: request, upTo: 256 << 20)
            let (status, value) = self.batches.upload(body: body, contentType: request.headers[.contentType])
            return self.json(status, value)
        }
        router.get("v1/files/:id/content") { _, context in
            guard let content = self.batches.content(of: context.parameters.get("id") ?? "") else {
                return self.json(404, ["error": ["message": "No such File object"]] as JSONValue)
            }
            return self.file(content, type: "application/jsonl")
        }
        router.post("v1/batches") { request, _ in
            let body = await self.body(of: request, upTo: 1 << 20)
            let (status, value) = self.batches.create(body: body, credential: credential(request))
            return self.json(status, value)
        }
        router.get("v1/batches") { request, _ in
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 20
            let (status, value) = self.batches.list(
                limit: limit, after: request.uri.queryParameters.get("after").map { String($0) })
            return self.json(status, value)
        }
        router.get("v1/batches/:id") { _, context in
            let (status, value) = await self.batches.retrieve(context.parameters.get("id") ?? "", respond: respond)
            return self.json(status, value)
        }
        router.post("v1/batches/:id/cancel") { _, context in
            let (status, value) = self.batches.cancel(context.parameters.get("id") ?? "")
            return self.json(status, value)
        }
    }

    private func respond(_ format: MockWireFormat, to request: Request, pathModel: String?) async -> Response {
        let body = await self.body(of: request, upTo: 4 << 20)
        let credential = format.credential(
            authorization: request.headers[.authorization], apiKey: request.headers[HTTPField.Name("x-api-key")!],
            googleKey: request.headers[HTTPField.Name("x-goog-api-key")!])
        return await respond(
            format, body: body, credential: credential, pathModel: pathModel,
            version: request.headers[HTTPField.Name("anthropic-version")!])
    }

    func respond(
        _ format: MockWireFormat, body: Data, credential: String?, pathModel: String?, version: String? = nil
    ) async -> Response {
        let reply = await reply(format, body: body, credential: credential, pathModel: pathModel, version: version)
        if let after = reply.after { return halfBody(reply.body, then: after) }
        var response = json(reply.status, reply.body)
        for (name, value) in reply.headers { response.headers[HTTPField.Name(name)!] = value }
        return response
    }

    /// What the mock answers a call: online, or as one request of a batch (`inBatch`: no
    /// latency, no half bodies, as a batch's results file holds whole answers).
    func reply(
        _ format: MockWireFormat, body: Data, credential: String?, pathModel: String?, version: String? = nil,
        inBatch: Bool = false
    ) async -> MockReply {
        requests.withLock { $0 += 1 }
        let first = firstRequestAt.withLock { first in
            if first == nil { first = .now }
            return first!
        }
        func error(_ kind: MockWireFormat.ErrorKind, status: Int? = nil, _ message: String, retryAfter: Double? = nil)
            -> MockReply
        {
            let (code, body) = format.error(kind, status: status, message: message, retryAfter: retryAfter)
            return MockReply(status: code, body: body)
        }
        let parsed: MockWireFormat.Call?
        do {
            parsed = try format.call(from: body, pathModel: pathModel, version: version)
        } catch let refusal as MockWireFormat.Refusal {
            return error(.badRequest, refusal.message)
        } catch {
            parsed = nil
        }
        guard let call = parsed else {
            return error(
                .badRequest, "the body is not a request the mock reads, or does not force the label as an enum")
        }
        guard let behaviour = behaviours[call.model] else {
            return error(.notFound, "The model `\(call.model)` does not exist")
        }
        if let key = behaviour.apiKey, credential != key {
            return error(.unauthorized, "Incorrect API key provided")
        }
        let tokens = Double((call.user.utf8.count + 3) / 4 + 16) + Double(behaviour.thinkingTokens ?? 0)
        let limit = limiter.admit(
            model: call.model, requestsPerMinute: behaviour.requestsPerMinute,
            tokensPerMinute: behaviour.tokensPerMinute, tokens: tokens)
        if let limit, !limit.allowed {
            var reply = error(.rateLimited, "Rate limit reached for \(call.model)", retryAfter: limit.retryAfter)
            reply.headers =
                [
                    ("retry-after", String(Int(limit.retryAfter.rounded(.up)))),
                    ("retry-after-ms", String(Int((limit.retryAfter * 1000).rounded(.up)))),
                ] + format.rateLimitHeaders(limit)
            return reply
        }
        let faults = behaviour.faults ?? .init()
        if faults.exhausted == true {
            return error(.exhausted, "Your credit balance is too low, or the daily quota is used up")
        }
        let text = call.user
        let labels = call.labels
        let textHash = Self.hash(text, seed: behaviour.seed)
        let attempt = seen.withLock { seen in
            if seen.count > 2_000_000 { seen.removeAll() }
            defer { seen[textHash, default: 0] += 1 }
            return seen[textHash, default: 0]
        }
        let draw = { (salt: UInt64) in
            Self.uniform(textHash &+ salt &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(attempt) &* 0xBF58_476D_1CE4_E5B9)
        }

        if !inBatch, let latency = behaviour.latencyMs, latency.median > 0 {
            // Log-normal: the given median, and p95 at 1.645 standard deviations.
            let sigma = max(0, log(max(latency.p95, latency.median) / latency.median) / 1.645)
            let normal = Self.normal(draw(1), draw(2))
            try? await Task.sleep(for: .milliseconds(latency.median * exp(sigma * normal)))
        }
        if let outage = faults.outageSeconds, ContinuousClock.now - first < .seconds(outage) {
            let status = faults.outageStatus ?? 503
            return error(
                status == 529 ? .overloaded : .server, status: status, "The service is temporarily unavailable")
        }
        if draw(3) < (behaviour.rateLimitRate ?? 0) {
            let seconds = faults.retryAfter ?? "1"
            var reply = error(.rateLimited, "Rate limit reached for \(call.model)", retryAfter: Double(seconds))
            reply.headers = [("retry-after", seconds)]
            return reply
        }
        if draw(4) < (behaviour.errorRate ?? 0) {
            let status = faults.errorStatus ?? 500
            return error(
                status == 529 ? .overloaded : .server, status: status,
                "The server had an error while processing your request")
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
        if steady(12) < (faults.badRequestRate ?? 0) {
            return error(.badRequest, "prompt is too long: 250000 tokens > 200000 maximum")
        }
        var replacement = faults.content
        if draw(8) < (faults.garbageRate ?? 0) { replacement = "I think this request is fine, probably." }
        let answer = format.answer(
            model: call.model, label: label, rationale: faults.rationale ?? "mock judge \(call.model) read the request",
            text: replacement, inputTokens: faults.usageTokens ?? Int64((text.utf8.count + 3) / 4),
            thinkingTokens: behaviour.thinkingTokens ?? 0, refuse: draw(11) < (faults.refusalRate ?? 0),
            byTool: call.byTool)
        if !inBatch, draw(9) < (faults.stallRate ?? 0) {
            return MockReply(status: 200, body: answer, after: .stall(seconds: faults.stallSeconds ?? 600))
        }
        if !inBatch, draw(10) < (faults.dropRate ?? 0) {
            return MockReply(status: 200, body: answer, after: .drop)
        }
        return MockReply(status: 200, body: answer, headers: limit.map { format.rateLimitHeaders($0) } ?? [])
    }

    /// A reply before it is written: its status, body and headers, and for a 200 that breaks
    /// off, how.
    struct MockReply {
        var status: Int
        var body: JSONValue
        var headers: [(String, String)] = []
        var after: AfterHalf?
    }

    enum AfterHalf {
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

    private func json(_ status: Int, _ value: some Encodable) -> Response {
        file((try? JSONEncoder().encode(value)) ?? Data(), type: "application/json", status: status)
    }

    /// `data` as the answer, of `type`.
    private func file(_ data: Data, type: String, status: Int = 200) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    /// A request's body, up to `limit` bytes (empty past it, or when it cannot be read: the
    /// mock then answers as for a body that is not what it expects).
    private func body(of request: Request, upTo limit: Int) async -> Data {
        (try? await request.body.collect(upTo: limit)).map { Data($0.readableBytesView) } ?? Data()
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

/// Every call of a batch API answers late (`batches.latency_ms`), as a slow provider would: a
/// worker killed while it uploads, polls or downloads is then killed mid-step.
struct BatchAPILatency<Context: RequestContext>: RouterMiddleware {
    let latency: Duration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let path = request.uri.path
        if path.contains("/batches") || path.contains("/files") || path.hasSuffix(":batchGenerateContent") {
            try await Task.sleep(for: latency)
        }
        return try await next(request, context)
    }
}
