public import Foundation
public import JuryDomain
import JuryPostgres

/// Provider batches: opening them, handing their steps to workers, and moving them on.
extension Store {
    /// Opens a batch of `judge`'s pending jobs when one is due (full, or its oldest job has
    /// waited the gather time), its jobs leased to it for `leaseSeconds`; submitting it is a step
    /// due at once. Returns the batch's id, or nil when none is due.
    public func openBatch(runID: Int64, judge: String, settings: BatchSettings, leaseSeconds: Double) async throws
        -> Int64?
    {
        try await connection.query(
            """
            SELECT jury_open_batch(\(runID), \(judge), \(settings.maxRequests), \(settings.gatherSeconds),
                                   \(leaseSeconds)) AS batch
            """)[0].decodeIfPresent("batch")
    }

    /// Takes the next due step of a batch of these judges for `owner`: nil when none is due.
    public func takeBatchStep(owner: String, stepSeconds: Double, judges: [JudgeKey]) async throws -> ProviderBatch? {
        guard !judges.isEmpty else { return nil }
        let rows = try await connection.query(
            """
            SELECT id, run_id, judge, state, token::text AS token, provider_id, provider_state, output_file_id,
                   error_file_id, cancel_requested, created_at, steps
            FROM jury_take_batch_step(\(owner), \(stepSeconds), \(judges.map(\.runID))::bigint[],
                                      \(judges.map(\.judge))::text[])
            """)
        guard let row = rows.first else { return nil }
        let state: String = try row.decode("state")
        return ProviderBatch(
            id: try row.decode("id"), runID: try row.decode("run_id"), judge: try row.decode("judge"),
            state: ProviderBatch.State(rawValue: state) ?? .failed, token: try row.decode("token"),
            providerID: try row.decodeIfPresent("provider_id"),
            providerState: try row.decodeIfPresent("provider_state"),
            outputFileID: try row.decodeIfPresent("output_file_id"),
            errorFileID: try row.decodeIfPresent("error_file_id"), cancelRequested: try row.decode("cancel_requested"),
            createdAt: try row.decode("created_at"), steps: try row.decode("steps"))
    }

    /// The runs whose batches a worker serves: active ones, and those with batches still open.
    public func runsWithBatchWork(named name: String?) async throws -> [StoredRun] {
        try await connection.query("SELECT id, name, config, state FROM jury_runs_with_batch_work(\(name))")
            .map(Self.decodeRun)
    }

    /// The batch's jobs its claims still hold, with each request's prompt hash once submitted;
    /// their examples' payloads only when `payloads` (to build requests). Jobs whose payload
    /// cannot be read are failed at once, with the reason, and left out.
    public func batchJobs(_ batch: ProviderBatch, payloads: Bool) async throws -> [(
        job: ClaimedJob, promptHash: String?
    )] {
        let rows = try await connection.query(
            """
            SELECT job_id, run_id, example_id, judge, attempts, claim, transient_failures, retrying_seconds,
                   external_id, payload, prompt_hash
            FROM jury_batch_jobs(\(batch.id), \(payloads))
            """)
        var hashes: [Int64: String] = [:]
        for row in rows {
            if let hash: String = try row.decodeIfPresent("prompt_hash") { hashes[try row.decode("job_id")] = hash }
        }
        let (claimed, unreadable) = try Self.claimedJobs(rows)
        if !unreadable.isEmpty { try await record(unreadable, owner: batch.owner) }
        return claimed.map { ($0, hashes[$0.id]) }
    }

