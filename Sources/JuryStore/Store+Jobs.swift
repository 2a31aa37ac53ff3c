public import JuryDomain
import JuryPostgres

/// The queue's transitions for workers: claim, record, reap, and the shared rate limits.
extension Store {
    /// Claims pending jobs of the runs and judges asked, leased to `owner` for `leaseSeconds`.
    ///
    /// A job whose payload cannot be read is failed at once, with the reason, rather than
    /// returned: thrown, it would leave every job of the claim running under a live worker
    /// that knows nothing of them, and they would never come back.
    public func claim(_ requests: [ClaimRequest], owner: String, leaseSeconds: Double) async throws -> [ClaimedJob] {
        let rows = try await connection.query(
            prepared: """
                SELECT job_id, run_id, example_id, judge, attempts, claim, transient_failures,
                       extract(epoch FROM now() - retrying_since)::float8 AS retrying_seconds, external_id, payload
                FROM jury_claim_jobs(\(owner), \(leaseSeconds), \(requests.map(\.runID))::bigint[],
                                     \(requests.map(\.judge))::text[], \(requests.map(\.count))::int[])
                """)
        let (claimed, unreadable) = try Self.claimedJobs(rows)
        if !unreadable.isEmpty { try await record(unreadable, owner: owner) }
        return claimed
    }

