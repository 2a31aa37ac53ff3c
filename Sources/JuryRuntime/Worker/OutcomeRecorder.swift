import JuryDomain
import JuryStore
import Logging
import Synchronization

/// Records what became of the calls, in batches, until every job the worker claimed is
/// recorded, or a stop's deadline passes with the database not answering.
struct OutcomeRecorder: Sendable {
    let id: String
    let store: Store
    let ledger: WorkerLedger
    let batchSize: Int
    let logger: Logger

    func run() async {
        var failures = 0
        while true {
            let (batch, done) = ledger.state.withLock { state in
                let batch = Array(state.outcomes.prefix(batchSize))
                state.outcomes.removeFirst(batch.count)
                let idle = state.calling == 0 && state.inFlight.isEmpty && batch.isEmpty
                return (batch, state.stopRequestedAt != nil && idle)
            }
            if done { return }
            let deadline = ledger.recordDeadline
            if let deadline, ContinuousClock.now >= deadline {
                giveUp(putBack: batch)
                return
            }
            guard !batch.isEmpty else {
                // While stopping, the record deadline must be noticed even if no outcome comes.
                await ledger.recorderWakeup.wait(timeout: deadline.map { $0 - .now })
                continue
            }
            do {
                // Bounded even if the database stops answering: while stopping, by the deadline.
                let limit = deadline.map { $0 - .now } ?? .seconds(600)
                let recorded = try await withDeadline(max(limit, .milliseconds(1))) { try await record(batch) }
                failures = 0
                if recorded.outcomes < batch.count {
                    logger.info(
                        "some claims were taken back before their outcome was recorded; another worker redoes those jobs",
                        metadata: ["lost": "\(batch.count - recorded.outcomes)"])
                }
                countVotes(batch, recorded: recorded)
                ledger.recorded(batch, votes: recorded.votedJobs.count)
            } catch {
                // Data errors were dealt with in `record`: what gets here is the connection, or the
                // database as a whole (a schema that does not match), which no single job is to blame for.
                failures += 1
                ledger.databaseFailed()
                logger.warning("recording outcomes failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                ledger.state.withLock { $0.outcomes.insert(contentsOf: batch, at: 0) }
                var pause = Duration.milliseconds(min(5000, 100 << min(failures, 6)))
                if let deadline = ledger.recordDeadline { pause = min(pause, max(deadline - .now, .zero)) }
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// Records a batch; an outcome the database refuses (a data error) costs its own job only.
    ///
    /// The batch is split until the outcome at fault is found; the others are recorded, and
    /// that job is released with the error as a wrong answer. Any other failure (the connection,
    /// a schema that does not match) is thrown: it is no job's fault, and the whole batch is retried.
    private func record(_ batch: [JobOutcome]) async throws -> Store.Recorded {
        do {
            return try await store.record(batch, owner: id)
        } catch  where Store.isRefusedValue(error) {
            guard batch.count == 1 else {
                let half = batch.count / 2
                return try await record(Array(batch[..<half])) + record(Array(batch[half...]))
            }
            let job = batch[0].job
            logger.error(
                "an outcome could not be stored; its job is released as a wrong answer",
                metadata: [
                    JuryMetadata.job: "\(job.id)", JuryMetadata.judge: "\(job.judge)", JuryMetadata.error: "\(error)",
                ])
            if case .release = batch[0] {
                // Even the release was refused: leave the job to its lease, which expires and is reaped.
                return Store.Recorded()
            }
            let policy = ledger.state.withLock { $0.policies[job.runID] }
            let reason = JudgeError(.badAnswer, "the answer could not be stored: \(error)")
            let decision =
                policy?.decide(reason, history: job.history)
                ?? CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: false)
            return try await record([.release(job, error: reason.description, decision)])
        }
    }

    /// Counts the votes the database accepted in the metrics, with their tokens and cost.
    private func countVotes(_ batch: [JobOutcome], recorded: Store.Recorded) {
        guard !recorded.votedJobs.isEmpty else { return }
        let runNames = ledger.state.withLock { $0.runNames }
        for case .vote(let job, let answer, _, _, let cost) in batch where recorded.votedJobs.contains(job.id) {
            RuntimeMetrics.voteRecorded(run: runNames[job.runID] ?? "", judge: job.judge, answer: answer, costUSD: cost)
        }
    }

    /// The deadline passed and outcomes remain: their jobs are left to their leases.
    private func giveUp(putBack batch: [JobOutcome]) {
        let left = ledger.state.withLock { state in
            let left = state.inFlight.count
            state.unrecorded = left
            state.outcomes.removeAll()
            state.inFlight.removeAll()
            state.perJudge.removeAll()
            return left
        }
        if left > 0 {
            logger.error(
                "cannot record outcomes within the drain time; their jobs will be redone after their leases expire",
                metadata: ["jobs": "\(left)"])
        }
        ledger.claimerWakeup.raise()
    }
}