    /// `jobs` with their examples' payloads, those the batch still holds: a page of a batch
    /// being sent. A payload that cannot be read fails its job, as a claim would.
    public func batchPayloads(_ batch: ProviderBatch, of jobs: [ClaimedJob]) async throws -> [ClaimedJob] {
        let byID = Dictionary(jobs.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let rows = try await connection.query(
            "SELECT job_id, payload FROM jury_batch_payloads(\(batch.id), \(jobs.map(\.id))::bigint[])")
        var read: [ClaimedJob] = []
        var unreadable: [JobOutcome] = []
        for row in rows {
            guard let job = byID[try row.decode("job_id")] else { continue }
            let text: String = try row.decode("payload")
            do {
                read.append(job.with(payload: try JSONValue.parseStrict(text.utf8)))
            } catch {
                unreadable.append(Self.unreadablePayload(job, error))
            }
        }
        if !unreadable.isEmpty { try await record(unreadable, owner: batch.owner) }
        return read
    }

    /// What the run may still spend (its budget less its votes' cost and its open batches'
    /// reservations); nil when it has no budget.
    public func budgetLeft(runID: Int64) async throws -> Double? {
        try await connection.query("SELECT jury_budget_left(\(runID)) AS usd")[0].decodeIfPresent("usd")
    }

    /// Reserves `usd` of the run's budget for the batch `owner`'s step holds; false when the
    /// budget has not that much left (or the step no longer holds).
    public func reserveBudget(_ batch: ProviderBatch, owner: String, usd: Double) async throws -> Bool {
        try await connection.query("SELECT jury_reserve_batch_budget(\(batch.id), \(owner), \(usd)) AS reserved")[0]
            .decode("reserved")
    }

    /// Whether a batch of the database has this provider id already.
    public func isProviderBatchKnown(_ providerID: String) async throws -> Bool {
        try await connection.query("SELECT EXISTS (SELECT 1 FROM batches WHERE provider_id = \(providerID)) AS known")[
            0
        ]
        .decode("known")
    }

    /// The provider batch the database has for `batch`, to tell a duplicate from the one recorded.
    public func providerID(of batch: ProviderBatch) async throws -> String? {
        try await connection.query("SELECT provider_id FROM batches WHERE id = \(batch.id)").first?
            .decodeIfPresent("provider_id")
    }

    /// What became of a batch at the provider, for `advanceBatch`.
    public struct BatchAdvance: Sendable {
        public var providerID: String?
        public var inputFileID: String?
        /// The requests sent, in order: each job, under its claim, with its prompt hash. Set on
        /// submission; they replace the jobs the batch claimed.
        public var sent: [(job: Int64, claim: Int, promptHash: String)]?
        public var providerState: String?
        public var ended = false
        public var outputFileID: String?
        public var errorFileID: String?
        public var nextPollSeconds: Double
        public var error: String?

        public init(
            providerID: String? = nil, inputFileID: String? = nil,
            sent: [(job: Int64, claim: Int, promptHash: String)]? = nil,
            providerState: String? = nil, ended: Bool = false,
            outputFileID: String? = nil, errorFileID: String? = nil, nextPollSeconds: Double, error: String? = nil
        ) {
            self.providerID = providerID
            self.inputFileID = inputFileID
            self.sent = sent
            self.providerState = providerState
            self.ended = ended
            self.outputFileID = outputFileID
            self.errorFileID = errorFileID
            self.nextPollSeconds = nextPollSeconds
            self.error = error
        }
    }

    /// Moves the batch `owner`'s step holds on (submitted, polled, ended). Returns false when
    /// the step no longer holds: another worker took the batch over.
    public func advanceBatch(_ batch: ProviderBatch, owner: String, _ advance: BatchAdvance) async throws -> Bool {
        try await connection.query(
            """
            SELECT jury_batch_advanced(\(batch.id), \(owner), \(advance.providerID), \(advance.inputFileID),
                \(advance.sent?.map(\.job))::bigint[], \(advance.sent?.map(\.claim))::int[],
                \(advance.sent?.map(\.promptHash))::text[], \(advance.providerState), \(advance.ended), \(advance.outputFileID), \(advance.errorFileID),
                \(advance.nextPollSeconds), \(advance.error.map { Self.storable($0, limit: 500) })) AS held
            """)[0].decode("held")
    }

    /// Lets go of a step that failed: the batch is due again after `retrySeconds`, for any worker.
    public func batchStepFailed(_ batch: ProviderBatch, owner: String, retrySeconds: Double, error: String) async throws
    {
        try await connection.query(
            """
            SELECT jury_batch_step_failed(\(batch.id), \(owner), \(retrySeconds),
                                          \(Self.storable(error, limit: 500)))
            """)
    }

    /// Counts a chunk of collected results and renews the step; `finalState` closes the batch
    /// (one being built, or one that ended). Returns false when the step no longer holds.
    public func batchCollected(
        _ batch: ProviderBatch, owner: String, succeeded: Int, failed: Int, stepSeconds: Double,
        finalState: ProviderBatch.State? = nil
    ) async throws -> Bool {
        try await connection.query(
            """
            SELECT jury_batch_collected(\(batch.id), \(owner), \(succeeded), \(failed), \(stepSeconds),
                                        \(finalState?.rawValue)) AS held
            """)[0].decode("held")
    }
}

/// Provider batches as people see them: `jury batch`, `jury status` and /metrics.
extension Store {
    /// One run's and judge's batches: how many in each state, the requests still open, what
    /// they reserved, and how long the oldest submitted one has been at the provider.
    public struct BatchSummary: Sendable, Encodable {
        public let run: String
        public let judge: String
        public let byState: [String: Int]
        public let requestsOpen: Int
        public let reservedUSD: Double
        public let oldestSubmittedSeconds: Double
    }

