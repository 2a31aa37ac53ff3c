public import AsyncHTTPClient
import Foundation
public import JuryDomain
import JuryJudges
public import JuryMockJudge
public import JuryRuntime
public import JuryStore
import NIOCore
public import ServiceLifecycle
import Testing

/// Runs the mock judge server on a free port and hands `body` its base URL.
public func withMockJudges<T: Sendable>(
    _ behaviours: [MockJudgeConfig.Behaviour], batches: MockJudgeConfig.Batches? = nil,
    _ body: @Sendable (String, MockJudgeServer) async throws -> T
) async throws -> T {
    let server = MockJudgeServer(
        config: MockJudgeConfig(judges: behaviours, batches: batches), logger: TestDatabase.logger)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    // The server is left running until the test process ends. Cancelling it while clients still
    // connect (calls cancelled by a stopping worker, stalled bodies) can trap in NIO: a connection
    // accepted during shutdown deinits its NIOAsyncWriter unfinished ("Deinited NIOAsyncWriter
    // without calling finish()"), which crashed the whole test process.
    Task { try await server.run(port: 0) { continuation.yield($0) } }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { throw CancellationError() }
    return try await body("http://127.0.0.1:\(port)/v1", server)
}

/// A well-behaved mock judge.
public func mockJudge(
    _ model: String, seed: UInt64 = 1, accuracy: Double = 0.9, latency: Double = 0, errorRate: Double = 0,
    rateLimitRate: Double = 0, apiKey: String? = nil, faults: MockJudgeConfig.Behaviour.Faults? = nil
) -> MockJudgeConfig.Behaviour {
    MockJudgeConfig.Behaviour(
        model: model, seed: seed, accuracy: accuracy,
        latencyMs: latency > 0 ? .init(median: latency, p95: latency * 2) : nil,
        errorRate: errorRate, rateLimitRate: rateLimitRate, apiKey: apiKey, faults: faults)
}

/// A run config in YAML whose judges are mock models at `baseURL`.
public func runYAML(
    name: String = "test", models: [String], baseURL: String, rule: String = "unanimous", quorum: Int? = nil,
    maxAttempts: Int = 3, apiKeyEnv: String? = nil, requestsPerMinute: Int? = nil, giveUpAfter: Double = 3600,
    maxRetryAfter: Double = 600, timeout: Double? = nil, providers: [String]? = nil, orders: [Int]? = nil,
    judgeSettings: [String?]? = nil, consensus: [String] = [], extra: String = ""
) -> String {
    let judges = models.enumerated().map { index, model in
        // The mock serves each provider's API: Gemini's under /v1beta, the others under /v1.
        let provider = providers?[index] ?? "openai-compatible"
        let base = provider == "gemini" ? baseURL.replacingOccurrences(of: "/v1", with: "/v1beta") : baseURL
        var line = "  - { name: j\(index + 1), provider: \(provider), model: \(model), base_url: \"\(base)\""
        if let apiKeyEnv { line += ", api_key_env: \(apiKeyEnv)" }
        if let requestsPerMinute { line += ", requests_per_minute: \(requestsPerMinute)" }
        if let timeout { line += ", timeout_seconds: \(timeout)" }
        if let orders { line += ", order: \(orders[index])" }
        if let settings = judgeSettings?[index] { line += ", " + settings }
        return line + " }"
    }.joined(separator: "\n")
    return """
        name: \(name)
        taxonomy:
          - { label: valid, description: can be done }
          - { label: needs_more_context, description: a term must be defined }
          - { label: missing_capability, description: data we do not have }
          - { label: wrong_skill, description: not a segment }
          - { label: ambiguous, description: several readings }
        judges:
        \(judges)
        prompt:
          system: "Labels: {{#labels}}{{.}} {{/labels}}"
          user: "Request: {{request}}"
        consensus:
          rule: \(rule)
        \(quorum.map { "  quorum: \($0)" } ?? "")
        \(consensus.map { "  " + $0 }.joined(separator: "\n"))
        \(extra)
        max_attempts: \(maxAttempts)
        retry:
          base_delay_seconds: 0.05
          max_delay_seconds: 0.2
          give_up_after_seconds: \(giveUpAfter)
          max_retry_after_seconds: \(maxRetryAfter)
        """
}

