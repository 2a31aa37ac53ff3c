import Foundation
import JuryDomain
import JuryPostgres
import JuryStore
import JuryTestSupport
import Testing

@Suite("Runs")
struct RunTests {
    let valid = runYAML(models: ["a", "b", "c", "d"], baseURL: "http://127.0.0.1:8089/v1")

    @Test(.freshDatabase) func storingADifferentConfigUnderAnExistingNameIsRefused() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let config = try RunConfig.parse(yaml: valid, file: "run.yaml")
        #expect(try await jury.createRun(config).created)
        #expect(try await jury.createRun(config).created == false)
        var changed = config
        changed.maxAttempts = 9
        await #expect(throws: JuryError.self) { try await jury.createRun(changed) }
    }

    @Test(.freshDatabase) func aRunEndsOnceEveryExampleIsDecidedButNotWhileWorkIsBeingAdded() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(valid, in: jury)
        func addExample(_ id: String, state: String, on connection: PostgresConnection) async throws {
            try await connection.query(
                """
                INSERT INTO examples (run_id, batch, external_id, payload, state, jobs_total, jobs_open, votes_needed)
                VALUES (\(run.id), 'b', \(id), '{}', \(state), 4, 0, 4)
                """)
        }
        // A run with no examples yet has not ended.
        #expect(try await jury.finishRuns().isEmpty)
        try await addExample("x1", state: "decided", on: connection)

        // A transaction adding work holds the run's row: the finisher skips the run, and once
        // that transaction has committed, it sees the new example still voting.
        let adder = try await connect(url)
        try await adder.execute(script: "BEGIN")
        try await adder.query("SELECT jury_lock_run_for_work(\(run.id))")
        try await addExample("x2", state: "voting", on: adder)
        #expect(try await jury.finishRuns().isEmpty)
        // Adders share the lock: a second one goes ahead at once (its lock_timeout would stop a wait).
        let second = try await connect(url)
        try await second.execute(script: "BEGIN; SET LOCAL lock_timeout = '1s'")
        try await second.query("SELECT jury_lock_run_for_work(\(run.id))")
        try await adder.execute(script: "COMMIT")
        #expect(try await jury.finishRuns().isEmpty)
        try await second.execute(script: "COMMIT")
        #expect(try await jury.finishRuns().isEmpty)

        try await connection.query("UPDATE examples SET state = 'decided' WHERE external_id = 'x2'")
        #expect(try await jury.finishRuns() == [run.name])
        #expect(try await jury.finishRuns().isEmpty)
        let summary = try #require(try await jury.listRuns().first)
        #expect(summary.state == .done && summary.finishedAt != nil)
        #expect(summary.examples == 2 && summary.decided == 2 && summary.undecided == 0)

        // Pausing or resuming a done run means nothing; cancelling it still works.
        await #expect(throws: JuryError.self) { try await jury.setRunState(.paused, run: run.name) }
        await #expect(throws: JuryError.self) { try await jury.setRunState(.active, run: run.name) }
        try await jury.setRunState(.cancelled, run: run.name)
        #expect(try await jury.findRun(run.name).state == .cancelled)
    }
}
