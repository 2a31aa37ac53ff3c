import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryStore
import JuryTestSupport
import Testing

/// What stops a judge or a run on every worker at once: a breaker, a budget.
@Suite("Fleet-wide stops")
struct FleetStopTests {
    @Test(.freshDatabase) func aBadKeyStopsTheJudgeOnEveryWorkerUntilResumed() async throws {
        let key = "sk-fleet-\(UUID().uuidString)"
        try await withMockJudges([mockJudge("b-a", seed: 21, apiKey: key), mockJudge("b-b", seed: 22)]) {
            baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(models: ["b-a", "b-b"], baseURL: baseURL, apiKeyEnv: "FLEET_KEY"), in: jury)
            try await enqueue(try writeCorpus(count: 40), run: run.name, in: jury)
            // Three workers with a wrong key: the first refusal stops the judge for all of them,
            // and the other judge goes on.
            try await runWorkers(
                url: url, run: run.name, workers: 3, concurrency: 4, environment: ["FLEET_KEY": "sk-wrong"]
            ) {
                try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2'") == 40
            }
            #expect(try await connection.count("SELECT count(*) FROM jury_breakers WHERE judge = 'j1'") == 1)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j1'") == 0)
            // At most the calls in flight when the breaker opened: not one per job.
            #expect(server.requestCount - 40 <= 12, "\(server.requestCount)")
            let status = try await StatusReport.load(run: run.name, from: jury).text
            #expect(status.contains("j1 STOPPED on every worker"), "\(status)")
            #expect(status.contains("HTTP 401") && !status.contains("sk-wrong"))
            // Fixed and resumed: the judge's jobs are done, and every example decided.
            try await jury.resumeJudge("j1", run: run.name)
            #expect(try await connection.count("SELECT count(*) FROM jury_breakers") == 0)
            try await runWorkers(url: url, run: run.name, environment: ["FLEET_KEY": key]) {
                try await connection.count("SELECT count(*) FROM verdicts") == 40
            }
            await #expect(throws: JuryError.self) { try await jury.resumeJudge("j1", run: run.name) }
            await #expect(throws: JuryError.self) { try await jury.resumeJudge("nobody", run: run.name) }
        }
    }

    @Test(.freshDatabase) func votesCostTheJudgesPricesAndARunStopsAtItsBudget() async throws {
        // 1,000 input tokens a call at $1,000 per million: one dollar a vote; 16 output tokens free.
        let priced = mockJudge("c-a", seed: 23, latency: 20, faults: .init(usageTokens: 1000))
        try await withMockJudges([priced]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let yaml =
                runYAML(models: ["c-a"], baseURL: baseURL)
                .replacingOccurrences(
                    of: "base_url: \"\(baseURL)\"",
                    with: "base_url: \"\(baseURL)\", price: { input_per_million: 1000, output_per_million: 0 }")
                + "\nbudget_usd: 5\n"
            let run = try await createRun(yaml, in: jury)
            try await enqueue(try writeCorpus(count: 30), run: run.name, in: jury)
            try await runWorkers(url: url, run: run.name, concurrency: 2) {
                let votes = try await connection.count("SELECT count(*) FROM votes")
                let running = try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'")
                return votes >= 5 && running == 0
            }
            let votes = try await connection.count("SELECT count(*) FROM votes")
            // Claims stop once the budget is spent; calls already in flight may still land.
            #expect(votes >= 5 && votes <= 7, "\(votes)")
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE cost_usd <> 1") == 0)
            #expect(try await connection.count("SELECT round(run_cost_usd)::int FROM jury_costs") == votes)
            let status = try await StatusReport.load(run: run.name, from: jury).text
            #expect(status.contains("of a budget of $5.00"), "\(status)")
        }
    }
}
