import JuryDomain
import JuryPostgres

/// Purging finished runs, and the table sizes that show what it gave back.
extension Store {
    /// Size and rows of one of Jury's tables (`jury_table_sizes`).
    public struct TableSize: Sendable, Equatable {
        public let table: String
        public let tableBytes: Int64, indexBytes: Int64
        public let liveRows: Int64, deadRows: Int64
    }

    public func tableSizes() async throws -> [TableSize] {
        try await connection.query(
            "SELECT table_name, table_bytes, index_bytes, live_rows, dead_rows FROM jury_table_sizes"
        ).map { row in
            TableSize(
                table: try row.decode("table_name"), tableBytes: try row.decode("table_bytes"),
                indexBytes: try row.decode("index_bytes"), liveRows: try row.decode("live_rows"),
                deadRows: try row.decode("dead_rows"))
        }
    }

    /// Why the run cannot be purged yet (examples undecided, jobs running), or nil when it can.
    public func purgeRefusal(runID: Int64) async throws -> String? {
        try await connection.query("SELECT jury_purge_refusal(\(runID)) AS refusal")[0].decodeIfPresent("refusal")
    }

    /// Deletes the jobs of up to `limit` examples after `after`, in one transaction; returns the
    /// last example gone through, nil when none was left.
    public func purgeJobs(runID: Int64, after: Int64, limit: Int) async throws -> Int64? {
        try await connection.query("SELECT jury_purge_jobs(\(runID), \(after), \(limit)) AS last")[0]
            .decodeIfPresent("last")
    }

    /// Deletes up to `limit` examples of the run with all they hold, in one transaction, and the
    /// run once it is empty; returns how many examples went (0: the run is gone).
    public func purgeRun(runID: Int64, limit: Int) async throws -> Int {
        try await connection.query("SELECT jury_purge_run(\(runID), \(limit)) AS deleted")[0].decode("deleted")
    }

    /// Vacuums the tables a purge emptied, so that their space is reused (and empty pages at
    /// their end given back). It may take minutes on large tables: no statement timeout.
    public func vacuumQueueTables(everything: Bool) async throws {
        try await withoutStatementTimeout {
            for table in Self.purgedTables(everything: everything) {
                try await connection.execute(script: "VACUUM (ANALYZE) \(table)")
            }
        }
    }

    /// Rebuilds the indexes of the purged tables, without blocking writes (REINDEX ...
    /// CONCURRENTLY): VACUUM lets their emptied pages be reused, but only a rebuild returns
    /// them. It reads each table whole, other runs' rows included.
    public func reindexQueueTables(everything: Bool) async throws {
        try await withoutStatementTimeout {
            for table in Self.purgedTables(everything: everything) {
                try await connection.execute(script: "REINDEX TABLE CONCURRENTLY \(table)")
            }
        }
    }

    static func purgedTables(everything: Bool) -> [String] {
        ["jobs", "invalid_answers"] + (everything ? ["examples", "votes", "verdicts", "verdict_history"] : [])
    }

    /// Maintenance takes as long as the tables are large: the session's statement timeout is lifted meanwhile.
    private func withoutStatementTimeout(_ body: () async throws -> Void) async throws {
        try await connection.execute(script: "SET statement_timeout = 0")
        do {
            try await body()
        } catch {
            _ = try? await connection.execute(script: "RESET statement_timeout")
            throw error
        }
        try await connection.execute(script: "RESET statement_timeout")
    }
}
