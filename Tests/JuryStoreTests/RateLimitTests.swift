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
    @Test(.freshDatabase) func everyRunAndJudgeOnOneAccountShareItsBudget() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        // One request a minute: a burst of one, then one every sixty seconds, so that no permit
        // comes due while the test runs, however slowly a loaded machine runs it.
        let yaml = runYAML(models: ["a", "b"], baseURL: "http://127.0.0.1:9/v1", requestsPerMinute: 1)
        let run = try await createRun(yaml, in: jury)
        let account = try #require(run.config.judges.first?.limitKey)
        #expect(account == run.config.judges[1].limitKey)
        let first = try await jury.takePermits(limitKey: account, count: 5, tokensEach: 1)
        #expect(first.granted == 1)
        // The other judge, and another run, on the same account get nothing until the next is due.
        let second = try await jury.takePermits(limitKey: account, count: 5, tokensEach: 1)
        #expect(second.granted == 0 && second.waitSeconds > 0 && second.waitSeconds <= 60)
        _ = try await createRun(yaml.replacingOccurrences(of: "name: test", with: "name: other"), in: jury)
        #expect(try await jury.takePermits(limitKey: account, count: 1, tokensEach: 1).granted == 0)
        // A permit given back can be taken again.
        try await jury.adjustPermits(limitKey: account, requests: 1, tokens: 0)
        #expect(try await jury.takePermits(limitKey: account, count: 5, tokensEach: 1).granted == 1)
        // An account without limits grants what is asked, unless a 429 holds it.
        #expect(try await jury.takePermits(limitKey: "free", count: 500, tokensEach: 1).granted == 500)
        try await jury.holdAccount(limitKey: "free", seconds: 30)
        let held = try await jury.takePermits(limitKey: "free", count: 1, tokensEach: 1)
        #expect(held.granted == 0 && held.waitSeconds > 20 && held.waitSeconds <= 30)
        // The provider says nothing is left: the bucket holds no more, and refills at its pace...
        try await jury.adjustPermits(limitKey: account, requests: 1, tokens: 0)
        try await jury.observeAccount(
            limitKey: account, RateLimitObservation(remainingRequests: 0, requestsResetSeconds: 45))
        #expect(try await jury.takePermits(limitKey: account, count: 1, tokensEach: 1).granted == 0)
        // ...and an account with no limit of its own is held until the provider's reset.
        try await jury.observeAccount(
            limitKey: "unlimited", RateLimitObservation(remainingRequests: 0, requestsResetSeconds: 45))
        #expect(try await jury.takePermits(limitKey: "unlimited", count: 1, tokensEach: 1).waitSeconds > 30)
    }

    @Test(.freshDatabase) func tokensPerMinuteBoundCallsByTheirEstimatedSize() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        // 600 tokens a minute: 10 a second, a bucket of one second's worth, but at least one call's.
        let yaml = runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1")
            .replacingOccurrences(
                of: "base_url: \"http://127.0.0.1:9/v1\"",
                with: "base_url: \"http://127.0.0.1:9/v1\", tokens_per_minute: 600, limit_key: tpm")
        _ = try await createRun(yaml, in: jury)
        // 10 tokens there, calls of 4: two, and 2 tokens left, so 0.2 s until the next.
        let first = try await jury.takePermits(limitKey: "tpm", count: 5, tokensEach: 4)
        #expect(first.granted == 2 && first.waitSeconds > 0.15 && first.waitSeconds <= 0.25)
        // Calls that used 1 token instead of 4 give the rest back: one more call fits.
        try await jury.adjustPermits(limitKey: "tpm", requests: 0, tokens: 6)
        #expect(try await jury.takePermits(limitKey: "tpm", count: 5, tokensEach: 4).granted >= 2)
        // A call larger than a second's worth waits until its own size is there.
        let large = try await jury.takePermits(limitKey: "tpm", count: 1, tokensEach: 40)
        // (Unless the machine was so slow that its size refilled meanwhile.)
        #expect(large.granted == 1 || (large.waitSeconds > 0 && large.waitSeconds <= 4))
    }

    @Test(.freshDatabase) func twoWorkersTogetherKeepAJudgeUnderItsLimit() async throws {
        try await withMockJudges([mockJudge("l-a", seed: 17)]) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            // 1,200 a minute on the mock's account: 20 a second, a burst of 20.
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