/// Stores a run from YAML text.
/// A run with one judge (`j1`) that nothing calls and `examples` examples enqueued: for tests
/// that claim and record through the store themselves.
public func oneJudgeRun(_ url: String, examples: Int) async throws -> (Store, StoredRun) {
    let jury = try await store(url)
    let run = try await createRun(runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
    try await enqueue(try writeCorpus(count: examples), run: run.name, in: jury)
    return (jury, run)
}

public func createRun(_ yaml: String, in store: Store) async throws -> StoredRun {
    try await store.createRun(try RunConfig.parse(yaml: yaml, file: "test.yaml")).run
}

/// Enqueues a corpus file into a run.
@discardableResult
public func enqueue(_ file: String, run: String, batch: String? = nil, in store: Store) async throws -> EnqueueReport {
    try await Enqueuer(store: store, logger: TestDatabase.logger).enqueue(file: file, run: run, batch: batch)
}

/// Writes `count` examples drawn from the demo corpus' vocabulary to a temporary JSONL file.
public func writeCorpus(count: Int, prefix: String = "ex") throws -> String {
    let requests = [
        "Customers who spent over $200 in the last 90 days", "Find my best customers", "Customers aged 25 to 34",
        "Write an email about boots", "Customers from Paris", "Customers who bought tea twice",
        "Top 100 customers by spend", "Customers who bought boots and tea",
    ]
    var text = ""
    for index in 0..<count {
        text += #"{"id":"\#(prefix)-\#(index)","request":"\#(requests[index % requests.count]) #\#(index)"}"# + "\n"
    }
    let path = scratchPath("corpus.jsonl")
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Writes JSONL text to a temporary file.
public func writeFile(_ text: String) throws -> String {
    let path = scratchPath("corpus.jsonl")
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// One HTTP client for the tests' workers.
public let testHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}()

/// A worker whose judges are called over HTTP with the tests' client, online or in batches;
/// keys come from `environment`.
public func testWorker(url: String, options: WorkerOptions, environment: [String: String] = [:]) -> Worker {
    Worker(
        database: Database(conninfo: url), options: options, logger: TestDatabase.logger,
        makeJudge: { config in try HTTPJudge(config: config, client: testHTTPClient, environment: environment) },
        makeBatchJudge: BatchJudges.factory(client: testHTTPClient, environment: environment))
}

/// Runs a worker (and optionally a reducer) in process until `until` holds, then stops them.
/// `timeout` bounds a hang, not speed: beside the whole suite on two cores, a run that takes
/// 12 s alone has taken 82.
public func runWorkers(
    url: String, run: String? = nil, workers: Int = 1, reducers: Int = 1, concurrency: Int = 64,
    leaseSeconds: Double = 30, timeout: Double = 180,
    environment: [String: String] = [:], until: @escaping @Sendable () async throws -> Bool
) async throws {
    var options = WorkerOptions()
    options.run = run
    options.concurrency = concurrency
    options.leaseSeconds = leaseSeconds
    options.idlePollSeconds = 0.2
    options.batchPollSeconds = 0.2
    options.drainSeconds = 5
    let workerList = (0..<workers).map { _ in testWorker(url: url, options: options, environment: environment) }
    let reducerList = (0..<reducers).map { _ in
        Reducer(
            database: Database(conninfo: url), run: run, batchSize: 50, idlePollSeconds: 0.2,
            logger: TestDatabase.logger)
    }
    try await untilShutdown(workerList + reducerList) {
        try await eventually(timeout: timeout, "the workers to finish", until)
    }
}

/// Runs services in a group while `body` runs, then shuts them down gracefully and waits for them.
public func untilShutdown<T: Sendable>(_ services: [any Service], _ body: () async throws -> T) async throws -> T {
    let group = ServiceGroup(services: services, logger: TestDatabase.logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let value = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return value
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}
