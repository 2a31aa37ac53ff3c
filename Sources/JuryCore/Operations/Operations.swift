import Foundation

/// What people do to runs: retry failures, pause, resume, cancel.
public enum Operations {
    /// Puts the failed jobs of a run (optionally of one batch or judge) back to pending; returns how many.
    public static func retryFailed(
        run: String, batch: String?, judge: String?, on connection: PostgresConnection
    ) async throws -> Int {
        let stored = try await Runs.find(run, on: connection)
        if let judge, stored.config.judge(named: judge) == nil {
            throw JuryError(
                .notFound,
                "run '\(run)' has no judge '\(judge)' (its judges: \(stored.config.judges.map(\.name).joined(separator: ", ")))"
            )
        }
        if let batch {
            let found = try await connection.query(
                "SELECT 1 FROM examples WHERE run_id = \(stored.id) AND batch = \(batch) LIMIT 1")
            if found.isEmpty { throw JuryError(.notFound, "run '\(run)' has no batch '\(batch)'") }
        }
        // In chunks, each its own short transaction: a retry of millions of jobs never holds
        // the locks that workers' lease renewals and reaping need for long.
        // Jobs that fail again while this runs are left for the next retry, so that it always ends.
        let failedNow: Int = try await connection.query(
            """
            SELECT count(*) AS n FROM jobs j JOIN examples e ON e.id = j.example_id
            WHERE j.run_id = \(stored.id) AND j.state = 'failed'
              AND (\(batch)::text IS NULL OR e.batch = \(batch)) AND (\(judge)::text IS NULL OR j.judge = \(judge))
            """)[0].decode("n")
        var total = 0
        while total < failedNow {
            let retried: Int = try await connection.query(
                "SELECT jury_retry_failed(\(stored.id), \(batch), \(judge), \(retryChunk)) AS retried")[0].decode(
                    "retried")
            total += retried
            if retried == 0 { break }
        }
        return total
    }

    /// Jobs put back to pending per transaction by `retryFailed`.
    static let retryChunk = 5000

    /// Sets a run's state: `paused` stops claims (in-flight calls finish), `active` resumes, `cancelled` stops for good.
    public static func setState(_ state: String, run: String, on connection: PostgresConnection) async throws {
        let stored = try await Runs.find(run, on: connection)
        if stored.state == "cancelled" && state != "cancelled" {
            throw JuryError(.conflict, "run '\(run)' was cancelled; it cannot be resumed")
        }
        try await connection.query("UPDATE runs SET state = \(state) WHERE id = \(stored.id)")
        if state == "active" { try await connection.notify(WorkQueue.jobsChannel) }
    }
}
