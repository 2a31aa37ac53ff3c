import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

@Suite("Shared rate limits")
struct RateLimitTests {
    @Test(.freshDatabase) func permitsComeFromABucketOfOneSecondsWorth() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        // 6 a minute: a burst of one, then one every ten seconds.
        let run = try await createRun(
            runYAML(models: ["a", "b"], baseURL: "http://127.0.0.1:9/v1", requestsPerMinute: 6), in: jury)
        #expect(try await jury.takePermits(runID: run.id, judge: "j1", count: 5) == 1)
        #expect(try await jury.takePermits(runID: run.id, judge: "j1", count: 5) == 0)
        // Another judge has its own bucket; a permit given back can be taken again.
        #expect(try await jury.takePermits(runID: run.id, judge: "j2", count: 1) == 1)
        try await jury.returnPermits(runID: run.id, judge: "j1", count: 1)
        #expect(try await jury.takePermits(runID: run.id, judge: "j1", count: 5) == 1)
        // After a 429 with Retry-After, nobody gets a permit until that time has passed.
        #expect(try await jury.takePermits(runID: run.id, judge: "j2", count: 1) == 0)
        let fast = try await createRun(
            runYAML(name: "fast", models: ["a"], baseURL: "http://127.0.0.1:9/v1", requestsPerMinute: 60_000),
            in: jury)
        try await jury.holdPermits(runID: fast.id, judge: "j1", seconds: 30)
        #expect(try await jury.takePermits(runID: fast.id, judge: "j1", count: 10) == 0)
        // A judge without a limit gets what it asks for.
        let free = try await createRun(
            runYAML(name: "free", models: ["a"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
        #expect(try await jury.takePermits(runID: free.id, judge: "j1", count: 500) == 500)
    }

    @Test(.freshDatabase) func twoWorkersTogetherKeepAJudgeUnderItsLimit() async throws {
        try await withMockJudges([mockJudge("l-a", seed: 17)]) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            // 1,200 a minute: 20 a second, a burst of 20.
            let run = try await createRun(
                runYAML(models: ["l-a"], baseURL: baseURL, requestsPerMinute: 1200), in: jury)
            try await enqueue(try writeCorpus(count: 100), run: run.name, in: jury)
            let started = ContinuousClock.now
            try await runWorkers(url: url, run: run.name, workers: 2) {
                try await connection.count("SELECT count(*) FROM verdicts") == 100
            }
            // 20 at once, then the other 80 at 20 a second: at least 4 seconds, however fast the judge.
            #expect(ContinuousClock.now - started >= .seconds(3.9))
            #expect(server.requestCount == 100)
        }
    }
}
