public import JuryDomain
import JuryPostgres

extension Store {
    /// A pgbench script doing what a worker does to the queue, in Jury's own SQL: each
    /// transaction claims `perJudge` jobs of every judge of the run, then records a vote for each.
    public static func pgbenchScript(run: StoredRun, perJudge: Int) -> String {
        let judges = run.config.judges.map(\.name)
        let runs = "{" + judges.map { _ in String(run.id) }.joined(separator: ",") + "}"
        let judgeArray = "{" + judges.joined(separator: ",") + "}"
        let counts = "{" + judges.map { _ in String(perJudge) }.joined(separator: ",") + "}"
        let fill = { (value: String) in "array_fill(\(value), ARRAY[cardinality(':ids'::bigint[])])" }
        return """
            SELECT array_agg(job_id)::text AS ids, array_agg(claim)::text AS claims FROM jury_claim_jobs('pgbench-:client_id', 60, '\(runs)'::bigint[], '\(judgeArray)'::text[], '\(counts)'::int[]) \\gset
            SELECT count(*) FROM jury_record_votes('pgbench-:client_id', ':ids'::bigint[], ':claims'::int[], \(fill("'\(run.config.labels[0])'::text")), \(fill("'pgbench'::text")), \(fill("1")), \(fill("1::bigint")), \(fill("1::bigint")), NULL::bigint[], NULL::text[], NULL::text[], NULL::float8[], NULL::bigint[], NULL::bigint[]);

            """
    }
}

/// A backend of the server, and when the server started (seconds since 1970).
public struct ServerIdentity: Sendable {
    public var backendPID: Int32
    public var postmasterStartedAt: Double
}

/// Counters of the database's activity, for writes per vote: differences of two snapshots.
public struct DatabaseActivity: Sendable, Codable {
    public var tuplesInserted: Int64
    public var tuplesUpdated: Int64
    public var tuplesDeleted: Int64
    public var transactions: Int64
    /// WAL of the whole server (pg_stat_wal): records, full-page images and bytes.
    public var walRecords: Int64
    public var walFullPageImages: Int64
    public var walBytes: Int64

    public static func - (after: DatabaseActivity, before: DatabaseActivity) -> DatabaseActivity {
        DatabaseActivity(
            tuplesInserted: after.tuplesInserted - before.tuplesInserted,
            tuplesUpdated: after.tuplesUpdated - before.tuplesUpdated,
            tuplesDeleted: after.tuplesDeleted - before.tuplesDeleted,
            transactions: after.transactions - before.transactions, walRecords: after.walRecords - before.walRecords,
            walFullPageImages: after.walFullPageImages - before.walFullPageImages,
            walBytes: after.walBytes - before.walBytes)
    }
}

extension Store {
    /// The minimal queue pgbench runs as the floor: `jobs` pending jobs and an empty votes table,
    /// with the partial index any queue needs. Replaces an earlier one.
    public func createMinimalQueue(jobs: Int) async throws {
        try await dropMinimalQueue()
        try await connection.execute(
            script: """
                CREATE TABLE jury_bench_jobs (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    state text NOT NULL DEFAULT 'pending',
                    payload text NOT NULL
                );
                CREATE INDEX jury_bench_jobs_pending ON jury_bench_jobs (id) WHERE state = 'pending';
                CREATE TABLE jury_bench_votes (
                    job_id bigint NOT NULL,
                    label text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                """)
        try await connection.query(
            """
            INSERT INTO jury_bench_jobs (payload)
            SELECT 'customers who ordered more than ' || (i % 17) || ' times' FROM generate_series(1, \(jobs)) i
            """)
        try await connection.execute(script: "ANALYZE jury_bench_jobs")
    }

    public func dropMinimalQueue() async throws {
        try await connection.execute(script: "DROP TABLE IF EXISTS jury_bench_jobs, jury_bench_votes")
    }

