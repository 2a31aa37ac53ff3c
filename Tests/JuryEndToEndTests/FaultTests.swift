import Foundation
import JuryBench
import JuryDomain
import JuryMockJudge
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// Judges that misbehave the way real providers and real data sometimes do. Each test runs
/// the real `jury worker` and `jury reducer` processes over real HTTP until the run is
/// finished (every example decided), then stops them with SIGTERM.
@Suite("Faulty judges")
struct FaultTests {
    static let examples = 30
    static let drainSeconds = 2.0

    @Test func aNULInTheRationaleCostsNothing() async throws {
        let faulty = mockJudge("nul", seed: 51, faults: .init(rationale: "before\u{0}after"))
        try await finishRun(faulty) { (connection, jury) async throws in
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE rationale = 'beforeafter'") == 30)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
        }
    }

    @Test func tokenCountsBeyondInt32AreStored() async throws {
        let faulty = mockJudge("big", seed: 52, faults: .init(usageTokens: 5_000_000_000))
        try await finishRun(faulty) { (connection, jury) async throws in
            #expect(
                try await connection.count("SELECT count(*) FROM votes WHERE prompt_tokens = 5000000000") == 30)
        }
    }

    @Test func aRepeatedKeyInTheAnswerIsAWrongAnswer() async throws {
        let faulty = mockJudge("dup", seed: 53, faults: .init(content: #"{"label":"valid","label":"ambiguous"}"#))
        try await finishRun(faulty) { (connection, jury) async throws in
            // Its jobs failed after max_attempts, with a reason a person can read; the examples were decided.
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM jury_failures WHERE attempts = 3 AND last_error LIKE '%key \"label\" appears twice%'"
                )
                    == 30)
            #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE status = 'insufficient'") == 30)
            // Each of the 90 unreadable answers is kept once, as the judge gave it, for a person to read.
            #expect(
                try await connection.count(
                    #"SELECT count(*) FROM jury_invalid_answers WHERE judge = 'j1' AND answer = '{"label":"valid","label":"ambiguous"}'"#
                ) == 90)
        }
    }

    @Test func aStalledBodyIsATimeout() async throws {
        let faulty = mockJudge("stall", seed: 54, faults: .init(stallRate: 0.3))
        try await finishRun(faulty, timeout: 1) { (connection, jury) async throws in
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
            // Stalled calls were given up at the deadline and called again, using no attempts.
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE claims > 1") > 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE attempts > 1") == 0)
        }
    }

    @Test func aRetryAfterOfOneDayIsCappedAndReported() async throws {
        let faulty = mockJudge("slow", seed: 55, rateLimitRate: 0.3, faults: .init(retryAfter: "86400"))
        try await finishRun(faulty, maxRetryAfter: 0.5) { (connection, jury) async throws in
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
            #expect(try await connection.count("SELECT capped FROM judge_retry_caps WHERE judge = 'j1'") > 0)
            let status = try await StatusReport.load(run: "test", from: jury).text
            #expect(status.contains("longest asked: 86400s"), "\(status)")
        }
    }

    @Test func aThirtySecondBrownoutUsesUpNoAttempts() async throws {
        let faulty = mockJudge("brown", seed: 56, faults: .init(outageSeconds: 30, outageStatus: 503))
        try await finishRun(faulty, within: 240) { (connection, jury) async throws in
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE attempts > 1") == 0)
            #expect(try await connection.count("SELECT min(claims) FROM votes WHERE judge = 'j1'") > 1)
        }
    }

    @Test func aWorkerThatCannotRecordWhileStoppingGivesUpAndSaysSo() async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first: swift build")
        // A server of its own, to stop under the worker.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jury-gone-\(UUID())").path
        let url = try await startServerOnAPortOfItsOwn(directory)
        defer {
            _ = try? runScript(["stop", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await withMockJudges([mockJudge("gone", seed: 57, latency: 400)]) { baseURL, _ in
            let setup = try await store(url)
            try await setup.migrate(logger: TestDatabase.logger)
            let run = try await createRun(runYAML(models: ["gone"], baseURL: baseURL), in: setup)
            try await enqueue(try writeCorpus(count: 200), run: run.name, in: setup)
            let log = scratchPath("worker.log")
            let worker = try Subprocess.spawn(
                binary, ["worker", "--run", run.name, "--drain-seconds", "1", "--log-level", "error"],
                environment: ["DATABASE_URL": url, "PATH": "/usr/bin:/bin"], outputPath: log)
            let watcher = try await connect(url)
            try await eventually("calls in flight") {
                try await watcher.count("SELECT count(*) FROM jobs WHERE state = 'running'") > 10
            }
            try await postgresScript(["stop", directory])
            let stopping = ContinuousClock.now
            worker.kill(SIGTERM)
            #expect(await worker.exitStatus() == 1)
            // The drain time, the 5 s given to recording, and a wide margin: a fresh clone's first
            // test run shares 2 cores with the build's last jobs (9.1 s was seen). A worker that
            // hung would take the lease time or forever, not 20 s.
            #expect(ContinuousClock.now - stopping < .seconds(1 + 5 + 14))
            let output = try String(contentsOfFile: log, encoding: .utf8)
            #expect(output.contains("outcomes it could not record"), "\(output)")
            #expect(output.contains("will be redone once their leases expire"), "\(output)")
        }
    }

    /// Runs a panel of the faulty judge and a healthy one until every example is decided, checks
    /// that the processes stop on SIGTERM within the drain time, then runs `check`.
    ///
    /// `within` bounds a hang, not speed: alone a run takes about 11 s, beside the whole suite on
    /// two cores up to a minute.
    private func finishRun(
        _ faulty: MockJudgeConfig.Behaviour, timeout: Double? = nil, maxRetryAfter: Double = 600,
        within seconds: Double = 180, check: @Sendable (PostgresConnection, Store) async throws -> Void
    ) async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first: swift build")
        let healthy = mockJudge("healthy-\(faulty.model)", seed: faulty.seed + 100)
        try await withMockJudges([faulty, healthy]) { baseURL, _ in
            try await TestDatabase.withFresh { url in
                let connection = try await connect(url)
                let jury = try await store(url)
                let run = try await createRun(
                    runYAML(
                        models: [faulty.model, healthy.model], baseURL: baseURL, maxAttempts: 3,
                        maxRetryAfter: maxRetryAfter, timeout: timeout),
                    in: jury)
                try await enqueue(try writeCorpus(count: Self.examples), run: run.name, in: jury)
                let environment = ["DATABASE_URL": url, "PATH": "/usr/bin:/bin"]
                let worker = try Subprocess.spawn(
                    binary,
                    [
                        "worker", "--run", run.name, "--drain-seconds", String(Self.drainSeconds),
                        "--lease-seconds", "5", "--log-level", "critical",
                    ],
                    environment: environment)
                let reducer = try Subprocess.spawn(
                    binary, ["reducer", "--run", run.name, "--log-level", "critical"], environment: environment)
                do {
                    try await eventually(timeout: seconds, "every example decided") {
                        try await connection.count("SELECT count(*) FROM examples WHERE state = 'decided'")
                            == Self.examples
                    }
                } catch {
                    worker.kill(SIGKILL)
                    reducer.kill(SIGKILL)
                    throw error
                }
                let stopping = ContinuousClock.now
                worker.kill(SIGTERM)
                reducer.kill(SIGTERM)
                #expect(await worker.exitStatus() == 0)
                #expect(await reducer.exitStatus() == 0)
                // Exit 0 says every outcome was recorded within the drain time and the grace (what
                // --help promises). The clock only catches a hang: on a loaded machine the processes'
                // own shutdown took 13 s, so the bound leaves room for that.
                #expect(
                    ContinuousClock.now - stopping
                        < .seconds(Self.drainSeconds + WorkerOptions.recordingGraceSeconds + 30))
                #expect(try await connection.count("SELECT count(*) FROM verdicts") == Self.examples)
                #expect(
                    try await connection.count("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')") == 0)
                try await check(connection, jury)
            }
        }
    }
}

/// Once this server stops, another test's new server must not take its port, or the worker
/// would reconnect to that one. So its port lies above those the script picks by itself (from
/// 25432) and below Linux's ephemeral range (from 32768), where an outgoing connection may hold
/// any port; a port found taken means another draw.
private func startServerOnAPortOfItsOwn(_ directory: String) async throws -> String {
    var attempt = 1
    while true {
        do {
            return try await postgresScript(["start", directory, String(Int.random(in: 27_000..<32_700))])
        } catch  where attempt < 8 && "\(error)".contains("Address already in use") {
            attempt += 1
        }
    }
}