    public func batchSummary(run: String? = nil) async throws -> [BatchSummary] {
        try await connection.query(
            "SELECT * FROM jury_batch_summary WHERE \(run)::text IS NULL OR run = \(run) ORDER BY run, judge"
        ).map { row in
            var byState: [String: Int] = [:]
            for state in ProviderBatch.State.allCases { byState[state.rawValue] = try row.decode(state.rawValue) }
            return BatchSummary(
                run: try row.decode("run"), judge: try row.decode("judge"), byState: byState,
                requestsOpen: try row.decode("requests_open"), reservedUSD: try row.decode("reserved_usd"),
                oldestSubmittedSeconds: try row.decode("oldest_submitted_seconds"))
        }
    }

    /// A batch as `jury batch list` and `show` print it (the view jury_batches).
    public struct BatchLine: Sendable, Encodable {
        public let id: Int64
        public let run: String
        public let judge: String
        public let state: String
        public let providerState: String?
        public let providerID: String?
        public let requests: Int, succeeded: Int, failed: Int
        public let reservedUSD: Double
        public let createdAt: Date
        public let submittedAt: Date?
        public let endedAt: Date?
        public let collectedAt: Date?
        public let expiresAt: Date
        public let cancelRequested: Bool
        public let lastError: String?
    }

    /// Batches, newest first: of one run, or one batch, or only those still open.
    public func batches(run: String?, id: Int64? = nil, openOnly: Bool = false, limit: Int = 100) async throws
        -> [BatchLine]
    {
        try await connection.query(
            """
            SELECT * FROM jury_batches
            WHERE (\(run)::text IS NULL OR run = \(run)) AND (\(id)::bigint IS NULL OR id = \(id))
              AND (NOT \(openOnly) OR state IN ('building', 'submitted', 'ended'))
            ORDER BY id DESC LIMIT \(limit)
            """
        ).map { row in
            BatchLine(
                id: try row.decode("id"), run: try row.decode("run"), judge: try row.decode("judge"),
                state: try row.decode("state"), providerState: try row.decodeIfPresent("provider_state"),
                providerID: try row.decodeIfPresent("provider_id"), requests: try row.decode("requests"),
                succeeded: try row.decode("succeeded"), failed: try row.decode("failed"),
                reservedUSD: try row.decode("reserved_usd"), createdAt: try row.decode("created_at"),
                submittedAt: try row.decodeIfPresent("submitted_at"), endedAt: try row.decodeIfPresent("ended_at"),
                collectedAt: try row.decodeIfPresent("collected_at"), expiresAt: try row.decode("expires_at"),
                cancelRequested: try row.decode("cancel_requested"), lastError: try row.decodeIfPresent("last_error"))
        }
    }

    /// Asks the workers to cancel an open batch at the provider; false when it is closed or unknown.
    public func requestBatchCancel(id: Int64) async throws -> Bool {
        try await connection.query("SELECT jury_request_batch_cancel(\(id)) AS requested")[0].decode("requested")
    }
}
