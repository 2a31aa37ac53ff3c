import AsyncHTTPClient
import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import NIOCore
import NIOHTTP1
import Testing

@testable import JuryJudges

/// Batch-mode judges through OpenAI's Batch API, as the mock judge serves it, beside online judges.
@Suite("Provider batches")
struct BatchTests {
    static let key = "sk-batch-test-2231"
    static let environment = ["MOCK_KEY": key]
    static let batchJudge =
        "api_key_env: MOCK_KEY, mode: batch, batch: { max_requests: 60, gather_seconds: 0.2 }, "
        + "price: { input_per_million: 2, output_per_million: 8 }"

    /// A run of one batch-mode judge (`j1`, model m-b) with `examples` examples enqueued, on the
    /// test's database: its URL, a connection, a store and the run.
    static func batchRun(baseURL: String, provider: String, examples: Int) async throws -> (
        String, PostgresConnection, Store, StoredRun
    ) {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let run = try await createRun(
            runYAML(models: ["m-b"], baseURL: baseURL, providers: [provider], judgeSettings: [batchJudge]), in: jury)
        try await enqueue(try writeCorpus(count: examples), run: run.name, in: jury)
        return (url, try await connect(url), jury, run)
    }

    @Test(.freshDatabase) func aBatchJudgeVotesThroughTheBatchAPIBesideOnlineJudges() async throws {
        let judges = [
            mockJudge("m-a", seed: 1, accuracy: 0.95),
            mockJudge("m-b", seed: 2, accuracy: 0.9, errorRate: 0.05, apiKey: Self.key),
            mockJudge("m-c", seed: 3, accuracy: 0.9),
        ]
        // Every third batch expires half answered, and every results file carries junk: a line
        // that is not JSON, an answer to a request never sent, and an answer given twice.
        let batches = MockJudgeConfig.Batches(completeSeconds: 0.3, expireEvery: 3, junkLines: true)
        try await withMockJudges(judges, batches: batches) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(
                    models: ["m-a", "m-b", "m-c"], baseURL: baseURL,
                    providers: ["openai-compatible", "openai", "openai-compatible"],
                    judgeSettings: [nil, Self.batchJudge, nil]), in: jury)
            try await enqueue(try writeCorpus(count: 300), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count("SELECT count(*) FROM verdicts") == 300
            }
            // Every job voted once or was cancelled by early decision; none is left.
            let cancelled = try await connection.count("SELECT count(*) FROM jobs WHERE state = 'cancelled'")
            #expect(try await connection.count("SELECT count(*) FROM votes") + cancelled == 900)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state <> 'cancelled'") == 0)
            // The batch judge's votes came from batches: no latency of their own, a prompt hash,
            // and half the online price of the tokens they used.
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2'") > 200)
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM votes WHERE judge = 'j2'
                      AND (latency_ms IS NOT NULL OR prompt_hash IS NULL
                           OR abs(cost_usd - (prompt_tokens * 2 + completion_tokens * 8) / 1e6 * 0.5) > 1e-12)
                    """) == 0)
            #expect(
                try await connection.count("SELECT count(*) FROM votes WHERE judge <> 'j2' AND latency_ms IS NULL") == 0
            )
            // An example's judges saw one prompt, online or in a batch.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM (SELECT example_id FROM votes GROUP BY 1 HAVING count(DISTINCT prompt_hash) > 1) x"
                ) == 0)
            // Expired batches gave their unanswered jobs back without using attempts; the next
            // batches answered them.
            #expect(try await connection.count("SELECT count(*) FROM batches WHERE state = 'expired'") > 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2' AND claims > 1") > 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2' AND attempts > 1") == 0)
            // Every batch is closed, and its counts add up to its requests.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM batches WHERE state NOT IN ('collected', 'expired') OR succeeded + failed <> requests"
                ) == 0)
            #expect(try await connection.count("SELECT count(*) FROM jury_batches WHERE run = 'test'") > 5)
            try await expectCountsMatchTables(connection)
            let status = try await StatusReport.load(run: run.name, from: jury).text
            #expect(status.contains("j2 batches 0 open (0 requests); "), "\(status)")
            #expect(!status.contains("j1 batches"))
            let listed = try await jury.batches(run: run.name)
            #expect(listed.count == (try await connection.count("SELECT count(*) FROM batches")))
            #expect(listed.allSatisfy { $0.providerID != nil && $0.reservedUSD == 0 })
        }
    }

    @Test(.freshDatabase, arguments: ["openai", "anthropic", "gemini"])
    func aBatchWhoseSubmissionWasNeverRecordedIsFoundAgainNotSentTwice(provider: String) async throws {
        let judges = [mockJudge("m-b", seed: 2, apiKey: Self.key)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 0.2)) { baseURL, server in
            let (url, connection, jury, run) = try await Self.batchRun(
                baseURL: baseURL, provider: provider, examples: 20)
            let config = try #require(run.config.judge(named: "j1"))
            // Twenty jobs fill no batch of 60: one opens once the oldest has waited gather_seconds.
            var opened: Int64?
            try await eventually("a batch to be due") {
                opened = try await jury.openBatch(
                    runID: run.id, judge: "j1", settings: config.batchSettings, leaseSeconds: 3600)
                return opened != nil
            }
            let batchID = try #require(opened)
            // A worker takes the step, submits, and dies before it records the provider's answer.
            let batch = try #require(
                try await jury.takeBatchStep(
                    owner: "a-worker-that-dies", stepSeconds: 0.5, judges: [JudgeKey(runID: run.id, judge: "j1")]))
            #expect(batch.id == batchID && batch.state == .building)
            let renderer = try PromptRenderer(config: run.config)
            let requests = try await jury.batchJobs(batch, payloads: true).map { job, _ in
                BatchRequest(
                    customID: ProviderBatch.customID(job: job.id, claim: job.claim),
                    request: renderer.render(id: job.externalID, payload: job.payload))
            }
            #expect(requests.count == 20)
            let judge = try BatchJudges.factory(client: testHTTPClient, environment: Self.environment)(config)
            let writer = try BatchInputWriter(token: batch.token)
            for request in requests { try writer.append(try judge.entry(for: request)) }
            let input = try writer.finish()
            defer { input.remove() }
            let submitted = try await judge.submit(input, token: batch.token)

            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count("SELECT count(*) FROM verdicts") == 20
            }
            #expect(server.batchCounts.batches == 1)
            #expect(
                try await connection.query("SELECT provider_id, state FROM batches")[0]["provider_id"]
                    == submitted.batchID)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE claims = 1 AND attempts = 1") == 20)
            try await expectCountsMatchTables(connection)
        }
    }

    /// A batch whose requests all fail with a bad key stops the judge on every worker, as an
    /// online call would; its jobs keep their attempts.
    @Test(.freshDatabase) func aBadKeyInABatchStopsTheJudge() async throws {
        let judges = [mockJudge("m-b", seed: 2, apiKey: Self.key)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 0.2)) { baseURL, _ in
            let (url, connection, _, run) = try await Self.batchRun(baseURL: baseURL, provider: "openai", examples: 20)
            try await runWorkers(url: url, run: run.name, environment: ["MOCK_KEY": "sk-wrong"]) {
                let stopped = try await connection.count("SELECT count(*) FROM judge_breakers")
                let running = try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'")
                return stopped == 1 && running == 0
            }
            #expect(
                try await connection.count("SELECT count(*) FROM judge_breakers WHERE reason LIKE '%unauthorized%'")
                    == 1)
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0") == 20)
            #expect(try await connection.count("SELECT count(*) FROM votes") == 0)
        }
    }

    /// A batch the provider says it does not have ends as failed; its jobs go back, without
    /// using an attempt, and the next batch answers them.
    @Test(.freshDatabase) func aBatchTheProviderDoesNotHaveGivesItsJobsBack() async throws {
        let judges = [mockJudge("m-b", seed: 2, apiKey: Self.key)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 3600)) { baseURL, _ in
            let (url, connection, jury, run) = try await Self.batchRun(
                baseURL: baseURL, provider: "openai", examples: 30)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count("SELECT count(*) FROM batches WHERE state = 'submitted'") == 1
            }
            // The provider loses it (or the id was never its own).
            try await connection.query("UPDATE batches SET provider_id = 'batch_nowhere', next_poll_at = now()")
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                let failed = try await connection.count("SELECT count(*) FROM batches WHERE state = 'failed'")
                let submitted = try await connection.count("SELECT count(*) FROM batches WHERE state = 'submitted'")
                return failed == 1 && submitted == 1
            }
            let lost = try #require(try await jury.batches(run: run.name).last)
            #expect(lost.providerState == "not found" && lost.lastError?.contains("batch_nowhere") == true)
            #expect(lost.succeeded == 0 && lost.failed == 30)
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running' AND attempts = 1") == 30)
            try await expectCountsMatchTables(connection)
        }
    }

    /// Anthropic's Message Batches (each request the online call's body, results read from the
    /// results URL) and Gemini's Batch Mode (the requests uploaded as a file, the responses file
    /// read back by key), beside an online judge: expired requests go back (all of a Gemini
    /// batch, which keeps no responses then), junk lines are ignored, the votes cost half.
    @Test(.freshDatabase, arguments: ["anthropic", "gemini"])
    func aJudgeVotesThroughItsProvidersBatchAPI(provider: String) async throws {
        let judges = [mockJudge("m-a", seed: 1), mockJudge("m-b", seed: 2, errorRate: 0.05, apiKey: Self.key)]
        let batches = MockJudgeConfig.Batches(completeSeconds: 0.3, expireEvery: 3, junkLines: true)
        try await withMockJudges(judges, batches: batches) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(
                    models: ["m-a", "m-b"], baseURL: baseURL, providers: ["openai-compatible", provider],
                    judgeSettings: [nil, Self.batchJudge]), in: jury)
            try await enqueue(try writeCorpus(count: 150), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count("SELECT count(*) FROM verdicts") == 150
            }
            let cancelled = try await connection.count("SELECT count(*) FROM jobs WHERE state = 'cancelled'")
            #expect(try await connection.count("SELECT count(*) FROM votes") + cancelled == 300)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state <> 'cancelled'") == 0)
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM votes WHERE judge = 'j2'
                      AND (latency_ms IS NOT NULL OR prompt_hash IS NULL OR model_version IS NULL
                           OR abs(cost_usd - (prompt_tokens * 2 + completion_tokens * 8) / 1e6 * 0.5) > 1e-12)
                    """) == 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2'") > 100)
            #expect(try await connection.count("SELECT count(*) FROM batches WHERE state = 'expired'") > 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2' AND attempts > 1") == 0)
            #expect(server.batchCounts.batches == (try await connection.count("SELECT count(*) FROM batches")))
            try await expectCountsMatchTables(connection)
        }
    }

    /// A results URL on another host than the API's is not followed: the key would go with it.
    @Test func anAnthropicResultsURLElsewhereIsNotFollowed() async throws {
        let config = JudgeConfig(
            name: "j", provider: "anthropic", model: "m", baseURL: "http://127.0.0.1:9/v1", mode: .batch)
        let judge = try AnthropicBatchJudge(config: config, client: testHTTPClient, environment: [:])
        let elsewhere = BatchStatus(
            providerID: "msgbatch_x", providerState: "ended", end: .completed,
            outputFileID: "http://198.51.100.7/v1/messages/batches/msgbatch_x/results")
        let error = await #expect(throws: JudgeError.self) {
            try await judge.results(of: elsewhere, labels: ["valid"], chunk: 10, malformed: { _, _ in }) { _ in }
        }
        #expect(error?.message.contains("is not followed") == true)
    }

    /// Each batch's cost is reserved before it is sent: the run stops within its budget instead
    /// of overshooting it by whole batches.
    @Test(.freshDatabase) func aRunInBatchesStaysWithinItsBudget() async throws {
        let judges = [mockJudge("m-b", seed: 2, apiKey: Self.key)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 0.2)) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            // Each request is estimated at its text and 50 output tokens, about $0.03 at these
            // prices and the batch discount; 200 of them would cost several dollars.
            let judge =
                "api_key_env: MOCK_KEY, mode: batch, batch: { max_requests: 40, gather_seconds: 0.2 }, "
                + "parameters: { max_completion_tokens: 50 }, price: { input_per_million: 1000, output_per_million: 1000 }"
            let run = try await createRun(
                runYAML(
                    models: ["m-b"], baseURL: baseURL, providers: ["openai"], judgeSettings: [judge],
                    extra: "budget_usd: 1.5"), in: jury)
            try await enqueue(try writeCorpus(count: 200), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                // Run until what is left pays for no request, and no batch is open.
                let open = try await connection.count(
                    "SELECT count(*) FROM batches WHERE state IN ('building', 'submitted', 'ended')")
                let left = try await connection.query("SELECT jury_budget_left(\(run.id))::text AS usd")[0]["usd"]
                return open == 0 && (left.flatMap(Double.init) ?? 1) < 0.05
            }
            let spent = try await connection.query("SELECT sum(cost_usd)::text AS spent FROM votes")[0]["spent"]
            let dollars = try #require(spent.flatMap(Double.init))
            #expect(dollars <= 1.5 && dollars > 1.45, "spent \(dollars)")
            // The budget cut batches short: jobs it could not pay for wait.
            #expect(try await connection.count("SELECT count(*) FROM batches WHERE requests < 40") > 0)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending'") > 50)
            #expect(try await connection.count("SELECT count(*) FROM batches WHERE reserved_usd <> 0") == 0)
            try await expectCountsMatchTables(connection)
        }
    }

    /// `jury run cancel` cancels the run's batches at the provider; `jury batch cancel` one batch.
    @Test(.freshDatabase) func cancellingARunCancelsItsBatchesAtTheProvider() async throws {
        let judges = [mockJudge("m-b", seed: 2, apiKey: Self.key)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 3600)) { baseURL, _ in
            let (url, connection, jury, run) = try await Self.batchRun(
                baseURL: baseURL, provider: "openai", examples: 100)
            let config = try #require(run.config.judge(named: "j1"))
            let provider = try BatchJudges.factory(client: testHTTPClient, environment: Self.environment)(config)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count("SELECT count(*) FROM batches WHERE state = 'submitted'") == 2
            }
            let first = try #require(try await jury.batches(run: run.name).last)
            #expect(try await jury.requestBatchCancel(id: first.id))
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await jury.batches(run: run.name, id: first.id).first?.state == "cancelled"
            }
            #expect(try await provider.status(of: try #require(first.providerID)).providerState == "cancelled")
            #expect(try await jury.requestBatchCancel(id: first.id) == false)
            // Its jobs went back, without using an attempt, and into a new batch.
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE attempts > 0 AND state = 'pending'") == 0)

            try await jury.setRunState(.cancelled, run: run.name)
            try await runWorkers(url: url, run: run.name, environment: Self.environment) {
                try await connection.count(
                    "SELECT count(*) FROM batches WHERE state IN ('building', 'submitted', 'ended')")
                    == 0
            }
            for batch in try await jury.batches(run: run.name) {
                #expect(batch.state == "cancelled")
                if let id = batch.providerID { #expect(try await provider.status(of: id).providerState == "cancelled") }
            }
            try await expectCountsMatchTables(connection)
        }
    }

    /// A results line over the limit is dropped up to its end and said once, under its own
    /// number; the lines after it keep theirs.
    @Test func aResultsLineTooLongIsSaidOnceAndTheNextKeepTheirNumbers() async throws {
        try await withMockJudges([mockJudge("m", seed: 1)], batches: .init()) { baseURL, _ in
            let limit = ResultsDownload.lineLimit
            let content =
                "a\n" + String(repeating: "x", count: limit + 10) + "\nb\n"
                + String(repeating: "y", count: 2 * limit + 10)
                + "\nc"
            var form = Data("--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".utf8)
            form.append(Data("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.jsonl\"\r\n\r\n".utf8))
            form.append(Data(content.utf8))
            form.append(Data("\r\n--B--\r\n".utf8))
            var upload = HTTPClientRequest(url: baseURL + "/files")
            upload.method = .POST
            upload.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=B")
            upload.body = .bytes(form)
            let answer = try await testHTTPClient.execute(upload, timeout: .seconds(60))
            let uploaded = try JSONValue.parseStrict(
                Data(try await answer.body.collect(upTo: 1 << 20).readableBytesView))
            let id = try #require(uploaded["id"]?.text)
            let download = ResultsDownload(
                client: testHTTPClient, url: baseURL + "/files/\(id)/content", headers: [], judge: "j", redact: { $0 })
            var read: [(Int, String)] = []
            try await download.readLines(chunk: 2) { lines in
                read += lines.map { ($0.0, String(decoding: $0.1, as: UTF8.self)) }
            }
            let tooLong = "line longer than \(limit) bytes"
            #expect(read.map(\.0) == [1, 2, 3, 4, 5])
            // Compared by their first bytes: a long line kept whole would not print readably.
            #expect(read.map { String($0.1.prefix(40)) } == ["a", tooLong, "b", tooLong, "c"])
        }
    }

    /// A batch is written to disk as it is made; a worker killed meanwhile leaves its file,
    /// which the next worker to start removes once it is an hour old, and no other.
    @Test func batchInputIsWrittenToDiskAndStaleFilesAreRemoved() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jury-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try BatchInputWriter(token: "t", directory: directory)
        try writer.append(Data(#"{"a":1}"#.utf8))
        try writer.append(Data(#"{"b":"two\nlines"}"#.utf8))
        #expect(throws: JuryError.self) { try writer.append(Data("{\n}".utf8)) }
        let input = try writer.finish()
        #expect(input.count == 2 && input.length == 27)
        #expect(try Data(contentsOf: input.file) == Data("{\"a\":1}\n{\"b\":\"two\\nlines\"}\n".utf8))

        let old = try BatchInputWriter(token: "dead", directory: directory).finish()
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: old.file.path)
        let unrelated = directory.appendingPathComponent("notes.jsonl")
        try Data().write(to: unrelated)
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: unrelated.path)
        #expect(BatchInputWriter.removeStale(olderThan: 3600, in: directory) == 1)
        #expect(!FileManager.default.fileExists(atPath: old.file.path))
        #expect(FileManager.default.fileExists(atPath: input.file.path))
        #expect(FileManager.default.fileExists(atPath: unrelated.path))
        input.remove()
        #expect(!FileManager.default.fileExists(atPath: input.file.path))
    }

    @Test func resultLinesAreUntrustedInput() throws {
        let labels = ["valid", "ambiguous"]
        func judge(_ provider: String) -> JudgeConfig {
            JudgeConfig(name: "j", provider: provider, model: "m", baseURL: "http://127.0.0.1:9/v1", mode: .batch)
        }
        let openAI = try OpenAIBatchJudge(config: judge("openai"), client: testHTTPClient, environment: [:])
        func read(_ line: String) -> Result<BatchResult, JudgeError> { openAI.result(Data(line.utf8), labels: labels) }
        let answer =
            #"{"choices":[{"message":{"content":"{\"label\":\"valid\",\"rationale\":\"ok\"}"}}],"model":"m","usage":{"prompt_tokens":10,"completion_tokens":3}}"#
        guard
            case .success(let good) = read(
                #"{"custom_id":"job-1-claim-1","response":{"status_code":200,"body":\#(answer)},"error":null}"#),
            case .answer(let vote) = good.outcome
        else {
            Issue.record("a good line was not read")
            return
        }
        #expect(vote.label == "valid" && vote.promptTokens == 10 && good.customID == "job-1-claim-1")

        // Not JSON, a key given twice, no custom id, neither response nor error: not results.
        for line in [
            "not json", #"{"custom_id":"a","custom_id":"b","error":null}"#, #"{"response":{"status_code":200}}"#,
            #"{"custom_id":"job-1-claim-1","response":null,"error":null}"#,
        ] {
            guard case .failure = read(line) else {
                Issue.record("read as a result: \(line)")
                continue
            }
        }
        // A label outside the taxonomy fails like an online answer would; an expired request is unanswered.
        let outside = answer.replacingOccurrences(of: #"\"valid\""#, with: #"\"maybe\""#)
        guard case .success(let wrong) = read(#"{"custom_id":"x","response":{"status_code":200,"body":\#(outside)}}"#),
            case .failed(let error) = wrong.outcome
        else {
            Issue.record("a label outside the taxonomy was taken")
            return
        }
        #expect(error.code == .badAnswer)
        guard
            case .success(let expired) = read(
                #"{"custom_id":"x","response":null,"error":{"code":"batch_expired","message":"late"}}"#),
            case .unanswered = expired.outcome
        else {
            Issue.record("an expired request was not unanswered")
            return
        }
        guard
            case .success(let limited) = read(
                #"{"custom_id":"x","response":{"status_code":429,"body":{"error":{"message":"slow"}}}}"#),
            case .failed(let slow) = limited.outcome
        else {
            Issue.record("a 429 line was not a failure")
            return
        }
        #expect(slow.code == .rateLimited)
        // A used-up quota reads as it does online: it stops the judge, where a 429 waits.
        guard
            case .success(let broke) = read(
                #"{"custom_id":"x","response":{"status_code":429,"body":{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}}}"#
            ),
            case .failed(let quota) = broke.outcome
        else {
            Issue.record("an insufficient_quota line was not a failure")
            return
        }
        #expect(quota.code == .quotaExhausted)
        // Anthropic's lines: a message, an error by its type, a request canceled or expired, junk.
        let anthropic = try AnthropicBatchJudge(config: judge("anthropic"), client: testHTTPClient, environment: [:])
        func readAnthropic(_ line: String) -> Result<BatchResult, JudgeError> {
            anthropic.result(Data(line.utf8), labels: labels)
        }
        let message =
            #"{"content":[{"type":"text","text":"{\"label\":\"ambiguous\",\"rationale\":\"two\"}"}],"model":"c","usage":{"input_tokens":7,"output_tokens":2}}"#
        guard
            case .success(let succeeded) = readAnthropic(
                #"{"custom_id":"a","result":{"type":"succeeded","message":\#(message)}}"#),
            case .answer(let claude) = succeeded.outcome
        else {
            Issue.record("a succeeded line was not read")
            return
        }
        #expect(claude.label == "ambiguous" && claude.promptTokens == 7)
        guard
            case .success(let overloaded) = readAnthropic(
                #"{"custom_id":"a","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"busy"}}}}"#
            ),
            case .failed(let busy) = overloaded.outcome
        else {
            Issue.record("an errored line was not a failure")
            return
        }
        #expect(busy.code == .server)
        for type in ["canceled", "expired"] {
            guard case .success(let result) = readAnthropic(#"{"custom_id":"a","result":{"type":"\#(type)"}}"#),
                case .unanswered = result.outcome
            else {
                Issue.record("a \(type) request was not unanswered")
                continue
            }
        }
        for line in [
            #"{"custom_id":"a","result":{"type":"won"}}"#, #"{"custom_id":"a"}"#, #"{"result":{"type":"expired"}}"#,
        ] {
            guard case .failure = readAnthropic(line) else {
                Issue.record("read as a result: \(line)")
                continue
            }
        }
        guard
            case .success(let credit) = readAnthropic(
                #"{"custom_id":"a","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low"}}}}"#
            ),
            case .failed(let broke) = credit.outcome
        else {
            Issue.record("an errored line was not a failure")
            return
        }
        #expect(broke.code == .quotaExhausted)
        // Gemini's lines: a key with a response or an error status; anything else is not a result.
        let gemini = try GeminiBatchJudge(config: judge("gemini"), client: testHTTPClient, environment: [:])
        func readGemini(_ line: String) -> Result<BatchResult, JudgeError> {
            gemini.result(Data(line.utf8), labels: labels)
        }
        let response =
            #"{"candidates":[{"content":{"parts":[{"text":"{\"label\":\"valid\",\"rationale\":\"ok\"}"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"thoughtsTokenCount":5}}"#
        guard case .success(let answered) = readGemini(#"{"key":"job-1-claim-1","response":\#(response)}"#),
            case .answer(let flash) = answered.outcome
        else {
            Issue.record("a Gemini response line was not read")
            return
        }
        #expect(flash.label == "valid" && flash.promptTokens == 9 && flash.completionTokens == 9)
        guard
            case .success(let exhausted) = readGemini(
                #"{"key":"a","error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#
            ),
            case .failed(let busy429) = exhausted.outcome
        else {
            Issue.record("a Gemini error line was not a failure")
            return
        }
        #expect(busy429.code == .rateLimited)
        for line in [
            #"{"key":"a"}"#, #"{"response":\#(response)}"#, #"{"key":"a","error":{"message":"no code"}}"#, "[]",
            #"{"key":"","response":{}}"#,
        ] {
            guard case .failure = readGemini(line) else {
                Issue.record("read as a result: \(line)")
                continue
            }
        }
        // Names Gemini gives go into URL paths: only plain ids are taken.
        #expect(GeminiBatchJudge.isName("batches/abc-12_x", in: "batches"))
        for name in ["batches/", "batches/../files/x", "batches/a/b", "files/abc", "batches/a?b", "batches/ä"] {
            #expect(!GeminiBatchJudge.isName(name, in: "batches"), "\(name)")
        }
        #expect(GeminiBatchJudge.uploadURL(base: "https://g.example/v1beta") == "https://g.example/upload/v1beta/files")

        // Custom ids Jury never writes name no job.
        for text in ["job-1-claim-0", "job--1-claim-1", "job-1-claim-1-x", "1-1", "job-99999999999999999999-claim-1"] {
            #expect(ProviderBatch.job(fromCustomID: text) == nil)
        }
        #expect(ProviderBatch.job(fromCustomID: ProviderBatch.customID(job: 42, claim: 3))! == (42, 3))
    }
}
