/// A job a worker holds under a lease.
public struct ClaimedJob: Sendable {
    public let id: Int64
    public let runID: Int64
    public let exampleID: Int64
    public let judge: String
    /// Counted attempts (wrong answers) so far, this call included.
    public let attempts: Int
    /// The claim's token: every write about this job names it, so a late outcome of an
    /// earlier claim never touches a newer one.
    public let claim: Int
    /// Consecutive failures that waiting cures before this claim, and for how long they have lasted.
    public let transientFailures: Int
    public let retryingSeconds: Double?
    public let externalID: String
    public let payload: JSONValue

    /// What the call policy needs to know of the job's past.
    public var history: CallPolicy.History {
        CallPolicy.History(attempts: attempts, transientFailures: transientFailures, retryingSeconds: retryingSeconds)
    }
}

/// What became of a job's call.
public enum JobOutcome: Sendable {
    case vote(ClaimedJob, JudgeAnswer, latencyMilliseconds: Int)
    /// Give the job back as the decision says: to pending after a delay, or failed for good.
    case release(ClaimedJob, error: String, CallPolicy.Decision)

    public var job: ClaimedJob {
        switch self {
        case .vote(let job, _, _), .release(let job, _, _): return job
        }
    }

    /// Gives a job back without using an attempt: the judge was never really asked.
    public static func returned(_ job: ClaimedJob, error: String, delaySeconds: Double = 0) -> JobOutcome {
        .release(job, error: error, CallPolicy.Decision(kind: .returned, delaySeconds: delaySeconds, final: false))
    }
}

/// The queue's transitions, each one statement calling a function from Schema/.
public enum WorkQueue {
    /// Notified when jobs become claimable (enqueue, retry, an expired lease).
    public static let jobsChannel = "jury_jobs"
    /// Notified when examples become ready for the reducer.
    public static let readyChannel = "jury_ready"

    /// How many jobs to claim of one judge in one run.
    public struct Want: Sendable, Equatable {
        public let runID: Int64
        public let judge: String
        public let count: Int

        public init(runID: Int64, judge: String, count: Int) {
            self.runID = runID
            self.judge = judge
            self.count = count
        }
    }

    public static func claim(
        _ wants: [Want], owner: String, leaseSeconds: Double, on connection: PostgresConnection
    ) async throws -> [ClaimedJob] {
        let rows = try await connection.query(
            """
            SELECT job_id, run_id, example_id, judge, attempts, claim, transient_failures,
                   extract(epoch FROM now() - retrying_since)::float8 AS retrying_seconds, external_id, payload
            FROM jury_claim_jobs(\(owner), \(leaseSeconds), \(wants.map(\.runID))::bigint[],
                                 \(wants.map(\.judge))::text[], \(wants.map(\.count))::int[])
            """)
        return try rows.map { row in
            let payload: String = try row.decode("payload")
            return ClaimedJob(
                id: try row.decode("job_id"), runID: try row.decode("run_id"), exampleID: try row.decode("example_id"),
                judge: try row.decode("judge"), attempts: try row.decode("attempts"), claim: try row.decode("claim"),
                transientFailures: try row.decode("transient_failures"),
                retryingSeconds: try row.decodeIfPresent("retrying_seconds"),
                externalID: try row.decode("external_id"), payload: try JSONValue.parse(Array(payload.utf8)))
        }
    }

