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

    @Test func timeLeftReadsAsPeopleSayIt() {
        #expect(StatusReport.eta(nil, left: 5) == "-")
        #expect(StatusReport.eta(12.4, left: 5) == "12s")
        #expect(StatusReport.eta(250, left: 5) == "4m10s")
        #expect(StatusReport.eta(3720, left: 5) == "1h02m")
        #expect(StatusReport.eta(nil, left: 0) == "done")
    }
}
