import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// What `jury status` (and its --watch screen) reads beyond the counts: rates, ETA, tokens,
/// errors by class; checked against the tables.
@Suite("Status")
struct StatusTests {
    @Test(.freshDatabase) func ratesTimeLeftTokensAndErrorsByClassAgreeWithTheTables() async throws {
        let judges = [mockJudge("s-good", seed: 31, latency: 20), mockJudge("s-broken", seed: 32, errorRate: 1)]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(
                runYAML(models: ["s-good", "s-broken"], baseURL: baseURL, maxAttempts: 2, giveUpAfter: 1), in: jury)
            try await enqueue(try writeCorpus(count: 300), run: run.name, in: jury)

            // Stopped part way: some votes in the last minute, jobs left.
            try await runWorkers(url: url, run: run.name, concurrency: 4) {
                try await connection.count("SELECT count(*) FROM votes") >= 40
            }
            var report = try await StatusReport.load(run: run.name, from: jury)
            let good = try #require(report.judges.first { $0.judge == "j1" })
            let votes = try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j1'")
            let left = try await connection.count(
                "SELECT count(*) FROM jobs WHERE judge = 'j1' AND state IN ('pending', 'running', 'waiting')")
            #expect(good.remaining == left && left > 0)
            #expect(good.closed == votes)
            // Every vote landed within the last minute or two: the rate covers them all.
            #expect(good.votesPerMinute > 0)
            let eta = try #require(good.etaSeconds)
            #expect(abs(eta - Double(left) * 60 / good.votesPerMinute) <= max(2, eta * 0.02))
            // The broken judge has jobs left and votes nothing: the run's time left is unknown.
            #expect(report.runs[0].etaSeconds == nil)
            #expect(
                good.tokens
                    == (try await connection.count(
                        "SELECT sum(prompt_tokens + completion_tokens) FROM votes WHERE judge = 'j1'")))

            // To the end: the broken judge's jobs failed, and say why.
            try await runWorkers(url: url, run: run.name) { try await jury.findRun(run.name).state == .done }
            report = try await StatusReport.load(run: run.name, from: jury)
            // What is left is what the tables hold. Usually nothing; but an example that failures
            // made ready keeps the jobs of its other judges that were not claimed yet, pending for
            // good (a known gap, noted for the next change), and a loaded machine gets there.
            let leftAtEnd = try await connection.count(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running', 'waiting')")
            #expect(report.runs[0].remainingJobs == leftAtEnd)
            if leftAtEnd == 0 { #expect(report.runs[0].etaSeconds == 0) }
            #expect(StatusReport.eta(0, left: 0) == "done")
            let broken = try #require(report.judges.first { $0.judge == "j2" })
            let failed = try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j2' AND state = 'failed'")
            #expect(failed > 0)
            #expect(broken.errors.map(\.errorClass) == ["server error"])
            #expect(broken.errors.first?.failed == failed && broken.errors.first?.retrying == 0)
            #expect(report.text.contains("j2 errors now: server error 0 retrying, \(failed) failed"))

            // As JSON, for scripts.
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let json = try JSONValue.parse(try encoder.encode(report))
            #expect(json["runs"] != nil && json["judges"] != nil && json["live_workers"] != nil)
        }
    }

    /// The web app's charts of a run over time: a row a minute per active run, from the same
    /// counters, written once however many reducers ask, and thinned to what a chart draws.
    @Test(.freshDatabase) func runHistoryKeepsAMinuteARunOnceAndIsThinned() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        let run = try await createRun(runYAML(models: ["h"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
        try await enqueue(try writeCorpus(count: 30), run: run.name, in: jury)
        #expect(try await jury.recordRunHistory() == 1)
        // Asked again in the same minute, it writes nothing (in the next one, that minute's row).
        let again = try await jury.recordRunHistory()
        #expect(try await connection.count("SELECT count(DISTINCT minute) FROM run_history") == 1 + again)
        #expect(try await connection.count("SELECT count(*) FROM run_history") == 1 + again)
        let row = try await connection.query(
            "SELECT examples, decided, votes, cost_usd FROM run_history WHERE run_id = \(run.id) LIMIT 1")[0]
        #expect(row["examples"] == "30" && row["decided"] == "0" && row["votes"] == "0")
        // A week of minutes, as a long run leaves them: a chart gets 240 points, the last the latest.
        try await connection.query(
            """
            INSERT INTO run_history (run_id, minute, examples, decided, votes, cost_usd)
            SELECT \(run.id), first.minute - make_interval(mins => m), 30, 30 - m % 30, 0, 0
            FROM generate_series(1, 10080) AS m, (SELECT min(minute) AS minute FROM run_history) first
            """)
        let history = try await jury.runHistory(run: run.name)
        #expect(history.count == 240)
        #expect(zip(history, history.dropFirst()).allSatisfy { $0.minute < $1.minute })
        #expect(history.last?.decided == 0 && history.last?.examples == 30)
        // Paused and done runs grow no more.
        try await connection.query("UPDATE runs SET state = 'paused' WHERE id = \(run.id)")
        try await connection.query(
            "DELETE FROM run_history WHERE minute >= date_trunc('minute', now()) - interval '1 minute'")
        #expect(try await jury.recordRunHistory() == 0)
    }

    @Test func timeLeftReadsAsPeopleSayIt() {
        #expect(StatusReport.eta(nil, left: 5) == "-")
        #expect(StatusReport.eta(12.4, left: 5) == "12s")
        #expect(StatusReport.eta(250, left: 5) == "4m10s")
        #expect(StatusReport.eta(3720, left: 5) == "1h02m")
        #expect(StatusReport.eta(nil, left: 0) == "done")
    }
}