    /// A job whose example's payload cannot be read: it fails, as no retry can read it.
    static func unreadablePayload(_ job: ClaimedJob, _ problem: any Error) -> JobOutcome {
        .release(
            job, error: "the example's payload cannot be read: \(problem)",
            CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: true))
    }

    /// Reads rows of claimed jobs (job_id, run_id, example_id, judge, attempts, claim,
    /// transient_failures, retrying_seconds, external_id, payload); those whose payload cannot be
    /// read come back as outcomes that fail them, with the reason.
    static func claimedJobs(_ rows: PostgresRows) throws -> (claimed: [ClaimedJob], unreadable: [JobOutcome]) {
        var claimed: [ClaimedJob] = []
        var unreadable: [JobOutcome] = []
        // An example's judges are claimed together: its payload is read once, not once per judge.
        var payloads: [Int64: Result<JSONValue, JSONSyntaxError>] = [:]
        for row in rows {
            let exampleID: Int64 = try row.decode("example_id")
            let parsed: Result<JSONValue, JSONSyntaxError>
            if let known = payloads[exampleID] {
                parsed = known
            } else {
                let text: String = try row.decode("payload")
                parsed = Result { () throws(JSONSyntaxError) in try JSONValue.parseStrict(text.utf8) }
                payloads[exampleID] = parsed
            }
            let job = ClaimedJob(
                id: try row.decode("job_id"), runID: try row.decode("run_id"), exampleID: exampleID,
                judge: try row.decode("judge"), attempts: try row.decode("attempts"), claim: try row.decode("claim"),
                transientFailures: try row.decode("transient_failures"),
                retryingSeconds: try row.decodeIfPresent("retrying_seconds"),
                externalID: try row.decode("external_id"), payload: (try? parsed.get()) ?? .null)
            if case .failure(let problem) = parsed {
                unreadable.append(unreadablePayload(job, problem))
            } else {
                claimed.append(job)
            }
        }
        return (claimed, unreadable)
    }

    /// Gives back the running jobs `owner` holds but does not track: those of a claim that
    /// committed while the connection lost its answer, or whose recorded outcome the database
    /// lost. Returns how many.
    public func returnUntrackedJobs(owner: String, tracked: [Int64]) async throws -> Int {
        let rows = try await connection.query(
            "SELECT jury_return_untracked_jobs(\(owner), \(tracked)::bigint[]) AS returned")
        return try rows[0].decode("returned")
    }

    /// What `record` stored: the outcomes whose claims still held, and which of them were votes.
    public struct Recorded: Sendable {
        public var outcomes = 0
        public var votedJobs: Set<Int64> = []

        public init() {}

        public static func + (lhs: Recorded, rhs: Recorded) -> Recorded {
            var sum = lhs
            sum.outcomes += rhs.outcomes
            sum.votedJobs.formUnion(rhs.votedJobs)
            return sum
        }
    }

    /// Records votes and releases jobs; returns what was stored (an outcome whose claim was
    /// taken back meanwhile is not).
    ///
    /// Text is made storable first (no NUL, bounded length), so that what a judge answered can
    /// never make the statement fail.
    @discardableResult
    public func record(_ outcomes: [JobOutcome], owner: String) async throws -> Recorded {
        var recorded = Recorded()
        var votes: [(job: ClaimedJob, answer: JudgeAnswer, latency: Int, promptHash: String?, cost: Double?)] = []
        var releases: [(job: ClaimedJob, error: String, decision: CallPolicy.Decision, answer: String?)] = []
        for outcome in outcomes {
            switch outcome {
            case .vote(let job, let answer, let latency, let hash, let cost):
                votes.append((job, answer, latency, hash, cost))
            case .release(let job, let error, let decision, let answer): releases.append((job, error, decision, answer))
            }
        }
        if !votes.isEmpty {
            let rows = try await connection.query(
                prepared: """
                    SELECT jury_record_votes(\(owner), \(votes.map(\.job.id))::bigint[], \(votes.map(\.job.claim))::int[],
                        \(votes.map { Self.storable($0.answer.label, limit: 200) })::text[],
                        \(votes.map { $0.answer.rationale.map { Self.storable($0, limit: 2000) } })::text[],
                        \(votes.map { $0.latency < 0 ? nil : Int(clamping: Int32(clamping: $0.latency)) })::int[],
                        \(votes.map(\.answer.promptTokens))::bigint[], \(votes.map(\.answer.completionTokens))::bigint[],
                        \(votes.map(\.answer.cachedTokens))::bigint[],
                        \(votes.map { $0.answer.modelVersion.map { Self.storable($0, limit: 200) } })::text[],
                        \(votes.map(\.promptHash))::text[], \(votes.map(\.cost))::float8[],
                        \(votes.map(\.answer.cacheWriteTokens))::bigint[],
                        \(votes.map(\.answer.thinkingTokens))::bigint[]) AS job_id
                    """)
            recorded.outcomes += rows.count
            recorded.votedJobs = Set(try rows.map { try $0.decode("job_id", as: Int64.self) })
        }
        // Unreadable answers are kept for people first, while the claims still hold.
        let invalid = releases.filter { $0.answer != nil && $0.decision.kind == .answer }
        if !invalid.isEmpty {
            try await connection.query(
                prepared: """
                    SELECT jury_record_invalid_answers(\(owner), \(invalid.map(\.job.id))::bigint[],
                        \(invalid.map(\.job.claim))::int[],
                        \(invalid.map { $0.answer.map { Self.storable($0, limit: JudgeError.answerLimit) } })::text[],
                        \(invalid.map { Self.storable($0.error, limit: 500) })::text[])
                    """)
        }
        if !releases.isEmpty {
            let rows = try await connection.query(
                prepared: """
                    SELECT jury_release_jobs(\(owner), \(releases.map(\.job.id))::bigint[],
                        \(releases.map(\.job.claim))::int[], \(releases.map(\.decision.kind.rawValue))::text[],
                        \(releases.map { Self.storable($0.error, limit: 500) })::text[],
                        \(releases.map(\.decision.delaySeconds))::float8[], \(releases.map(\.decision.final))::boolean[],
                        \(releases.map(\.decision.cappedRetryAfter))::float8[])
                    """)
            recorded.outcomes += rows.count
        }
        return recorded
    }

    /// Text PostgreSQL can store: without NUL, and at most `limit` characters.
    static func storable(_ text: String, limit: Int) -> String {
        let clean = text.utf8.contains(0) ? text.replacing("\u{0}", with: "") : text
        // No more bytes than the limit means no more characters: most texts skip counting them.
        guard clean.utf8.count > limit else { return clean }
        return clean.count > limit ? String(clean.prefix(limit)) : clean
    }

    /// Takes back jobs whose lease expired; returns how many.
    ///
    /// It waits at most `lockTimeout` for the examples it must lock, so that a long transaction
    /// elsewhere (a large retry) delays the reaping, never the process that reaps. The timeout
    /// holds for that wait alone, not for the commit or the connection's later statements.
    @discardableResult
    public func reapExpiredLeases(lockTimeout: Duration = .seconds(2)) async throws -> Int {
        try await connection.query(
            "SELECT jury_reap_expired_leases(p_lock_timeout_ms => \(Int(lockTimeout.inMilliseconds))) AS reaped"
        )[0].decode("reaped")
    }

    /// The failed jobs of a run, of one batch or judge when given.
    public func failedJobs(runID: Int64, batch: String?, judge: String?) async throws -> Int {
        try await connection.query(
            """
            SELECT count(*) AS n FROM jobs j JOIN examples e ON e.id = j.example_id
            WHERE j.run_id = \(runID) AND j.state = \(JobState.failed)
              AND (\(batch)::text IS NULL OR e.batch = \(batch)) AND (\(judge)::text IS NULL OR j.judge = \(judge))
            """)[0].decode("n")
    }

    /// Puts up to `limit` failed jobs back to pending with fresh attempts, in one short
    /// transaction; their examples' verdicts are withdrawn. Returns how many.
    public func retryFailed(runID: Int64, batch: String?, judge: String?, limit: Int) async throws -> Int {
        try await connection.query(
            "SELECT jury_retry_failed(\(runID), \(batch), \(judge), \(limit)) AS retried")[0].decode("retried")
    }
}
