public import JuryDomain
import JuryStore
import Logging

/// Builds the judge that sends a batch-mode judge's batches.
public typealias BatchJudgeFactory = @Sendable (JudgeConfig) throws -> any BatchJudge

/// Moves the batches of batch-mode judges along, one short step at a time: opens a batch when
/// one is due, uploads and submits it, polls it, and collects its results as votes.
///
/// Every step is taken under a step lease in the database, so any worker may take any step,
/// and one that dies in a step leaves the batch to the next worker once the lease lapses. The
/// batch's jobs stay leased to the batch meanwhile. Results are recorded through the same
/// functions as online answers, fenced by the batch's claims: a collection repeated after a
/// crash records nothing twice.
struct BatchDriver: Sendable {
    let id: String
    let store: Store
    let options: WorkerOptions
    let makeBatchJudge: BatchJudgeFactory
    let isStopping: @Sendable () -> Bool
    let logger: Logger

    /// A run's batch-mode judges this worker can call, with what their outcomes need.
    private struct Served {
        let run: StoredRun
        let renderer: PromptRenderer
        let policy: CallPolicy
        let judges: [String: any BatchJudge]
    }

    /// How long a step is a worker's own: enough to upload or read a large file.
    static let stepSeconds: Double = 900
    /// Results recorded in one go.
    static let chunk = 500
    /// Payloads read at a time while a batch is written.
    static let pageSize = 1000
    /// How long a batch waits after its submission failed in a way that waiting cures.
    static let submitRetrySeconds: Double = 60
    /// How long a batch waits after a step failed (the database, the provider's answer).
    static let stepRetrySeconds: Double = 30

