import Foundation
import JuryBench
import JuryMockJudge
import JuryPostgres
import JuryTestSupport
import Testing

/// An API key goes to the provider in a header, and nowhere else.
@Suite("Secrets")
struct SecretTests {
    @Test(.freshDatabase) func anAPIKeyAppearsNowhereAfterARunWithFailures() async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first: swift build")
        let key = "sk-secret-\(UUID().uuidString)"
        // Every provider format, with 429s, 500s, garbage and a judge whose key is refused.
        let judges = [
            mockJudge("s-openai", seed: 61, errorRate: 0.2, rateLimitRate: 0.2, apiKey: key),
            mockJudge("s-anthropic", seed: 62, apiKey: key, faults: .init(garbageRate: 0.3)),
            mockJudge("s-gemini", seed: 63, rateLimitRate: 0.2, apiKey: key),
            mockJudge("s-refused", seed: 64, apiKey: key + "-other"),
        ]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let yaml = runYAML(
                models: ["s-openai", "s-anthropic", "s-gemini", "s-refused"], baseURL: baseURL, rule: "quorum",
                quorum: 3, apiKeyEnv: "SECRET_KEY", providers: ["openai", "anthropic", "gemini", "openai"])
            _ = try await createRun(yaml, in: store(url))
            try await enqueue(try writeCorpus(count: 40), run: "test", in: store(url))
            let log = scratchPath("worker.log")
            let worker = try Subprocess.spawn(
                binary, ["worker", "--log-level", "trace", "--drain-seconds", "1"],
                environment: ["DATABASE_URL": url, "SECRET_KEY": key, "PATH": "/usr/bin:/bin"], outputPath: log)
            // The three judges whose key works vote on everything; the fourth is stopped.
            try await eventually("the votes of the judges whose key works") {
                try await connection.count("SELECT count(*) FROM votes") == 120
            }
            // Not in the process's arguments while it runs.
            let arguments = try String(contentsOfFile: "/proc/\(worker.pid)/cmdline", encoding: .utf8)
            #expect(!arguments.contains(key))
            worker.kill(SIGTERM)
            #expect(await worker.exitStatus() == 0)
            #expect(try await connection.count("SELECT count(*) FROM jury_breakers WHERE judge = 'j4'") == 1)
            // Not in the logs, at the most detailed level.
            let logged = try String(contentsOfFile: log, encoding: .utf8)
            #expect(logged.contains("HTTP 401"))
            #expect(!logged.contains(key))
            // Not anywhere in the database: every text value of every table.
            let dump =
                try await connection.query(
                    """
                    SELECT string_agg(t::text, ' ') AS everything FROM (
                        SELECT to_jsonb(r)::text AS t FROM runs r UNION ALL SELECT to_jsonb(j)::text FROM jobs j
                        UNION ALL SELECT to_jsonb(v)::text FROM votes v UNION ALL SELECT to_jsonb(x)::text FROM verdicts x
                        UNION ALL SELECT to_jsonb(i)::text FROM invalid_answers i
                        UNION ALL SELECT to_jsonb(b)::text FROM judge_breakers b
                        UNION ALL SELECT to_jsonb(w)::text FROM workers w
                        UNION ALL SELECT to_jsonb(a)::text FROM account_limits a) all_rows
                    """)[0]["everything"] ?? ""
            #expect(dump.contains("s-refused") && !dump.contains(key))
        }
    }
}
