import Foundation
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryStore
import JuryTestSupport
import Synchronization
import Testing

/// A judge whose every request the provider refuses stops on every worker, not the corpus.
@Suite("Refused requests")
struct RefusedRequestTests {
    @Test(.freshDatabase) func aJudgeSendingARefusedParameterStopsWithoutFailingAJob() async throws {
        let key = "sk-refused-\(UUID().uuidString)"
        let judges = [
            MockJudgeConfig.Behaviour(model: "claude-opus-5", seed: 61, accuracy: 1, apiKey: key),
            mockJudge("steady", seed: 62, apiKey: key),
        ]
        try await withMockJudges(judges) { baseURL, server in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            // The Claude judge sends a temperature, which generation-5 models refuse.
            let yaml = runYAML(
                models: ["claude-opus-5", "steady"], baseURL: baseURL, maxAttempts: 3, apiKeyEnv: "REFUSED_KEY",
                providers: ["anthropic", "openai"], consensus: ["early_decision: false"]
            ).replacingOccurrences(of: "model: claude-opus-5,", with: "model: claude-opus-5, parameters: { temperature: 0 },")
            let run = try await createRun(yaml, in: jury)
            try await enqueue(try writeCorpus(count: 100), run: run.name, in: jury)
            let fixed = try RunConfig.parse(
                yaml: yaml.replacingOccurrences(of: "parameters: { temperature: 0 }", with: "parameters: { max_tokens: 512 }"),
                file: "fixed.yaml")
            // One worker throughout: it stops the judge, then takes the fix without a restart.
            let fixedYet = Mutex(false)
            try await runWorkers(url: url, run: run.name, concurrency: 8, environment: ["REFUSED_KEY": key]) {
                if !fixedYet.withLock({ $0 }) {
                    let votes = try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j2'")
                    let stopped = try await connection.count("SELECT count(*) FROM judge_breakers WHERE judge = 'j1'")
                    guard votes == 100, stopped == 1 else { return false }
                    fixedYet.withLock { $0 = true }
                    try await checkTheStoppedJudge(refusedCalls: server.requestCount - 100)
                    // The judge is fixed on the live run; resuming it gives back the attempts the
                    // refused calls took.
                    let changes = try await jury.updateRun(run.name, to: fixed, file: "fixed.yaml")
                    #expect(
                        changes == [
                            "judges[j1].parameters.max_tokens: (none) -> 512",
                            "judges[j1].parameters.temperature: 0 -> (none)",
                        ], "\(changes)")
                    #expect(try await connection.count("SELECT count(*) FROM jury_run_config_history") == 1)
                    #expect(try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j1' AND attempts > 0") > 0)
                    try await jury.resumeJudge("j1", run: run.name)
                    #expect(try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j1' AND attempts > 0") == 0)
                }
                return try await connection.count("SELECT count(*) FROM verdicts") == 100
            }
            // Every example decided, each refused job voted at its first counted attempt.
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j1' AND attempts = 1") == 100)
            #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)

            @Sendable func checkTheStoppedJudge(refusedCalls: Int) async throws {
                // The other judge went on; the refused one was called a handful of times, not 100 x 3.
                #expect(
                    refusedCalls >= MalformedRequests.streakThatStops
                        && refusedCalls <= 8 + MalformedRequests.streakThatStops, "\(refusedCalls) calls")
                #expect(try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j1' AND state = 'failed'") == 0)
                #expect(
                    try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j1' AND state = 'pending'") == 100)
                // The breaker and jury status give the provider's own words.
                let reason = try await connection.query("SELECT reason FROM jury_breakers")[0]["reason"] ?? ""
                #expect(reason.contains("malformed") && reason.contains("temperature"), "\(reason)")
                let status = try await StatusReport.load(run: run.name, from: jury).text
                #expect(status.contains("j1 STOPPED on every worker") && status.contains("temperature"), "\(status)")
            }
        }
    }

    @Test(.freshDatabase) func examplesTheProviderCannotTakeFailAndTheJudgeGoesOn() async throws {
        // One example in twenty is refused with a 400 every time (too long for the model).
        let judges = [mockJudge("picky", seed: 63, faults: .init(badRequestRate: 0.05))]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["picky"], baseURL: baseURL, maxAttempts: 2), in: jury)
            try await enqueue(try writeCorpus(count: 200), run: run.name, in: jury)
            // The run ends on the refused examples alone, tried again and again: no streak then.
            try await runWorkers(url: url, run: run.name, concurrency: 8) {
                try await connection.count("SELECT count(*) FROM verdicts") == 200
            }
            #expect(try await connection.count("SELECT count(*) FROM judge_breakers") == 0)
            let failed = try await connection.count(
                "SELECT count(*) FROM jobs WHERE state = 'failed' AND last_error LIKE 'bad request:%prompt is too long%'")
            let votes = try await connection.count("SELECT count(*) FROM votes")
            #expect(failed > 0 && failed + votes == 200, "\(failed) failed, \(votes) votes")
        }
    }

    @Test func refusalsOfOneExampleOrBrokenByAnAnswerDoNotStopTheJudge() {
        let key = JudgeKey(runID: 1, judge: "j")
        var streak = MalformedRequests()
        func refused(_ key: JudgeKey, _ example: Int64, first: Bool = true) -> Bool {
            streak.refused(key, example: example, firstAttempt: first) != nil
        }
        // The same example refused again and again is that example's failure.
        for _ in 0..<10 { #expect(!refused(key, 7)) }
        streak.accepted(key)
        // Examples tried before (the end of a run, say) do not make a streak.
        for example in Int64(20)...40 { #expect(!refused(key, example, first: false)) }
        // Different examples, with an answer between: no streak.
        for example in Int64(1)...4 { #expect(!refused(key, example)) }
        streak.accepted(key)
        for example in Int64(10)...13 { #expect(!refused(key, example)) }
        #expect(!refused(JudgeKey(runID: 2, judge: "j"), 99))
        // A judge that answered under its settings needs the longer streak.
        for example in Int64(100)..<Int64(100 + MalformedRequests.streakThatStopsAJudgeThatAnswered - 5) {
            #expect(!refused(key, example))
        }
        #expect(refused(key, 1000))
        // New settings: the judge has not answered under them, the short streak stops it again.
        streak.settingsChanged(runID: 1)
        for example in Int64(1)...4 { #expect(!refused(key, example)) }
        #expect(refused(key, 5))
        #expect(!refused(JudgeKey(runID: 3, judge: "j"), 5))
    }
}
