import JuryDomain
public import JuryStore

/// What people do to runs: retry failures, purge finished runs.
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

    /// What a purge did, and the tables' sizes before and after.
    public struct PurgeReport: Sendable {
        public var examples = 0
        public var before: [Store.TableSize] = []
        public var after: [Store.TableSize] = []
    }

    /// Removes a finished run's jobs (with `everything`, the whole run), chunk by chunk, each
    /// chunk its own transaction, then vacuums (and with `reindex`, rebuilds the indexes).
    /// Refused, with the reason, while the run still has examples to decide (unless cancelled)
    /// or jobs running.
    public static func purge(
        run: String, everything: Bool, reindex: Bool = false, examplesPerTransaction: Int, in store: Store
    ) async throws -> PurgeReport {
        let stored = try await store.findRun(run)
        if let refusal = try await store.purgeRefusal(runID: stored.id) {
            throw JuryError(.conflict, "run '\(run)' cannot be purged yet: \(refusal)")
        }
        var report = PurgeReport(before: try await store.tableSizes())
        if everything {
            while true {
                let deleted = try await store.purgeRun(runID: stored.id, limit: examplesPerTransaction)
                if deleted == 0 { break }
                report.examples += deleted
            }
        } else {
            var after: Int64 = 0
            while let last = try await store.purgeJobs(runID: stored.id, after: after, limit: examplesPerTransaction) {
                after = last
            }
        }
        try await store.vacuumQueueTables(everything: everything)
        if reindex { try await store.reindexQueueTables(everything: everything) }
        report.after = try await store.tableSizes()
        return report
    }
}
