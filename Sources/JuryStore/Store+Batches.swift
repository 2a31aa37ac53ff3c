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
                   error_file_id
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
            errorFileID: try row.decodeIfPresent("error_file_id"))
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

    /// The provider batch the database has for `batch`, to tell a duplicate from the one recorded.
    public func providerID(of batch: ProviderBatch) async throws -> String? {
        try await connection.query("SELECT provider_id FROM batches WHERE id = \(batch.id)").first?
            .decodeIfPresent("provider_id")
    }

    /// What became of a batch at the provider, for `advanceBatch`.
    public struct BatchAdvance: Sendable {
        public var providerID: String?
        public var inputFileID: String?
        /// Each request's prompt hash, by job: set on submission.
        public var promptHashes: [Int64: String]?
        public var providerState: String?
        public var ended = false
        public var outputFileID: String?
        public var errorFileID: String?
        public var nextPollSeconds: Double
        public var error: String?

        public init(
            providerID: String? = nil, inputFileID: String? = nil, promptHashes: [Int64: String]? = nil,
            providerState: String? = nil, ended: Bool = false,
            outputFileID: String? = nil, errorFileID: String? = nil, nextPollSeconds: Double, error: String? = nil
        ) {
            self.providerID = providerID
            self.inputFileID = inputFileID
            self.promptHashes = promptHashes
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
                \(advance.promptHashes.map { Array($0.keys) })::bigint[],
                \(advance.promptHashes.map { Array($0.values) })::text[], \(advance.providerState), \(advance.ended), \(advance.outputFileID), \(advance.errorFileID),
                \(advance.nextPollSeconds), \(advance.error.map { Self.storable($0, limit: 500) })) AS held
            """)[0].decode("held")
    }

    /// Counts a chunk of collected results and renews the step; `finalState` closes the batch.
    /// Returns false when the step no longer holds.
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