    func run() async {
        let stale = BatchInputWriter.removeStale(olderThan: 3600)
        if stale > 0 {
            logger.info("removed batch files left by workers that were killed", metadata: ["files": "\(stale)"])
        }
        var budgetShort = BudgetShort()
        var served: [Int64: Served] = [:]
        var loadedAt = ContinuousClock.now - .seconds(3600)
        while !isStopping() {
            do {
                if ContinuousClock.now - loadedAt > .seconds(5) {
                    served = try await load(previous: served)
                    loadedAt = .now
                }
                try await openDueBatches(served, skipping: budgetShort.runs)
                while !isStopping(), let batch = try await takeStep(served) {
                    guard let runServed = served[batch.runID], let judge = runServed.judges[batch.judge] else { break }
                    do {
                        if try await step(batch, judge: judge, served: runServed) == .budgetShort {
                            budgetShort.note(batch.runID, for: budgetWait)
                        }
                    } catch {
                        // The step is let go, for this worker or another to take again a little later.
                        logger.warning(
                            "a batch step failed; it is tried again",
                            metadata: ["batch": "\(batch.id)", JuryMetadata.error: "\(error)"])
                        try? await store.batchStepFailed(
                            batch, owner: id, retrySeconds: Self.stepRetrySeconds, error: "\(error)")
                    }
                }
            } catch {
                logger.warning(
                    "looking for batch work failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
            }
            await pause(seconds: options.batchPollSeconds)
        }
    }

    private func pause(seconds: Double) async {
        let until = ContinuousClock.now + .seconds(seconds)
        while !isStopping(), ContinuousClock.now < until {
            try? await Task.sleep(for: min(.milliseconds(250), until - .now))
        }
    }

    private func load(previous: [Int64: Served]) async throws -> [Int64: Served] {
        var served: [Int64: Served] = [:]
        for run in try await store.runsWithBatchWork(named: options.run) {
            if let known = previous[run.id], known.run.config == run.config {
                served[run.id] = known
                continue
            }
            var judges: [String: any BatchJudge] = [:]
            for judge in run.config.judges where judge.mode == .batch {
                do {
                    judges[judge.name] = try makeBatchJudge(judge)
                } catch {
                    logger.error(
                        "cannot send this judge's batches from this worker; they are left to others",
                        metadata: [
                            JuryMetadata.run: "\(run.name)", JuryMetadata.judge: "\(judge.name)",
                            JuryMetadata.error: "\(error)",
                        ])
                }
            }
            guard !judges.isEmpty else { continue }
            served[run.id] = Served(
                run: run, renderer: try PromptRenderer(config: run.config), policy: CallPolicy(config: run.config),
                judges: judges)
        }
        return served
    }

    /// How long a run whose budget could not pay for a batch waits before the next: a few polls,
    /// by when the batches that hold its reservations may have settled them.
    private var budgetWait: Double { max(1, options.batchPollSeconds * 5) }

    /// Runs whose budget could not pay for a batch lately: no batch of theirs is opened for a
    /// while, instead of one claimed and given back at every look.
    private struct BudgetShort {
        private var until: [Int64: ContinuousClock.Instant] = [:]

        var runs: Set<Int64> {
            Set(until.filter { $0.value > .now }.keys)
        }

        mutating func note(_ runID: Int64, for seconds: Double) {
            until[runID] = .now + .seconds(seconds)
        }
    }

    /// What a step came to, where the driver must know.
    enum StepResult {
        case done
        /// The run's budget could not pay for the batch.
        case budgetShort
    }

    /// Opens a batch for each judge that has one due (only active runs: the claim checks).
    private func openDueBatches(_ served: [Int64: Served], skipping: Set<Int64>) async throws {
        for runServed in served.values where runServed.run.state == .active && !skipping.contains(runServed.run.id) {
            for name in runServed.judges.keys.sorted() {
                guard let config = runServed.run.config.judge(named: name) else { continue }
                let settings = config.batchSettings
                // The jobs stay the batch's for its window, and an hour to collect it.
                if let batch = try await store.openBatch(
                    runID: runServed.run.id, judge: name, settings: settings,
                    leaseSeconds: settings.windowSeconds + 3600)
                {
                    logger.info(
                        "opened a batch",
                        metadata: [
                            JuryMetadata.run: "\(runServed.run.name)", JuryMetadata.judge: "\(name)",
                            "batch": "\(batch)",
                        ])
                }
            }
        }
    }

    private func takeStep(_ served: [Int64: Served]) async throws -> ProviderBatch? {
        let judges = served.values.flatMap { runServed in
            runServed.judges.keys.map { JudgeKey(runID: runServed.run.id, judge: $0) }
        }
        return try await store.takeBatchStep(owner: id, stepSeconds: Self.stepSeconds, judges: judges)
    }

    private func step(_ batch: ProviderBatch, judge: any BatchJudge, served: Served) async throws -> StepResult {
        switch batch.state {
        case .building:
            return try await submit(batch, judge: judge, served: served)
        case .submitted:
            guard let providerID = batch.providerID else { return .done }
            var status = try await status(of: providerID, judge: judge)
            if served.run.state == .cancelled || batch.cancelRequested, status.end == nil,
                !["cancelling", "canceling"].contains(status.providerState)
            {
                // `jury run cancel`, `jury batch cancel`: the batch stops at the provider; what it
                // answered is still recorded.
                logger.info("cancelling a batch at the provider", metadata: ["batch": "\(batch.id)"])
                try await judge.cancel(providerID)
                status = try await judge.status(of: providerID)
            }
            let held = try await store.advanceBatch(
                batch, owner: id,
                .init(
                    providerState: status.providerState, ended: status.end != nil, outputFileID: status.outputFileID,
                    errorFileID: status.errorFileID, nextPollSeconds: options.batchPollSeconds, error: status.error))
            if held, status.end != nil { try await collect(batch, status: status, judge: judge, served: served) }
        case .ended:
            guard let providerID = batch.providerID else { return .done }
            try await collect(
                batch, status: try await status(of: providerID, judge: judge), judge: judge, served: served)
        case .collected, .expired, .cancelled, .failed:
            break
        }
        return .done
    }

    /// The batch at the provider. One the provider says it does not have ended as failed, with
    /// nothing to collect: its jobs go back to the queue.
    private func status(of providerID: String, judge: any BatchJudge) async throws -> BatchStatus {
        do {
            return try await judge.status(of: providerID)
        } catch let error as JudgeError where error.code == .notFound {
            logger.warning(
                "the provider has no such batch; its jobs go back to the queue",
                metadata: ["provider_batch": "\(providerID)", JuryMetadata.error: "\(error)"])
            return BatchStatus(
                providerID: providerID, providerState: "not found", end: .failed,
                error: "the provider has no batch \(providerID): \(error)")
        }
    }

    // MARK: - Building and submitting

    private func submit(_ batch: ProviderBatch, judge: any BatchJudge, served: Served) async throws -> StepResult {
        // The jobs without their payloads: those are read a page at a time as the requests are
        // written, so a batch of 50,000 requests is never in memory whole.
        let jobs = try await store.batchJobs(batch, payloads: false).map(\.job)
        // A batch still building at its second step was left by a worker that died, maybe after
        // the provider made it: it is looked for there before it is sent again.
        if batch.steps > 1, let found = try await foundAtProvider(batch, judge: judge, requests: jobs.count) {
            logger.info(
                "found at the provider a batch whose submission was not recorded; it is kept",
                metadata: ["batch": "\(batch.id)", "provider_batch": "\(found)"])
            var sent: [(job: Int64, claim: Int, promptHash: String)] = []
            try await forEachPage(of: batch, jobs) { page in
                sent += page.map { ($0.id, $0.claim, RenderedPrompt($0, renderer: served.renderer).hash) }
            }
            _ = try await store.advanceBatch(
                batch, owner: id, .init(providerID: found, sent: sent, nextPollSeconds: options.batchPollSeconds))
            return .done
        }
        guard served.run.state == .active, !batch.cancelRequested, !jobs.isEmpty else {
            // A paused or cancelled run sends nothing, nor a batch someone cancelled; a batch whose
            // jobs were all taken back has nothing to send. Its jobs go back to the queue, without
            // using an attempt.
            let reason =
                batch.cancelRequested
                ? "its batch was cancelled (jury batch cancel) before it was sent"
                : "the run is \(served.run.state.rawValue): its batch was not sent"
            try await close(batch, .cancelled, returning: jobs, reason: reason)
            return .done
        }
        guard let config = served.run.config.judge(named: batch.judge) else { return .done }
        var sent: [(job: Int64, claim: Int, promptHash: String)] = []
        var reserved = 0.0
        var leftOut: [ClaimedJob] = []
        var sending: [ClaimedJob] = []
        let budgetLeft = try await store.budgetLeft(runID: served.run.id)
        let writer = try BatchInputWriter(token: batch.token)
        let input: BatchInput
        do {
            try await forEachPage(of: batch, jobs) { page in
                for job in page {
                    let prompt = RenderedPrompt(job, renderer: served.renderer)
                    // A batch is cut to what the run's budget has left: its cost is reserved before it is sent.
                    let estimate = config.estimatedCost(of: prompt.request, batched: true) ?? 0
                    if let budgetLeft, reserved + estimate > budgetLeft {
                        leftOut.append(job.withoutPayload)
                        continue
                    }
                    reserved += estimate
                    sending.append(job.withoutPayload)
                    sent.append((job.id, job.claim, prompt.hash))
                    try writer.append(
                        judge.entry(
                            for: BatchRequest(
                                customID: ProviderBatch.customID(job: job.id, claim: job.claim),
                                request: prompt.request)))
                }
            }
            input = try writer.finish()
        } catch {
            writer.discard()
            throw error
        }
        defer { input.remove() }
        let budgetReason = "the run's budget_usd has too little left for this request's batch"
        guard input.count > 0, try await store.reserveBudget(batch, owner: id, usd: reserved) else {
            logger.warning(
                "the run's budget has too little left for a batch; its jobs wait",
                metadata: [JuryMetadata.run: "\(served.run.name)", JuryMetadata.judge: "\(batch.judge)"])
            try await close(
                batch, .cancelled, returning: sending + leftOut, reason: budgetReason, delaySeconds: budgetWait)
            return .budgetShort
        }
        if !leftOut.isEmpty {
            try await store.record(
                leftOut.map { JobOutcome.returned($0, error: budgetReason, delaySeconds: budgetWait) },
                owner: batch.owner)
        }
        let submitted: (batchID: String, inputFileID: String?)
        do {
            submitted = try await judge.submit(input, token: batch.token)
        } catch let error as JudgeError where [.rateLimited, .server, .timeout, .network].contains(error.code) {
            // The provider may have made the batch all the same: it stays building, and the next
            // try looks for it by its token before it sends it again.
            logger.warning(
                "submitting a batch failed; it is tried again",
                metadata: ["batch": "\(batch.id)", JuryMetadata.error: "\(error)"])
            _ = try await store.advanceBatch(
                batch, owner: id, .init(nextPollSeconds: Self.submitRetrySeconds, error: "\(error)"))
            return .done
        } catch {
            try await submissionFailed(batch, jobs: sending, error: error, served: served)
            return .done
        }
        let held = try await store.advanceBatch(
            batch, owner: id,
            .init(
                providerID: submitted.batchID, inputFileID: submitted.inputFileID, sent: sent,
                nextPollSeconds: options.batchPollSeconds))
        logger.info(
            "submitted a batch",
            metadata: [
                JuryMetadata.run: "\(served.run.name)", JuryMetadata.judge: "\(batch.judge)", "batch": "\(batch.id)",
                "provider_batch": "\(submitted.batchID)", "requests": "\(input.count)",
            ])
        if !held, try await store.providerID(of: batch) != submitted.batchID {
            // Another worker took the step over and recorded a batch of its own: this one is a
            // duplicate. Its answers would be fenced anyway; cancelling it saves paying for them.
            logger.warning(
                "cancelling a duplicate batch",
                metadata: ["batch": "\(batch.id)", "provider_batch": "\(submitted.batchID)"])
            try? await judge.cancel(submitted.batchID)
        }
        return .done
    }

    /// The provider's batch that is this one, if the provider has one no other batch claims.
    private func foundAtProvider(_ batch: ProviderBatch, judge: any BatchJudge, requests: Int) async throws -> String? {
        for candidate in try await judge.find(token: batch.token, createdAfter: batch.createdAt, requests: requests)
        where try await !store.isProviderBatchKnown(candidate) {
            return candidate
        }
        return nil
    }

    /// Reads the batch's jobs' payloads a page at a time, for `body` to make their requests. A
    /// job the batch no longer holds is left out; one whose payload cannot be read has failed.
    private func forEachPage(of batch: ProviderBatch, _ jobs: [ClaimedJob], _ body: ([ClaimedJob]) async throws -> Void)
        async throws
    {
        var start = 0
        while start < jobs.count {
            let page = Array(jobs[start..<min(jobs.count, start + Self.pageSize)])
            try await body(try await store.batchPayloads(batch, of: page))
            start += page.count
        }
    }

    /// The provider refused the batch (a bad request, a bad key, an unknown model): its jobs go
    /// back as the call policy says for that error, and the batch closes as failed.
    private func submissionFailed(_ batch: ProviderBatch, jobs: [ClaimedJob], error: any Error, served: Served)
        async throws
    {
        logger.warning(
            "submitting a batch failed; its jobs go back to the queue",
            metadata: ["batch": "\(batch.id)", JuryMetadata.judge: "\(batch.judge)", JuryMetadata.error: "\(error)"])
        let outcomes = jobs.map { job in
            JobOutcome.release(job, error: "\(error)", served.policy.decide(error, history: job.history))
        }
        try await store.record(outcomes, owner: batch.owner)
        try await stopJudgeIfAsked(batch, by: outcomes)
        _ = try await store.batchCollected(
            batch, owner: id, succeeded: 0, failed: outcomes.count, stepSeconds: 0, finalState: .failed)
    }

    /// A failure no retry cures (a bad key, an unknown model, a used-up quota) stops the judge on
    /// every worker, as online: no batch of it is opened until `jury judge resume`. The call
    /// policy has said so already, in the outcomes' decisions.
    private func stopJudgeIfAsked(_ batch: ProviderBatch, by outcomes: [JobOutcome]) async throws {
        for case .release(_, let error, let decision, _) in outcomes where decision.haltsJudge {
            if try await store.openBreaker(runID: batch.runID, judge: batch.judge, reason: error, owner: id) {
                logger.error(
                    "the judge stops on every worker: retrying cannot cure this; fix it, then `jury judge resume`",
                    metadata: [JuryMetadata.judge: "\(batch.judge)", JuryMetadata.error: "\(error)"])
            }
            return
        }
    }

    /// Closes a batch that was never sent, its jobs given back without using an attempt.
    private func close(
        _ batch: ProviderBatch, _ state: ProviderBatch.State, returning jobs: [ClaimedJob], reason: String,
        delaySeconds: Double = 0
    ) async throws {
        if !jobs.isEmpty {
            try await store.record(
                jobs.map { JobOutcome.returned($0, error: reason, delaySeconds: delaySeconds) }, owner: batch.owner)
        }
        // Nothing was sent: nothing failed.
        _ = try await store.batchCollected(batch, owner: id, succeeded: 0, failed: 0, stepSeconds: 0, finalState: state)
    }

    // MARK: - Collecting

    private struct CollectionAbandoned: Error, CustomStringConvertible {
        let batch: Int64
        var description: String { "batch \(batch): another worker took over its collection" }
    }

    private func collect(_ batch: ProviderBatch, status: BatchStatus, judge: any BatchJudge, served: Served)
        async throws
    {
        guard let config = served.run.config.judge(named: batch.judge) else { return }
        var held: [Int64: (job: ClaimedJob, promptHash: String?)] = [:]
        for entry in try await store.batchJobs(batch, payloads: false) { held[entry.job.id] = entry }
        var answered: Set<Int64> = []
        var strangers = 0
        try await judge.results(
            of: status, labels: served.run.config.labels, chunk: Self.chunk,
            malformed: { line, why in
                logger.warning(
                    "a line of the batch's results is not a result; its request is given back",
                    metadata: ["batch": "\(batch.id)", "line": "\(line)", "why": "\(why)"])
            }
        ) { results in
            var outcomes: [JobOutcome] = []
            for result in results {
                guard let named = ProviderBatch.job(fromCustomID: result.customID), let entry = held[named.job],
                    entry.job.claim == named.claim, answered.insert(named.job).inserted
                else {
                    // Not a request of this batch, or one answered twice: nothing is recorded for it.
                    strangers += 1
                    continue
                }
                outcomes.append(outcome(of: result.outcome, for: entry, config: config, served: served))
            }
            let recorded = try await store.record(outcomes, owner: batch.owner)
            try await stopJudgeIfAsked(batch, by: outcomes)
            let voted = recorded.votedJobs.count
            guard
                try await store.batchCollected(
                    batch, owner: id, succeeded: voted, failed: recorded.outcomes - voted, stepSeconds: Self.stepSeconds
                )
            else { throw CollectionAbandoned(batch: batch.id) }
        }
        if strangers > 0 {
            logger.warning(
                "the batch's results named requests it did not hold, or named one twice; those lines were ignored",
                metadata: ["batch": "\(batch.id)", "lines": "\(strangers)"])
        }
        // What the provider never answered goes back without using an attempt.
        let reason =
            "the provider's batch \(status.providerID) ended (\(status.providerState)) without an answer for this job"
        let unanswered = try await store.batchJobs(batch, payloads: false).map {
            JobOutcome.returned($0.job, error: reason)
        }
        let returned = unanswered.isEmpty ? 0 : try await store.record(unanswered, owner: batch.owner).outcomes
        let final: ProviderBatch.State =
            switch status.end {
            case .expired?: .expired
            case .cancelled?: .cancelled
            case .failed?: .failed
            default: .collected
            }
        _ = try await store.batchCollected(
            batch, owner: id, succeeded: 0, failed: returned, stepSeconds: 0, finalState: final)
        logger.info(
            "collected a batch",
            metadata: [
                JuryMetadata.run: "\(served.run.name)", JuryMetadata.judge: "\(batch.judge)", "batch": "\(batch.id)",
                "state": "\(final.rawValue)", "unanswered": "\(returned)",
            ])
    }

    /// An answer in a batch becomes what the same answer online would: a vote at the batch
    /// price, or a release as the call policy says.
    private func outcome(
        of result: BatchResult.Outcome, for entry: (job: ClaimedJob, promptHash: String?), config: JudgeConfig,
        served: Served
    ) -> JobOutcome {
        switch result {
        case .answer(let answer):
            return .vote(
                entry.job, answer, latencyMilliseconds: -1, promptHash: entry.promptHash,
                costUSD: config.cost(of: answer, batched: true))
        case .failed(let error):
            return .release(
                entry.job, error: "\(error)", served.policy.decide(error, history: entry.job.history),
                answer: error.answer)
        case .unanswered(let reason):
            return .returned(entry.job, error: reason)
        }
    }
}
