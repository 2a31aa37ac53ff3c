import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// The roles of Schema/100_baseline/9_roles.sql, exercised through logins made members of them.
@Suite("Roles")
struct RoleTests {
    @Test(.freshDatabase) func workersAndReducersNeedNothingButTheWorkerRole() async throws {
        let judges = [mockJudge("r-a", seed: 1), mockJudge("r-b", seed: 2), mockJudge("r-c", seed: 3)]
        try await withMockJudges(judges, batches: .init(completeSeconds: 0.2)) { baseURL, _ in
            let url = try TestDatabase.url
            let owner = try await store(url)
            let connection = try await connect(url)
            let workerURL = try await login(inRole: "jury_worker", on: connection, url: url)
            // One run under unanimity (early decision, ordered judges) and one under Dawid-Skene,
            // which the reducer fits on the run's votes.
            let unanimous = try await createRun(
                runYAML(name: "roles-unanimous", models: ["r-a", "r-b", "r-c"], baseURL: baseURL, orders: [1, 1, 2]),
                in: owner)
            let fitted = try await createRun(
                runYAML(
                    name: "roles-ds", models: ["r-a", "r-b", "r-c"], baseURL: baseURL, rule: "dawid-skene",
                    consensus: ["threshold: 0.5"]), in: owner)
            // And one with a judge in batch mode, whose batches are sent a page of payloads at a time.
            let batched = try await createRun(
                runYAML(
                    name: "roles-batch", models: ["r-a", "r-b"], baseURL: baseURL,
                    providers: ["openai-compatible", "gemini"],
                    judgeSettings: [
                        nil, "api_key_env: ROLE_KEY, mode: batch, batch: { max_requests: 25, gather_seconds: 0.2 }",
                    ]),
                in: owner)
            try await enqueue(try writeCorpus(count: 60), run: unanimous.name, in: owner)
            try await enqueue(try writeCorpus(count: 30), run: fitted.name, in: owner)
            try await enqueue(try writeCorpus(count: 40), run: batched.name, in: owner)

            try await runWorkers(url: workerURL, environment: ["ROLE_KEY": "role-key"]) {
                try await owner.listRuns().allSatisfy { $0.state == .done }
            }
            #expect(try await connection.count("SELECT count(*) FROM verdicts") == 130)
            #expect(try await connection.count("SELECT count(*) FROM batches WHERE state = 'collected'") >= 2)
            #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE rule = 'dawid-skene'") == 30)
            try await expectCountsMatchTables(connection)

            // What else the worker role tries is refused.
            let worker = try await connect(workerURL)
            for statement in [
                "SELECT count(*) FROM jobs", "SELECT count(*) FROM verdicts", "SELECT count(*) FROM workers",
                "SELECT count(*) FROM run_counts", "SELECT count(*) FROM judge_spend",
                "SELECT count(*) FROM invalid_answers", "SELECT count(*) FROM jury_run_progress",
                "UPDATE runs SET state = 'paused'", "DELETE FROM votes", "UPDATE examples SET state = 'voting'",
                "INSERT INTO verdicts (example_id, run_id, label, status) SELECT id, run_id, 'valid', 'agreed' FROM examples LIMIT 1",
                "TRUNCATE jobs", "CREATE TABLE mine (id int)",
                "SELECT jury_delete_run(\(unanimous.id))", "SELECT jury_set_run_state(\(unanimous.id), 'cancelled')",
                "SELECT jury_retry_failed(\(unanimous.id), NULL, NULL, 10)",
                "SELECT jury_purge_run(\(unanimous.id), 10)", "SELECT jury_grant_roles()",
                "SELECT * FROM jury_import_labels(\(unanimous.id), ARRAY['ex-1'], ARRAY['valid'])",
            ] {
                await expectRefused(statement, on: worker)
            }
            #expect(try await worker.count("SELECT count(*) FROM runs") == 3)
            #expect(try await connection.count("SELECT count(*) FROM runs WHERE state = 'done'") == 3)
        }
    }

