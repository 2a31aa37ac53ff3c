import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import ServiceLifecycle
import Testing

@Suite("Pipeline")
struct PipelineTests {
    @Test(.freshDatabase) func aCorpusBecomesVerdictsThroughRealHTTPJudges() async throws {
        let judges = [
            mockJudge("m-a", seed: 1, accuracy: 0.95, latency: 5, errorRate: 0.05),
            mockJudge("m-b", seed: 2, accuracy: 0.9, latency: 5, rateLimitRate: 0.05),
            mockJudge("m-c", seed: 3, accuracy: 0.85, latency: 5),
        ]
        try await withMockJudges(judges) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(models: ["m-a", "m-b", "m-c"], baseURL: baseURL, maxAttempts: 8), in: jury)
            let file = try writeCorpus(count: 300)
            _ = try await Enqueuer(store: jury, logger: TestDatabase.logger).enqueue(
                file: file, run: run.name)
            try await runWorkers(url: url, run: run.name) {
                try await connection.count("SELECT count(*) FROM verdicts") == 300
            }
            // Every job voted, or was cancelled by early decision once its example could no longer agree.
            let cancelled = try await connection.count("SELECT count(*) FROM jobs WHERE state = 'cancelled'")
            #expect(try await connection.count("SELECT count(*) FROM votes") + cancelled == 900)
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state <> 'cancelled'") == 0)
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM examples WHERE state <> 'decided' OR jobs_open <> 0") == 0)
            // Some calls failed with 500 or 429 and were retried, without using up attempts.
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE claims > 1") > 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE attempts > 1") == 0)
            // Every vote says which prompt it answered and which model version; an example's judges saw one prompt.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM votes WHERE prompt_hash IS NULL OR model_version IS NULL OR cached_tokens IS NULL"
                )
                    == 0)
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM (SELECT example_id FROM votes GROUP BY 1 HAVING count(DISTINCT prompt_hash) > 1) x"
                )
                    == 0)
            #expect(server.requestCount > 900)

            // Every verdict is what the rule says of the votes behind it.
            let rows = try await connection.query(
                """
                SELECT v.example_id, v.label, v.status, jsonb_object_agg(x.judge, x.label)::text AS votes
                FROM verdicts v JOIN votes x ON x.example_id = v.example_id GROUP BY v.example_id, v.label, v.status
                """)
            var statuses: [String: Int] = [:]
            for row in rows {
                let votes = try JSONDecoder().decode([String: String].self, from: Data(row["votes"]!.utf8))
                let expected = ConsensusRule.unanimous.decide(votes: votes, panel: ["j1", "j2", "j3"])
                #expect(row["status"] == expected.status.rawValue)
                #expect(row["label"] == expected.label)
                statuses[row["status"]!, default: 0] += 1
            }
            #expect(statuses["agreed", default: 0] > 0)
            #expect(statuses["disagreed", default: 0] > 0)

            let report = try await StatusReport.load(run: run.name, from: jury)
            #expect(report.runs[0].decided == 300)
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM (
                        SELECT judge FROM (SELECT judge FROM votes UNION ALL SELECT judge FROM jobs WHERE state = 'cancelled') j
                        GROUP BY judge HAVING count(*) = 300) x
                    """)
                    == 3)

            let export = scratchPath("export.jsonl")
            let written = try await Exporter.export(
                run: run.name, format: .jsonl, filter: ExportFilter(status: .agreed), to: export, from: jury
            ).written
            #expect(written == statuses["agreed"])
            let lines = try String(contentsOfFile: export, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == written)
            let first = try JSONDecoder().decode(ExportLine.self, from: Data(lines[0].utf8))
            #expect(first.verdict.status == "agreed")
            #expect(first.votes.count == 3)
            #expect(first.request.hasPrefix("Customers") || !first.request.isEmpty)
        }
    }

    struct ExportLine: Decodable {
        struct VerdictPart: Decodable {
            let label: String?
            let status: String
        }
        let id: String
        let request: String
        let verdict: VerdictPart
        let votes: [String: [String: String]]
    }

    @Test(.freshDatabase) func twoReducersDecideEachExampleExactlyOnce() async throws {
        try await withMockJudges([mockJudge("r-a", seed: 6), mockJudge("r-b", seed: 7)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["r-a", "r-b"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 500), run: run.name, in: jury)
            // Votes first, no reducer: every example ends up ready.
            try await runWorkers(url: url, run: run.name, reducers: 0) {
                try await connection.count("SELECT count(*) FROM examples WHERE state = 'ready'") == 500
            }
            let decided = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let own = try await store(url)
                        var total = 0
                        while true {
                            let count = try await own.decideReady(runID: nil, limit: 7) { example, config in
                                config.decide(
                                    votes: example.votes, rule: config.rule, sourceLabel: example.sourceLabel,
                                    reviewedLabel: example.reviewedLabel)
                            }.count
                            if count == 0 { return total }
                            total += count
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(decided == 500)
            #expect(try await connection.count("SELECT count(*) FROM verdicts") == 500)
            #expect(try await connection.count("SELECT count(*) FROM examples WHERE state = 'decided'") == 500)
        }
    }

    @Test(.freshDatabase) func failedJobsAreRetriedByOneCommandAndTheExampleIsDecidedAnew() async throws {
        let judges = [
            mockJudge("f-good", seed: 8), mockJudge("f-broken", seed: 9, errorRate: 1), mockJudge("f-fixed", seed: 10),
        ]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(models: ["f-good", "f-broken"], baseURL: baseURL, maxAttempts: 2, giveUpAfter: 1),
                in: jury)
            let corpus = try writeCorpus(count: 40)
            try await enqueue(corpus, run: run.name, batch: "first", in: jury)
            // The reducer marks the run done once its last example is decided.
            try await runWorkers(url: url, run: run.name) {
                try await jury.findRun(run.name).state == .done
            }
            #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE status = 'insufficient'") == 40)
            let ended = try #require(try await jury.listRuns().first)
            #expect(ended.examples == 40 && ended.decided == 40 && ended.insufficient == 40 && ended.jobsFailed == 40)
            #expect(ended.finishedAt != nil)
            // Per batch, from the kept counts.
            let batch = try await connection.query(
                "SELECT examples, decided, insufficient, jobs_failed FROM jury_batch_progress WHERE batch = 'first'")
            #expect(batch.count == 1)
            for column in ["examples", "decided", "insufficient", "jobs_failed"] {
                #expect(try batch[0].decode(column, as: Int.self) == 40, "\(column)")
            }
            // The same lines again add nothing, so the run stays done.
            #expect(try await enqueue(corpus, run: run.name, batch: "first", in: jury).new == 0)
            #expect(try await jury.findRun(run.name).state == .done)
            // An outage uses up no attempts: the jobs failed when retrying it had lasted give_up_after_seconds.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM jobs WHERE state = 'failed' AND attempts = 0 AND claims > 1") == 40)
            #expect(
                try await connection.count("SELECT count(*) FROM jury_failures WHERE last_error LIKE '%HTTP 500%'")
                    == 40)

            // The provider is fixed (here: the judge now points at a healthy model); one command retries.
            try await connection.query(
                "UPDATE runs SET config = jsonb_set(config, '{judges,1,model}', '\"f-fixed\"') WHERE id = \(run.id)"
            )
            #expect(
                try await Operations.retryFailed(run: run.name, batch: "first", judge: nil, in: jury) == 40)
            #expect(try await connection.count("SELECT count(*) FROM verdicts") == 0)
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0")
                    == 40)
            // Retried jobs reopen the run, which ends again when they have voted.
            #expect(try await jury.findRun(run.name).state == .active)
            try await runWorkers(url: url, run: run.name) {
                try await jury.findRun(run.name).state == .done
            }
            #expect(try await connection.count("SELECT count(*) FROM verdicts") == 40)
            #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE status = 'insufficient'") == 0)
            #expect(try await connection.count("SELECT count(*) FROM votes") == 80)
            #expect(try await Operations.retryFailed(run: run.name, batch: nil, judge: nil, in: jury) == 0)
            try await expectCountsMatchTables(connection)
            #expect(try await connection.count("SELECT sum(votes) FROM jury_throughput") == 80)
            await #expect(throws: JuryError.self) {
                try await Operations.retryFailed(run: run.name, batch: nil, judge: "nobody", in: jury)
            }
            // New examples reopen it too.
            #expect(try await enqueue(try writeCorpus(count: 3, prefix: "more"), run: run.name, in: jury).new == 3)
            #expect(try await jury.listRuns().first?.state == .active)
            #expect(try await jury.listRuns().first?.finishedAt == nil)
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM jury_batch_progress
                    WHERE (batch = 'first' AND decided = 40 AND insufficient = 0 AND agreed + disagreed = 40
                           AND jobs_failed = 0)
                       OR (batch <> 'first' AND examples = 3 AND voting = 3 AND decided = 0)
                    """) == 2)
            try await expectCountsMatchTables(connection)
        }
    }

    @Test(.freshDatabase) func aPanelOfThreeProvidersVotesThroughEachNativeAPI() async throws {
        let key = "sk-panel-\(UUID().uuidString)"
        let judges = ["p-openai", "p-anthropic", "p-gemini"].enumerated().map { index, model in
            mockJudge(model, seed: 40 + UInt64(index), latency: 5, rateLimitRate: 0.1, apiKey: key)
        }
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let yaml = runYAML(
                models: ["p-openai", "p-anthropic", "p-gemini"], baseURL: baseURL, apiKeyEnv: "PANEL_KEY",
                providers: ["openai", "anthropic", "gemini"], consensus: ["early_decision: false"])
            let run = try await createRun(yaml, in: jury)
            try await enqueue(try writeCorpus(count: 60), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, environment: ["PANEL_KEY": key]) {
                try await connection.count("SELECT count(*) FROM verdicts") == 60
            }
            // Every judge voted on every example through its own API, and said which model answered.
            for (judge, model) in [("j1", "p-openai"), ("j2", "p-anthropic"), ("j3", "p-gemini")] {
                #expect(
                    try await connection.count(
                        "SELECT count(*) FROM votes WHERE judge = \(judge) AND model_version = \(model + "-mock-2026-11")"
                    )
                        == 60)
            }
            // The three judges of an example were sent one prompt.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM (SELECT example_id FROM votes GROUP BY 1 HAVING count(DISTINCT prompt_hash) > 1) x"
                )
                    == 0)
        }
    }

    @Test(.freshDatabase) func aPanelOfTodaysThinkingModelsIsDecidedAndCostsWhatTheProvidersBill() async throws {
        let key = "sk-thinkers-\(UUID().uuidString)"
        // A generation-5 Claude, an OpenAI reasoning model and a Gemini that thinks: each refuses
        // a sampling parameter the way its provider does, and reports 300 thinking tokens.
        let models = ["claude-opus-5", "gpt-5-mini", "gemini-2.5-pro"]
        let judges = models.enumerated().map { index, model in
            MockJudgeConfig.Behaviour(
                model: model, seed: 50 + UInt64(index), accuracy: 1, apiKey: key, thinkingTokens: 300)
        }
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            var yaml = runYAML(
                models: models, baseURL: baseURL, apiKeyEnv: "THINKERS_KEY", providers: ["anthropic", "openai", "gemini"],
                consensus: ["early_decision: false"])
            for model in models {
                yaml = yaml.replacingOccurrences(
                    of: "model: \(model),", with: "model: \(model), price: { input_per_million: 2, output_per_million: 10 },")
            }
            let run = try await createRun(yaml, in: jury)
            try await enqueue(try writeCorpus(count: 40), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, environment: ["THINKERS_KEY": key]) {
                try await connection.count("SELECT count(*) FROM verdicts") == 40
            }
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
            // Each vote holds its thinking inside its output, and costs it at the output price.
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM votes
                    WHERE completion_tokens = 316 AND thinking_tokens = 300
                      AND abs(cost_usd - (prompt_tokens * 2 + 316 * 10) / 1e6) < 1e-12
                    """) == 120)
            // jury_costs sums the same tokens and cost per judge, by kind.
            #expect(
                try await connection.count(
                    """
                    SELECT count(*) FROM jury_costs c
                    WHERE c.votes = 40 AND c.output_tokens = 40 * 316 AND c.thinking_tokens = 40 * 300
                      AND c.input_tokens = (SELECT sum(v.prompt_tokens) FROM votes v WHERE v.judge = c.judge)
                      AND abs(c.cost_usd - (SELECT sum(v.cost_usd) FROM votes v WHERE v.judge = c.judge)) < 1e-9
                    """) == 3)
        }
    }

    @Test(.freshDatabase) func aBadKeyStopsThatJudgesCallsAndTheKeyIsNeverStored() async throws {
        let key = "sk-test-\(UUID().uuidString)"
        let judges = [mockJudge("s-a", seed: 11, apiKey: key)]
        try await withMockJudges(judges) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(models: ["s-a"], baseURL: baseURL, maxAttempts: 5, apiKeyEnv: "JURY_TEST_KEY"),
                in: jury)
            try await enqueue(try writeCorpus(count: 10), run: run.name, in: jury)
            // The right key: votes.
            try await runWorkers(url: url, run: run.name, environment: ["JURY_TEST_KEY": key]) {
                try await connection.count("SELECT count(*) FROM verdicts") == 10
            }
            #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE status = 'agreed'") == 10)
            // A wrong key: the worker stops calling the judge after the first refusals, instead of
            // burning through the queue; the jobs stay pending, with the error, for a fixed worker.
            try await enqueue(try writeCorpus(count: 10, prefix: "second"), run: run.name, in: jury)
            let requestsBefore = server.requestCount
            let wrong = key + "-wrong"
            try await runWorkers(url: url, run: run.name, concurrency: 2, environment: ["JURY_TEST_KEY": wrong]) {
                try await connection.count("SELECT count(*) FROM jobs WHERE last_error LIKE '%JURY_TEST_KEY%'") == 2
            }
            #expect(server.requestCount - requestsBefore == 2)
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0")
                    == 10)
            #expect(try await connection.count("SELECT count(*) FROM verdicts") == 10)
            let health =
                try await connection.query("SELECT last_error FROM jury_judge_health")[0]["last_error"] ?? ""
            #expect(health.contains("HTTP 401; check the key in JURY_TEST_KEY"))
            // Neither key appears anywhere in the database.
            let dump =
                try await connection.query(
                    """
                    SELECT (SELECT string_agg(config::text, ' ') FROM runs) || (SELECT coalesce(string_agg(last_error, ' '), '') FROM jobs)
                           || (SELECT string_agg(coalesce(rationale, ''), ' ') FROM votes) AS everything
                    """)[0]["everything"] ?? ""
            #expect(!dump.contains(key))
        }
    }

    @Test(.freshDatabase) func jobsOfAClaimWhoseAnswerWasLostComeBack() async throws {
        try await withMockJudges([mockJudge("l-a", seed: 5, latency: 20)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["l-a"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 60), run: run.name, in: jury)
            var options = WorkerOptions()
            options.concurrency = 4
            options.idlePollSeconds = 0.2
            // Polling: the killed connection is then found by the next claim, not by a wait on its socket.
            options.listens = false
            let worker = testWorker(url: url, options: options)
            try await untilShutdown([worker]) {
                try await eventually("the worker to register") {
                    try await connection.count(
                        "SELECT count(*) FROM workers WHERE id = \(worker.id) AND stopped_at IS NULL") == 1
                }
                // A claim committed under the worker's name, and its connection died before the
                // answer came: the jobs are the live worker's, and it knows nothing of them.
                let lost = try await jury.claim(
                    [ClaimRequest(runID: run.id, judge: "j1", count: 10)], owner: worker.id, leaseSeconds: 60)
                #expect(lost.count == 10)
                try await connection.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jury worker' AND datname = current_database()"
                )
                // 180 s ends a hang; beside the whole suite on two cores this took over 60 (3 alone).
                try await eventually(timeout: 180, "every job voted") {
                    try await connection.count("SELECT count(*) FROM votes") == 60
                }
            }
            #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
            try await expectCountsMatchTables(connection)
        }
    }

    @Test(.freshDatabase) func aStoppedWorkerDrainsAndLeavesNoJobRunning() async throws {
        try await withMockJudges([mockJudge("d-a", seed: 12, latency: 200)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["d-a"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 300), run: run.name, in: jury)
            var options = WorkerOptions()
            options.concurrency = 16
            // The calls take 200 ms; the drain bounds the recording too (drain + 5 s). Beside the
            // whole suite on two cores, recording the last outcomes has waited over 15 s.
            options.drainSeconds = 30
            try await untilShutdown([testWorker(url: url, options: options)]) {
                try await eventually("calls in flight") {
                    try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") > 0
                }
            }
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 0)
            // What was voted is done, and its jobs are gone; the rest waits, pending.
            let done = try await connection.count("SELECT count(*) FROM votes")
            #expect(done + (try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending'")) == 300)
            #expect(done < 300)
            #expect(try await connection.count("SELECT count(*) FROM workers WHERE stopped_at IS NOT NULL") == 1)
        }
    }
}
