import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// Recording votes notifies at most once a channel every 50 ms (039), and listeners woken by a
/// notification look again soon, for the work it stood for.
@Suite("Notifications")
struct NotificationTests {
    /// Votes for one job of the run's one judge: its example becomes ready.
    private func voteOnce(_ jury: Store, _ run: StoredRun) async throws {
        let job = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 1)], owner: "w", leaseSeconds: 60)
        try #require(job.count == 1)
        #expect(
            try await jury.record(
                [.vote(job[0], JudgeAnswer(label: "valid", rationale: nil), latencyMilliseconds: 1)], owner: "w"
            )
            .outcomes == 1)
    }

    /// Every notification that arrives until none has for `quiet`.
    private func received(_ listener: PostgresConnection, quiet: Duration = .milliseconds(500)) async throws -> Int {
        var count = 0
        while true {
            let batch = try await listener.waitForNotifications(timeout: quiet)
            if batch.isEmpty { return count }
            count += batch.filter { $0.channel == Channel.ready.rawValue }.count
        }
    }

    @Test(.freshDatabase) func recordsNotifyAtMostOnceAChannelEvery50Milliseconds() async throws {
        let url = try TestDatabase.url
        let (jury, run) = try await oneJudgeRun(url, examples: 4)
        let connection = try await connect(url)
        let listener = try await connect(url)
        try await listener.listen(Channel.ready.rawValue)

        // The first ready example is announced.
        try await voteOnce(jury, run)
        #expect(try await received(listener) == 1)
        // While the last notification is recent (here: stated to be), the next is left out.
        try await connection.query(
            "UPDATE notify_clock SET sent_at = clock_timestamp() + interval '1 hour' WHERE channel = 'jury_ready'")
        try await voteOnce(jury, run)
        #expect(try await received(listener) == 0)
        // Once it is older than 50 ms, the next ready example is announced again.
        try await connection.query("UPDATE notify_clock SET sent_at = clock_timestamp() - interval '51 milliseconds'")
        try await voteOnce(jury, run)
        #expect(try await received(listener) == 1)

        // A transaction that holds the clock does not hold up the others: they skip it.
        try await connection.query("UPDATE notify_clock SET sent_at = '-infinity'")
        try await connection.query("BEGIN")
        try await connection.query("SELECT 1 FROM notify_clock WHERE channel = 'jury_ready' FOR UPDATE")
        let recorder = Task { try await voteOnce(jury, run) }
        try await eventually("a record while another transaction holds the clock") {
            try await connection.count("SELECT count(*) FROM examples WHERE state = 'ready'") == 4
        }
        try await recorder.value
        try await connection.query("COMMIT")
        #expect(try await received(listener) == 0)
        try await expectCountsMatchTables(connection)
    }

    /// A reducer woken by a notification that found nothing looks again within 100 ms, not after
    /// its idle poll: examples made ready just after the notification, whose own was left out,
    /// are decided at once.
    @Test(.freshDatabase) func aReducerWokenByANotificationLooksAgainSoon() async throws {
        let url = try TestDatabase.url
        let (jury, run) = try await oneJudgeRun(url, examples: 1)
        let connection = try await connect(url)
        let reducer = Reducer(
            database: Database(conninfo: url), run: run.name, idlePollSeconds: 600, logger: TestDatabase.logger)
        try await untilShutdown([reducer]) {
            // The reducer has made its first pass and is asleep.
            try await eventually("the reducer to start") {
                try await connection.count("SELECT count(*) FROM workers WHERE role = 'reducer'") == 1
            }
            try await Task.sleep(for: .milliseconds(300))
            try await connection.notify(Channel.ready.rawValue)
            try await Task.sleep(for: .milliseconds(20))
            try await connection.query("UPDATE notify_clock SET sent_at = clock_timestamp() + interval '1 hour'")
            try await voteOnce(jury, run)
            try await eventually(timeout: 60, "the example decided well before the idle poll of 600 s") {
                try await connection.count("SELECT count(*) FROM verdicts") == 1
            }
        }
    }

    /// The same for a worker: woken by a notification that found no jobs, it claims again
    /// within 100 ms, not after its idle poll.
    @Test(.freshDatabase) func aWorkerWokenByANotificationLooksAgainSoon() async throws {
        try await withMockJudges([mockJudge("a")]) { baseURL, _ in
            let url = try TestDatabase.url
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["a"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 1), run: run.name, in: jury)
            let connection = try await connect(url)
            try await connection.query("UPDATE jobs SET run_after = now() + interval '1 hour'")
            var options = WorkerOptions()
            options.idlePollSeconds = 600
            let worker = testWorker(url: url, options: options)
            try await untilShutdown([worker]) {
                try await eventually("the worker to start") {
                    try await connection.count("SELECT count(*) FROM workers WHERE role = 'worker'") == 1
                }
                try await Task.sleep(for: .milliseconds(300))
                try await connection.notify(Channel.jobs.rawValue)
                try await Task.sleep(for: .milliseconds(20))
                try await connection.query("UPDATE jobs SET run_after = now()")
                try await eventually(timeout: 60, "the job claimed well before the idle poll of 600 s") {
                    try await connection.count("SELECT count(*) FROM votes") == 1
                }
            }
        }
    }
}
