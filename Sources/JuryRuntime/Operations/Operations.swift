import JuryDomain
public import JuryStore

/// What people do to runs: retry failures, pause, resume, cancel.
public enum Operations {
    /// Puts the failed jobs of a run (optionally of one batch or judge) back to pending; returns how many.
    public static func retryFailed(run: String, batch: String?, judge: String?, in store: Store) async throws -> Int {
        let stored = try await store.findRun(run)
        if let judge, stored.config.judge(named: judge) == nil {
            throw JuryError(
                .notFound,
                "run '\(run)' has no judge '\(judge)' (its judges: \(stored.config.judges.map(\.name).joined(separator: ", ")))"
            )
        }
        if let batch, try await !store.batchExists(batch, runID: stored.id) {
            throw JuryError(.notFound, "run '\(run)' has no batch '\(batch)'")
        }
        // In chunks, each its own short transaction: a retry of millions of jobs never holds
        // the locks that workers' lease renewals and reaping need for long.
        // Jobs that fail again while this runs are left for the next retry, so that it always ends.
        let failedNow = try await store.failedJobs(runID: stored.id, batch: batch, judge: judge)
        var total = 0
        while total < failedNow {
            let retried = try await store.retryFailed(runID: stored.id, batch: batch, judge: judge, limit: retryChunk)
            total += retried
            if retried == 0 { break }
        }
        return total
    }

    /// Jobs put back to pending per transaction by `retryFailed`.
    static let retryChunk = 5000
}
