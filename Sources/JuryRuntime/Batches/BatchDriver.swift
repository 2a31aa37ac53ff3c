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

    func run() async {
        var served: [Int64: Served] = [:]
        var loadedAt = ContinuousClock.now - .seconds(3600)
        while !isStopping() {
            do {
                if ContinuousClock.now - loadedAt > .seconds(5) {
                    served = try await load(previous: served)
                    loadedAt = .now
                }
                try await openDueBatches(served)
                while !isStopping(), let batch = try await takeStep(served) {
                    guard let runServed = served[batch.runID], let judge = runServed.judges[batch.judge] else { break }
                    try await step(batch, judge: judge, served: runServed)
                }
            } catch {
                logger.warning(
                    "a batch step failed; it is taken up again once its step lease lapses",
                    metadata: [JuryMetadata.error: "\(error)"])
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

    /// Opens a batch for each judge that has one due (only active runs: the claim checks).
    private func openDueBatches(_ served: [Int64: Served]) async throws {
        for runServed in served.values where runServed.run.state == .active {
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

    private func step(_ batch: ProviderBatch, judge: any BatchJudge, served: Served) async throws {
        switch batch.state {
        case .building:
            try await submit(batch, judge: judge, served: served)
        case .submitted:
            guard let providerID = batch.providerID else { return }
            let status = try await judge.status(of: providerID)
            let held = try await store.advanceBatch(
                batch, owner: id,
                .init(
                    providerState: status.providerState, ended: status.end != nil, outputFileID: status.outputFileID,
                    errorFileID: status.errorFileID, nextPollSeconds: options.batchPollSeconds, error: status.error))
            if held, status.end != nil { try await collect(batch, status: status, judge: judge, served: served) }
        case .ended:
            guard let providerID = batch.providerID else { return }
            try await collect(batch, status: try await judge.status(of: providerID), judge: judge, served: served)
        case .collected, .expired, .cancelled, .failed:
            return
        }
    }

    // MARK: - Building and submitting

    private func submit(_ batch: ProviderBatch, judge: any BatchJudge, served: Served) async throws {
        // A batch left building by a worker that died may be at the provider already.
        if let found = try await judge.find(token: batch.token) {
            logger.info(
                "found at the provider a batch whose submission was not recorded; it is kept",
                metadata: ["batch": "\(batch.id)", "provider_batch": "\(found)"])
            let jobs = try await store.batchJobs(batch, payloads: true)
            var hashes: [Int64: String] = [:]
            for (job, _) in jobs { hashes[job.id] = RenderedPrompt(job, renderer: served.renderer).hash }
            _ = try await store.advanceBatch(
                batch, owner: id,
                .init(providerID: found, promptHashes: hashes, nextPollSeconds: options.batchPollSeconds))
            return
        }
        let jobs = try await store.batchJobs(batch, payloads: true)
        guard !jobs.isEmpty else {
            // Nothing left to ask (its jobs were taken back): the batch closes without a call.
            if try await store.advanceBatch(
                batch, owner: id, .init(providerState: "empty", ended: true, nextPollSeconds: 0))
            {
                _ = try await store.batchCollected(
                    batch, owner: id, succeeded: 0, failed: 0, stepSeconds: 0, finalState: .cancelled)
            }
            return
        }
        var requests: [BatchRequest] = []
        var hashes: [Int64: String] = [:]
        for (job, _) in jobs {
            let prompt = RenderedPrompt(job, renderer: served.renderer)
            hashes[job.id] = prompt.hash
            requests.append(
                BatchRequest(customID: ProviderBatch.customID(job: job.id, claim: job.claim), request: prompt.request))
        }
        let submitted: (batchID: String, inputFileID: String?)
        do {
            submitted = try await judge.submit(requests, token: batch.token)
        } catch {
            try await submissionFailed(batch, jobs: jobs.map(\.job), error: error, served: served)
            return
        }
        let held = try await store.advanceBatch(
            batch, owner: id,
            .init(
                providerID: submitted.batchID, inputFileID: submitted.inputFileID, promptHashes: hashes,
                nextPollSeconds: options.batchPollSeconds))
        logger.info(
            "submitted a batch",
            metadata: [
                JuryMetadata.run: "\(served.run.name)", JuryMetadata.judge: "\(batch.judge)", "batch": "\(batch.id)",
                "provider_batch": "\(submitted.batchID)", "requests": "\(requests.count)",
            ])
        if !held, try await store.providerID(of: batch) != submitted.batchID {
            // Another worker took the step over and recorded a batch of its own: this one is a
            // duplicate. Its answers would be fenced anyway; cancelling it saves paying for them.
            logger.warning(
                "cancelling a duplicate batch",
                metadata: ["batch": "\(batch.id)", "provider_batch": "\(submitted.batchID)"])
            try? await judge.cancel(submitted.batchID)
        }
    }

    /// The provider refused the batch (or could not be reached): its jobs go back as the call
    /// policy says for that error, and the batch closes as failed.
    private func submissionFailed(_ batch: ProviderBatch, jobs: [ClaimedJob], error: any Error, served: Served)
        async throws
    {
        logger.warning(
            "submitting a batch failed; its jobs go back to the queue",
            metadata: ["batch": "\(batch.id)", JuryMetadata.judge: "\(batch.judge)", JuryMetadata.error: "\(error)"])
        let outcomes = jobs.map { job in
            JobOutcome.release(job, error: "\(error)", served.policy.decide(error, history: job.history))
        }
        guard
            try await store.advanceBatch(
                batch, owner: id,
                .init(providerState: "not submitted", ended: true, nextPollSeconds: 0, error: "\(error)"))
        else { return }
        try await store.record(outcomes, owner: batch.owner)
        _ = try await store.batchCollected(
            batch, owner: id, succeeded: 0, failed: outcomes.count, stepSeconds: 0, finalState: .failed)
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
