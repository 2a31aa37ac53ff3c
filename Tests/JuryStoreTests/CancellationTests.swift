import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Synchronization
import Testing

/// Bounds on how long stopping takes. deploy/local/test.sh runs this suite alone: beside the
/// other suites, on two cores, any bound in seconds would be a lottery.
@Suite("Cancellation")
struct CancellationTests {
    @Test(.freshDatabase) func aCancelledWorkerStopsWithinASecondAndClaimsNoMore() async throws {
        try await withMockJudges([mockJudge("c-a", seed: 31, latency: 200)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["c-a"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 400), run: run.name, in: jury)
            var options = WorkerOptions()
            options.concurrency = 16
            options.idlePollSeconds = 0.2
            let worker = testWorker(url: url, options: options)
            let task = Task { try await worker.run() }
            try await eventually("calls in flight") {
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") > 0
            }
            let cancelled = ContinuousClock.now
            task.cancel()
            _ = try? await task.value
            // Cancelled calls give up at once, their jobs are released, and the helpers end.
            #expect(ContinuousClock.now - cancelled < .seconds(1))
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 0)
            let claims = try await connection.count("SELECT sum(claims) FROM jobs")
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await connection.count("SELECT sum(claims) FROM jobs") == claims)
        }
    }

    @Test(.freshDatabase) func aCancelledTaskCancelsItsStatementOnTheServer() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let started = ContinuousClock.now
        let task = Task { try await connection.query("SELECT pg_sleep(30)") }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let error = await #expect(throws: PostgresError.self) { try await task.value }
        #expect(error?.sqlState == "57014")
        #expect(ContinuousClock.now - started < .seconds(5))
        // The connection is usable again at once.
        #expect(try await connection.count("SELECT 1") == 1)
    }

    @Test(.freshDatabase) func sessionsBoundTheirWaits() async throws {
        let url = try TestDatabase.url
        var settings = PostgresSettings()
        settings.statementTimeout = .milliseconds(300)
        let connection = try await PostgresConnection.connect(url, settings: settings, logger: TestDatabase.logger)
        let row = try await connection.query(
            """
            SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock,
                   current_setting('idle_in_transaction_session_timeout') AS idle, current_setting('jit') AS jit
            """)[0]
        #expect(row["statement"] == "300ms")
        #expect(row["lock"] == "30s")
        #expect(row["idle"] == "2min")
        #expect(row["jit"] == "off")
        // Behind a pooler (--poll) nothing is set on the session: the server's defaults hold.
        settings.setsSessionSettings = false
        let pooled = try await PostgresConnection.connect(url, settings: settings, logger: TestDatabase.logger)
        let defaults = try await pooled.query(
            "SELECT current_setting('statement_timeout') AS statement, current_setting('TimeZone') AS zone")[0]
        #expect(defaults["statement"] == "0")
        #expect(defaults["zone"] == "UTC")
        let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT pg_sleep(5)") }
        #expect(error?.sqlState == "57014")
        #expect(error?.isTransient == true)
    }

    @Test(.freshDatabase) func aValueHoldingNULIsRefusedBeforeItIsSent() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let error = await #expect(throws: PostgresError.self) {
            try await connection.query("SELECT \("a\u{0}b")::text, \(["x", "y\u{0}"])::text[]")
        }
        #expect(error?.code == .invalidParameter)
        #expect(error?.description.contains("$1") == true)
        #expect(error?.isDataError == true)
    }

    @Test(.freshDatabase) func dataErrorsKeepQuotedValuesOutOfTheDescription() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let error = await #expect(throws: PostgresError.self) {
            try await connection.query("SELECT \("private-words 5000000000")::int")
        }
        #expect(error?.sqlState == "22P02")
        #expect(error?.description.contains("private-words") == false)
        #expect(error?.debugDescription.contains("private-words") == true)
    }

    @Test func aDeadlineReturnsEvenWhenTheWorkIgnoresCancellation() async throws {
        let finished = Mutex(false)
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(200)) {
                // Waits on a thread of its own, deaf to cancellation, like a libpq call on a dead socket.
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().async {
                        sleep(8)
                        finished.withLock { $0 = true }
                        continuation.resume(returning: 1)
                    }
                }
            }
        }
        // The caller got control back while the work was still blocked.
        #expect(finished.withLock { $0 } == false)
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
    }
}