    /// The counter names that the count triggers compute for each changed row are inlined by the
    /// planner, which a SECURITY DEFINER function, or one with a setting of its own, never is.
    @Test(.freshDatabase) func theCounterNamesAreComputedInlineWhereverTheyAreCalled() async throws {
        let connection = try await connect(try TestDatabase.url)
        // Arguments that are neither constants (the call would be folded, inlined or not) nor
        // volatile (a function that reads an argument twice, as jury_verdict_counters does, is
        // inlined only when it is not): columns, as the triggers pass.
        for call in [
            "jury_batch_counter('ready', g::text)", "jury_job_counters('pending', g, NULL)",
            "jury_example_counters('voting', g)", "jury_verdict_counters(g::text, g::text, g::text)",
        ] {
            let plan = try await connection.query(
                "EXPLAIN VERBOSE SELECT \(unescaped: call) FROM generate_series(0, 2) AS g"
            ).map {
                try $0.decode("QUERY PLAN") as String
            }.joined(separator: "\n")
            #expect(!plan.contains("jury_"), "\(call) is called, not inlined: \(plan)")
        }
        // Nor can a later IMMUTABLE one be made a definer's.
        #expect(
            try await connection.count(
                """
                SELECT count(*) FROM pg_proc
                WHERE proname LIKE 'jury\\_%' AND provolatile = 'i' AND (prosecdef OR proconfig IS NOT NULL)
                """) == 0)
    }

    @Test(.freshDatabase) func theReaderRoleSeesTheViewsAndStatusButNoTable() async throws {
        try await withMockJudges([mockJudge("v-a", seed: 4), mockJudge("v-b", seed: 5)]) { baseURL, _ in
            let url = try TestDatabase.url
            let owner = try await store(url)
            let connection = try await connect(url)
            let run = try await createRun(runYAML(models: ["v-a", "v-b"], baseURL: baseURL), in: owner)
            try await enqueue(try writeCorpus(count: 20), run: run.name, in: owner)
            try await runWorkers(url: url) { try await owner.findRun(run.name).state == .done }

            let readerURL = try await login(inRole: "jury_reader", on: connection, url: url)
            let reader = try await connect(readerURL)
            let views: [String] = try await connection.query(
                """
                SELECT viewname FROM pg_views WHERE schemaname = current_schema() AND viewname LIKE 'jury\\_%'
                ORDER BY 1
                """
            ).map { try $0.decode("viewname") }
            #expect(views.count >= 18)
            for view in views {
                _ = try await reader.query(PostgresQuery(unsafeSQL: "SELECT * FROM \(view) LIMIT 5"))
            }
            // `jury status` and `jury run list` read as the reader.
            let readerStore = try await store(readerURL)
            let report = try await StatusReport.load(run: run.name, from: readerStore)
            #expect(report.runs.first?.decided == 20)
            #expect(try await readerStore.listRuns().first?.state == .done)

            // The query KEDA scales the workers with (deploy/kubernetes) runs as a reader.
            let manifest = try String(
                contentsOf: repositoryRoot.appendingPathComponent("deploy/kubernetes/keda-scaledobject.yaml"),
                encoding: .utf8)
            let line = try #require(manifest.split(separator: "\n").first { $0.contains("query: ") })
            let query = String(line.split(separator: "query: ", maxSplits: 1)[1]).trimmingCharacters(in: ["\""])
            let waiting = try await createRun(
                runYAML(name: "keda", models: ["v-a", "v-b"], baseURL: baseURL), in: owner)
            try await enqueue(try writeCorpus(count: 5), run: waiting.name, in: owner)
            #expect(try await reader.count(PostgresQuery(unsafeSQL: query)) == 10)

            for statement in [
                "SELECT count(*) FROM examples", "SELECT count(*) FROM votes", "SELECT count(*) FROM jobs",
                "SELECT count(*) FROM calibrations", "UPDATE runs SET state = 'paused'",
                "SELECT * FROM jury_claim_jobs('reader', 30, ARRAY[\(run.id)]::bigint[], ARRAY['j1'], ARRAY[1])",
                "SELECT jury_finish_runs()", "SELECT jury_compact_counts()",
            ] {
                await expectRefused(statement, on: reader)
            }
        }
    }

    /// Makes a login that is a member of `role`, with a password (in case the server asks for
    /// one); returns the URL it connects with.
    private func login(inRole role: String, on connection: PostgresConnection, url: String) async throws -> String {
        let name = "test_\(role)_\(UUID().uuidString.prefix(8).lowercased())"
        let password = UUID().uuidString
        try await connection.execute(script: "CREATE ROLE \(name) LOGIN PASSWORD '\(password)' IN ROLE \(role)")
        var components = try #require(URLComponents(string: url), "the role tests need a postgresql:// URL")
        components.user = name
        components.password = password
        return try #require(components.string)
    }

    private func expectRefused(
        _ statement: String, on connection: PostgresConnection, sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            _ = try await connection.query(PostgresQuery(unsafeSQL: statement))
            Issue.record("allowed: \(statement)", sourceLocation: sourceLocation)
        } catch let error as PostgresError {
            // 42501 insufficient_privilege.
            #expect(error.sqlState == "42501", "\(statement): \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(statement): \(error)", sourceLocation: sourceLocation)
        }
    }
}
