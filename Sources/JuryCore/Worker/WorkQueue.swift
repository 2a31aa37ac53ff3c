/// A job a worker holds under a lease.
public struct ClaimedJob: Sendable {
    public let id: Int64
    public let runID: Int64
    public let exampleID: Int64
    public let judge: String
    /// Calls made for this job so far, this one included.
    public let attempts: Int
    public let externalID: String
    public let payload: JSONValue
}

/// What became of a job's call.
public enum JobOutcome: Sendable {
    case vote(ClaimedJob, JudgeAnswer, latencyMilliseconds: Int)
    /// Give the job back: to pending after `delaySeconds`, or failed for good when `final`.
    /// With `refund`, the attempt does not count (the judge was never really asked).
    case release(ClaimedJob, error: String, delaySeconds: Double, final: Bool, refund: Bool)

    public var job: ClaimedJob {
        switch self {
        case .vote(let job, _, _), .release(let job, _, _, _, _): return job
        }
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
    }

    public static func claim(
        _ wants: [Want], owner: String, leaseSeconds: Double, on connection: PostgresConnection
    ) async throws -> [ClaimedJob] {
        let rows = try await connection.query(
            """
            SELECT * FROM jury_claim_jobs(\(owner), \(leaseSeconds), \(wants.map(\.runID))::bigint[],
                                          \(wants.map(\.judge))::text[], \(wants.map(\.count))::int[])
            """)
        return try rows.map { row in
            let payload: String = try row.decode("payload")
            return ClaimedJob(
                id: try row.decode("job_id"), runID: try row.decode("run_id"), exampleID: try row.decode("example_id"),
                judge: try row.decode("judge"), attempts: try row.decode("attempts"),
                externalID: try row.decode("external_id"), payload: try JSONValue.parse(Array(payload.utf8)))
        }
    }

    /// Records votes and releases jobs; returns how many of the outcomes' jobs this owner still held.
    @discardableResult
    public static func record(_ outcomes: [JobOutcome], owner: String, on connection: PostgresConnection) async throws
        -> Int
    {
        var recorded = 0
        var votes: [(job: ClaimedJob, answer: JudgeAnswer, latency: Int)] = []
        var releases: [(job: ClaimedJob, error: String, delay: Double, final: Bool, refund: Bool)] = []
        for outcome in outcomes {
            switch outcome {
            case .vote(let job, let answer, let latency): votes.append((job, answer, latency))
            case .release(let job, let error, let delay, let final, let refund):
                releases.append((job, error, delay, final, refund))
            }
        }
        if !votes.isEmpty {
            let rows = try await connection.query(
                """
                SELECT jury_record_votes(\(owner), \(votes.map(\.job.id))::bigint[], \(votes.map(\.answer.label))::text[],
                    \(votes.map(\.answer.rationale))::text[], \(votes.map(\.latency))::int[],
                    \(votes.map(\.answer.promptTokens))::int[], \(votes.map(\.answer.completionTokens))::int[])
                """)
            recorded += rows.count
        }
        if !releases.isEmpty {
            let rows = try await connection.query(
                """
                SELECT jury_release_jobs(\(owner), \(releases.map(\.job.id))::bigint[], \(releases.map(\.error))::text[],
                    \(releases.map(\.delay))::float8[], \(releases.map(\.final))::boolean[],
                    \(releases.map(\.refund))::boolean[])
                """)
            recorded += rows.count
        }
        return recorded
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

    /// Extends this owner's leases; returns the jobs it still holds.
    public static func renewLeases(
        _ jobs: [Int64], owner: String, leaseSeconds: Double, on connection: PostgresConnection
    ) async throws -> Set<Int64> {
        guard !jobs.isEmpty else { return [] }
        let rows = try await connection.query(
            "SELECT jury_renew_leases(\(owner), \(leaseSeconds), \(jobs)::bigint[]) AS id")
        return Set(try rows.map { try $0.decode("id", as: Int64.self) })
    }

    /// Takes back jobs whose lease expired; returns how many.
    @discardableResult
    public static func reapExpiredLeases(on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT jury_reap_expired_leases() AS reaped")[0].decode("reaped")
    }
}
