public import JuryDomain
import JuryPostgres

/// Fleet-wide stops: a judge's breaker, and a run's budget.
extension Store {
    /// Opens a judge's breaker, so that no worker claims its jobs; true if this call opened it.
    @discardableResult
    public func openBreaker(runID: Int64, judge: String, reason: String, owner: String) async throws -> Bool {
        try await connection.query(
            """
            SELECT jury_open_breaker(\(runID), \(judge), \(Self.storable(reason, limit: 500)), \(owner)) AS opened
            """)[0].decode("opened")
    }

    /// Closes a judge's breaker (`jury judge resume`): workers claim its jobs again.
    public func resumeJudge(_ judge: String, run name: String) async throws {
        let run = try await findRun(name)
        guard run.config.judge(named: judge) != nil else {
            throw JuryError(
                .notFound,
                "run '\(name)' has no judge '\(judge)' (its judges: \(run.config.judges.map(\.name).joined(separator: ", ")))"
            )
        }
        let closed: Bool = try await connection.transaction { connection in
            let closed: Bool = try await connection.query(
                "SELECT jury_close_breaker(\(run.id), \(judge)) AS closed")[0].decode("closed")
            // The calls refused as malformed were the request's fault, not the examples'.
            if closed { try await connection.query("SELECT jury_refund_refused_requests(\(run.id), \(judge))") }
            return closed
        }
        if !closed { throw JuryError(.conflict, "judge '\(judge)' of run '\(name)' is not stopped") }
    }

    /// What stops claims fleet-wide now: open breakers, runs that spent their budget, and
    /// accounts held after a 429 (with the seconds the hold has left).
    public func fleetStops() async throws -> (
        breakers: Set<JudgeKey>, overBudget: Set<Int64>, heldAccounts: [String: Double]
    ) {
        let rows = try await connection.query(
            """
            SELECT run_id, judge FROM judge_breakers
            UNION ALL
            SELECT r.id, NULL FROM runs r
            WHERE r.state = 'active' AND (r.config ->> 'budget_usd') IS NOT NULL AND NOT jury_run_within_budget(r.id)
            """)
        var breakers: Set<JudgeKey> = []
        var overBudget: Set<Int64> = []
        for row in rows {
            let runID: Int64 = try row.decode("run_id")
            if let judge: String = try row.decodeIfPresent("judge") {
                breakers.insert(JudgeKey(runID: runID, judge: judge))
            } else {
                overBudget.insert(runID)
            }
        }
        var held: [String: Double] = [:]
        for row in try await connection.query(
            """
            SELECT limit_key, extract(epoch FROM held_until - clock_timestamp())::float8 AS seconds
            FROM account_limits WHERE held_until > clock_timestamp()
            """)
        {
            held[try row.decode("limit_key")] = try row.decode("seconds")
        }
        return (breakers, overBudget, held)
    }
}