    /// The activity counters now (this database's tuples and transactions; the server's WAL).
    public func databaseActivity() async throws -> DatabaseActivity {
        try await connection.query("SELECT pg_stat_clear_snapshot()")
        let row = try await connection.query(
            """
            SELECT d.tup_inserted, d.tup_updated, d.tup_deleted, d.xact_commit + d.xact_rollback AS transactions,
                   w.wal_records, w.wal_fpi, w.wal_bytes::bigint AS wal_bytes
            FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()
            """)[0]
        return DatabaseActivity(
            tuplesInserted: try row.decode("tup_inserted"), tuplesUpdated: try row.decode("tup_updated"),
            tuplesDeleted: try row.decode("tup_deleted"), transactions: try row.decode("transactions"),
            walRecords: try row.decode("wal_records"), walFullPageImages: try row.decode("wal_fpi"),
            walBytes: try row.decode("wal_bytes"))
    }

    /// This session's backend and when its server started: enough to find the server's
    /// processes when it runs on the same machine (the bench counts their CPU).
    public func serverIdentity() async throws -> ServerIdentity {
        let row = try await connection.query(
            """
            SELECT pg_backend_pid() AS pid, extract(epoch FROM pg_postmaster_start_time())::float8 AS started
            """)[0]
        return ServerIdentity(backendPID: try row.decode("pid"), postmasterStartedAt: try row.decode("started"))
    }

    /// Seconds from an example's last vote to its verdict, at the 50th and 99th percentiles, over a run.
    public func lastVoteToVerdictSeconds(runID: Int64) async throws -> (p50: Double, p99: Double)? {
        let row = try await connection.query(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY s) AS p99
            FROM (SELECT extract(epoch FROM v.decided_at - (SELECT max(x.created_at) FROM votes x
                                                             WHERE x.example_id = v.example_id))::float8 AS s
                  FROM verdicts v WHERE v.run_id = \(runID)) t
            WHERE s IS NOT NULL
            """)[0]
        guard let p50: Double = try row.decodeIfPresent("p50"), let p99: Double = try row.decodeIfPresent("p99") else {
            return nil
        }
        return (p50, p99)
    }
}

extension Store {
    /// Reads the first `limit` rows of one of Jury's views (named by the code, never by input).
    public func readView(_ view: String, limit: Int) async throws {
        precondition(view.allSatisfy { $0.isLetter || $0 == "_" }, "a view name is letters and underscores")
        try await connection.query("SELECT * FROM \(unescaped: view) LIMIT \(limit)")
    }

    /// Lets the statistics of other sessions reach `pg_stat_*` (they report at most once a second).
    public func refreshTableStatistics() async throws {
        try await Task.sleep(for: .milliseconds(1200))
        try await connection.query("SELECT pg_stat_clear_snapshot()")
    }
}

extension Store {
    /// The value of a setting on this store's session (`SHOW name`), for diagnostics.
    public func currentSetting(_ name: String) async throws -> String {
        try await connection.query("SELECT current_setting(\(name)) AS value")[0].decode("value")
    }
}

extension Store {
    /// For the scale test's page timings: every `every`-th verdict of the run becomes a panel's
    /// disagreement, as a real panel leaves a share of them (the bench's instant judges all
    /// agree), so that the review queue holds what it would. Through the counters' triggers,
    /// as any change of a verdict. Returns how many changed.
    @discardableResult
    public func makeDisagreements(runID: Int64, every: Int) async throws -> Int {
        try await connection.transaction { connection in
            try await connection.execute(script: "SET LOCAL statement_timeout = 0")
            return try await connection.query(
                """
                WITH changed AS (
                    UPDATE verdicts SET status = 'disagreed', label = NULL,
                                        outcome = CASE WHEN outcome IS NULL THEN NULL ELSE 'drop' END
                    WHERE run_id = \(runID) AND example_id % \(every) = 0 AND status = 'agreed'
                    RETURNING 1)
                SELECT count(*)::int AS n FROM changed
                """)[0].decode("n")
        }
    }
}
