public import Foundation
public import JuryDomain
import JuryPostgres

/// Runs: created from their config, found by name, paused, resumed, cancelled, removed.
extension Store {
    /// Stores a run. Storing the same config again is a no-op; a different config under an
    /// existing name is an error (a run's judges and rule must not change under its votes).
    public func createRun(_ config: RunConfig) async throws -> (run: StoredRun, created: Bool) {
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let limits = AccountLimits(config)
        let id: Int64? = try await connection.query(
            """
            SELECT jury_create_run(\(config.name), \(json)::jsonb, \(limits.keys)::text[],
                                   \(limits.requestsPerSecond)::float8[], \(limits.tokensPerSecond)::float8[]) AS id
            """)[0].decodeIfPresent("id")
        if let id {
            return (StoredRun(id: id, name: config.name, config: config, state: .active), true)
        }
        let existing = try await findRun(config.name)
        guard existing.config == config else {
            throw JuryError(
                .conflict,
                "a run named '\(config.name)' already exists with a different config; give the new run another name")
        }
        return (existing, false)
    }

    /// The run with this name, or an error that says how to create it.
    public func findRun(_ name: String) async throws -> StoredRun {
        let rows = try await connection.query("SELECT id, name, config, state FROM runs WHERE name = \(name)")
        guard let row = rows.first else { throw JuryError.unknownRun(name) }
        return try Self.decodeRun(row)
    }

    /// Runs whose jobs workers should claim: the active ones, or only `name`.
    public func activeRuns(named name: String?) async throws -> [StoredRun] {
        let rows = try await connection.query(
            """
            SELECT id, name, config, state FROM runs
            WHERE state = \(RunState.active) AND (\(name)::text IS NULL OR name = \(name)) ORDER BY id
            """)
        return try rows.map(Self.decodeRun)
    }

    /// A run as `jury run list` shows it (the view `jury_runs`).
    public struct RunSummary: Sendable, Encodable {
        public let name: String
        public let state: RunState
        public let examples: Int, undecided: Int, decided: Int
        public let agreed: Int, disagreed: Int, insufficient: Int
        public let jobsFailed: Int
        public let costUSD: Double
        public let budgetUSD: Double?
        public let createdAt: Date
        /// When its last example was decided; nil while it has work left.
        public let finishedAt: Date?
    }

    /// Every run, oldest first, with its state, counts and spend.
    public func listRuns() async throws -> [RunSummary] {
        try await connection.query("SELECT v.* FROM jury_runs v JOIN runs r ON r.name = v.run ORDER BY r.id").map {
            row in
            RunSummary(
                name: try row.decode("run"), state: try row.decode("state"),
                examples: try row.decode("examples"), undecided: try row.decode("undecided"),
                decided: try row.decode("decided"), agreed: try row.decode("agreed"),
                disagreed: try row.decode("disagreed"), insufficient: try row.decode("insufficient"),
                jobsFailed: try row.decode("jobs_failed"), costUSD: try row.decode("cost_usd"),
                budgetUSD: try row.decodeIfPresent("budget_usd"), createdAt: try row.decode("created_at"),
                finishedAt: try row.decodeIfPresent("finished_at"))
        }
    }

    /// Marks done the active runs with no example left to decide; returns their names.
    public func finishRuns() async throws -> [String] {
        try await connection.query("SELECT jury_finish_runs() AS run").map { try $0.decode("run") }
    }

    /// Sets a run's state: `paused` stops claims (calls in flight finish), `active` resumes and
    /// wakes the workers, `cancelled` stops for good. A cancelled run cannot be resumed.
    public func setRunState(_ state: RunState, run name: String) async throws {
        let run = try await findRun(name)
        if run.state == .done && state != .cancelled {
            throw JuryError(
                .conflict,
                "run '\(name)' is done: every example is decided. Enqueue new examples or retry failed jobs to reopen it"
            )
        }
        let before: RunState? = try await connection.query(
            "SELECT jury_set_run_state(\(run.id), \(state)) AS before")[0].decodeIfPresent("before")
        if before == .cancelled && state != .cancelled {
            throw JuryError(.conflict, "run '\(name)' was cancelled; it cannot be resumed")
        }
    }

    /// Removes a run and everything it holds.
    public func deleteRun(id: Int64) async throws {
        try await connection.query("SELECT jury_delete_run(\(id))")
    }

    /// Whether the run has examples in this batch.
    public func batchExists(_ batch: String, runID: Int64) async throws -> Bool {
        try await !connection.query("SELECT 1 FROM examples WHERE run_id = \(runID) AND batch = \(batch) LIMIT 1")
            .isEmpty
    }

    /// Replaces a run's config with `config` where a live run can take it (see
    /// `RunConfig.changes(to:file:)`), keeping the one it replaces in `run_config_history`,
    /// and the accounts' limits it sets; returns the changes, one line a field. With `dryRun`,
    /// or when nothing changes, nothing is written. `file` names the config in errors.
    public func updateRun(_ name: String, to config: RunConfig, file: String, dryRun: Bool = false) async throws
        -> [String]
    {
        try await connection.transaction { connection in
            // Two updates of one run take turns; workers read the run meanwhile without waiting.
            let rows = try await connection.query(
                "SELECT id, name, config, state FROM runs WHERE name = \(name) FOR NO KEY UPDATE")
            guard let row = rows.first else { throw JuryError.unknownRun(name) }
            let run = try Self.decodeRun(row)
            let changes = try run.config.changes(to: config, file: file)
            guard !dryRun, !changes.isEmpty else { return changes }
            let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO run_config_history (run_id, config) SELECT id, config FROM runs WHERE id = \(run.id)
                """)
            try await connection.query("UPDATE runs SET config = \(json)::jsonb WHERE id = \(run.id)")
            let limits = AccountLimits(config)
            if !limits.keys.isEmpty {
                try await connection.query(
                    """
                    SELECT jury_define_limits(\(limits.keys)::text[], \(limits.requestsPerSecond)::float8[],
                                              \(limits.tokensPerSecond)::float8[])
                    """)
            }
            return changes
        }
    }

    /// Each judge's account limits, per second, as `jury_define_limits` takes them; judges on
    /// one key share them.
    private struct AccountLimits {
        let keys: [String]
        let requestsPerSecond: [Double?]
        let tokensPerSecond: [Double?]

        init(_ config: RunConfig) {
            let limited = config.judges.filter { $0.requestsPerMinute != nil || $0.tokensPerMinute != nil }
            keys = limited.map(\.limitKey)
            requestsPerSecond = limited.map { $0.requestsPerMinute.map { Double($0) / 60 } }
            tokensPerSecond = limited.map { $0.tokensPerMinute.map { Double($0) / 60 } }
        }
    }

    static func decodeRun(_ row: PostgresRow) throws -> StoredRun {
        let json: String = try row.decode("config")
        let config = try JSONDecoder().decode(RunConfig.self, from: Data(json.utf8))
        return StoredRun(
            id: try row.decode("id"), name: try row.decode("name"), config: config, state: try row.decode("state"))
    }
}