    /// Records votes and releases jobs; returns how many of the outcomes' claims still held.
    ///
    /// Text is made storable first (no NUL, bounded length), so that what a judge answered can
    /// never make the statement fail.
    @discardableResult
    public static func record(_ outcomes: [JobOutcome], owner: String, on connection: PostgresConnection) async throws
        -> Int
    {
        var recorded = 0
        var votes: [(job: ClaimedJob, answer: JudgeAnswer, latency: Int)] = []
        var releases: [(job: ClaimedJob, error: String, decision: CallPolicy.Decision)] = []
        for outcome in outcomes {
            switch outcome {
            case .vote(let job, let answer, let latency): votes.append((job, answer, latency))
            case .release(let job, let error, let decision): releases.append((job, error, decision))
            }
        }
        if !votes.isEmpty {
            let rows = try await connection.query(
                """
                SELECT jury_record_votes(\(owner), \(votes.map(\.job.id))::bigint[], \(votes.map(\.job.claim))::int[],
                    \(votes.map { storable($0.answer.label, limit: 200) })::text[],
                    \(votes.map { $0.answer.rationale.map { storable($0, limit: 2000) } })::text[],
                    \(votes.map { Int(clamping: Int32(clamping: $0.latency)) })::int[],
                    \(votes.map(\.answer.promptTokens))::bigint[], \(votes.map(\.answer.completionTokens))::bigint[])
                """)
            recorded += rows.count
        }
        if !releases.isEmpty {
            let rows = try await connection.query(
                """
                SELECT jury_release_jobs(\(owner), \(releases.map(\.job.id))::bigint[],
                    \(releases.map(\.job.claim))::int[], \(releases.map(\.decision.kind.rawValue))::text[],
                    \(releases.map { storable($0.error, limit: 500) })::text[],
                    \(releases.map(\.decision.delaySeconds))::float8[], \(releases.map(\.decision.final))::boolean[],
                    \(releases.map(\.decision.cappedRetryAfter))::float8[])
                """)
            recorded += rows.count
        }
        return recorded
    }

    /// Text PostgreSQL can store: without NUL, and at most `limit` characters.
    static func storable(_ text: String, limit: Int) -> String {
        let clean = text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "") : text
        return clean.count > limit ? String(clean.prefix(limit)) : clean
    }

    /// Takes up to `count` permits to call a judge under its shared rate limit; returns how many it got.
    public static func takePermits(runID: Int64, judge: String, count: Int, on connection: PostgresConnection)
        async throws -> Int
    {
        try await connection.query("SELECT jury_take_permits(\(runID), \(judge), \(count)) AS granted")[0]
            .decode("granted")
    }

    /// Gives back permits that were taken but not used.
    public static func returnPermits(runID: Int64, judge: String, count: Int, on connection: PostgresConnection)
        async throws
    {
        try await connection.query("SELECT jury_return_permits(\(runID), \(judge), \(count))")
    }

    /// Stops every worker from calling a judge for `seconds`, after the provider answered 429.
    public static func holdPermits(runID: Int64, judge: String, seconds: Double, on connection: PostgresConnection)
        async throws
    {
        try await connection.query("SELECT jury_hold_permits(\(runID), \(judge), \(seconds))")
    }

    /// Extends the leases of these claims; returns the jobs whose claim still holds.
    public static func renewLeases(
        _ jobs: [(id: Int64, claim: Int)], owner: String, leaseSeconds: Double, on connection: PostgresConnection
    ) async throws -> Set<Int64> {
        guard !jobs.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            SELECT jury_renew_leases(\(owner), \(leaseSeconds), \(jobs.map(\.id))::bigint[],
                                     \(jobs.map(\.claim))::int[]) AS id
            """)
        return Set(try rows.map { try $0.decode("id", as: Int64.self) })
    }

    /// Takes back jobs whose lease expired; returns how many.
    ///
    /// It waits at most `lockTimeout` for the examples it must lock, so that a long transaction
    /// elsewhere (a large retry) delays the reaping, never the process that reaps.
    @discardableResult
    public static func reapExpiredLeases(lockTimeout: Duration = .seconds(2), on connection: PostgresConnection)
        async throws -> Int
    {
        try await connection.transaction { connection in
            try await connection.query("SELECT set_config('lock_timeout', \(String(lockTimeout.inMilliseconds)), true)")
            return try await connection.query("SELECT jury_reap_expired_leases() AS reaped")[0].decode("reaped")
        }
    }
}
