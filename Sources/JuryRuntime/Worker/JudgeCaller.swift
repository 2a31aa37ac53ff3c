import CoreMetrics
import JuryDomain
import Logging
import Synchronization

/// What the worker needs to serve one run: its judges, prompt and call policy.
struct RunContext: Sendable {
    let run: StoredRun
    let renderer: PromptRenderer
    let judges: [String: any Judge]
    let policy: CallPolicy
}

/// What every judge of an example is sent, and its fingerprint.
struct RenderedPrompt: Sendable {
    let request: JudgeRequest
    let hash: String

    init(_ job: ClaimedJob, renderer: PromptRenderer) {
        request = renderer.render(id: job.externalID, payload: job.payload)
        hash = request.promptHash
    }
}

/// Calls a judge for one job and turns what happened into an outcome, as the call policy says:
/// a vote, or a release to retry, hold the judge's shared limit, halt the judge, or refund.
final class JudgeCaller: Sendable {
    let ledger: WorkerLedger
    let logger: Logger
    /// When a capped Retry-After was last logged, per judge: a 429 storm logs once a minute.
    private let capLoggedAt = Mutex<[JudgeKey: ContinuousClock.Instant]>([:])
    /// Requests refused as invalid, per judge: enough of them in a row stop the judge.
    private let malformed = Mutex(MalformedRequests())

    init(ledger: WorkerLedger, logger: Logger) {
        self.ledger = ledger
        self.logger = logger
    }

    /// A run's settings changed: its judges' streaks of refused requests start afresh.
    func settingsChanged(runID: Int64) {
        malformed.withLock { $0.settingsChanged(runID: runID) }
    }

    func call(_ job: ClaimedJob, prompt: RenderedPrompt, context: RunContext) async -> JobOutcome {
        guard let judge = context.judges[job.judge], let config = context.run.config.judge(named: job.judge) else {
            return .returned(job, error: "this worker has no judge \(job.judge)")
        }
        let request = prompt.request
        let started = ContinuousClock.now
        let underWay = RuntimeMetrics.callsUnderWay(run: context.run.name, judge: job.judge)
        underWay.increment()
        var outcome = "vote"
        defer {
            underWay.decrement()
            RuntimeMetrics.callEnded(
                run: context.run.name, judge: job.judge, outcome: outcome, after: ContinuousClock.now - started)
        }
        do {
            // One deadline for the whole call, head and body, whatever the judge's client does.
            let answer = try await withDeadline(.seconds(config.timeoutSeconds)) { try await judge.classify(request) }
            // Whatever a judge's client did, a vote is a label of the taxonomy.
            guard context.run.config.labels.contains(answer.label) else {
                throw JudgeError(
                    .badAnswer, "judge \(job.judge) answered a label outside the taxonomy", answer: answer.label)
            }
            malformed.withLock { $0.accepted(JudgeKey(runID: job.runID, judge: job.judge)) }
            logger.trace("vote", metadata: Self.metadata(of: job, ["label": "\(answer.label)"]))
            if let observation = answer.rateLimit { ledger.observe(limitKey: config.limitKey, observation) }
            ledger.tokensUsed(answer.promptTokens.map { $0 &+ (answer.completionTokens ?? 0) }, by: job)
            return .vote(
                job, answer, latencyMilliseconds: Int((ContinuousClock.now - started).inMilliseconds),
                promptHash: prompt.hash, costUSD: config.cost(of: answer))
        } catch {
            if Task.isCancelled || error is CancellationError {
                outcome = "stopped"
                return .returned(job, error: "the worker stopped before the call finished")
            }
            let error =
                error is DeadlineExceeded
                ? JudgeError(.timeout, "judge \(job.judge): no complete answer within \(config.timeoutSeconds)s")
                : error
            outcome = RuntimeMetrics.outcome(of: error)
            var decision = context.policy.decide(error, history: job.history)
            let key = JudgeKey(runID: job.runID, judge: job.judge)
            var stops = false
            switch (error as? JudgeError)?.code {
            case .badRequest?:
                // A refusal of a judge already stopped, or one that completes the streak, is the
                // request's fault, not the example's: the job goes back with its attempt.
                if ledger.isHalted(key) {
                    decision = CallPolicy.Decision(kind: .returned, delaySeconds: 60, final: false)
                } else if let examples = malformed.withLock({
                    $0.refused(key, example: job.exampleID, firstAttempt: job.attempts <= 1)
                }) {
                    decision = CallPolicy.Decision(kind: .returned, delaySeconds: 60, final: false)
                    stops = ledger.halt(key, reason: MalformedRequests.reason("\(error)", examples: examples))
                }
            case .badAnswer?, .refused?:
                malformed.withLock { $0.accepted(key) }
            default:
                break
            }
            if decision.haltsJudge, ledger.halt(key, reason: "\(error)") { stops = true }
            if stops {
                logger.error(
                    "the judge stops on every worker: retrying cannot cure this; fix it, then `jury judge resume`",
                    metadata: Self.metadata(of: job, [JuryMetadata.error: "\(error)"]))
            }
            // A 429 holds the account for every worker; what the headers said is followed.
            if let seconds = decision.holdSeconds { ledger.hold(limitKey: config.limitKey, seconds: seconds) }
            if let observation = (error as? JudgeError)?.rateLimit {
                ledger.observe(limitKey: config.limitKey, observation)
            }
            ledger.tokensUsed(nil, by: job)
            if let asked = decision.cappedRetryAfter {
                reportCappedRetryAfter(key, asked: asked, policy: context.policy)
            }
            logger.debug(
                "judge call failed",
                metadata: Self.metadata(
                    of: job,
                    [
                        JuryMetadata.error: "\(error)", "kind": "\(decision.kind)", "final": "\(decision.final)",
                        "attempt": "\(job.attempts)",
                    ]))
            return .release(job, error: "\(error)", decision, answer: (error as? JudgeError)?.answer)
        }
    }

    /// The job's metadata with a message's own, built only for a message that is logged. (Set
    /// on a copy of the logger for each call, the stream handler rendered it twice per call.)
    private static func metadata(of job: ClaimedJob, _ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging([JuryMetadata.job: "\(job.id)", JuryMetadata.judge: "\(job.judge)"]) { own, _ in own }
    }

    /// Says that a provider asked to wait longer than the run allows, at most once a minute per judge.
    private func reportCappedRetryAfter(_ key: JudgeKey, asked: Double, policy: CallPolicy) {
        let due = capLoggedAt.withLock { loggedAt in
            let now = ContinuousClock.now
            guard loggedAt[key].map({ now - $0 > .seconds(60) }) ?? true else { return false }
            loggedAt[key] = now
            return true
        }
        if due {
            logger.warning(
                "the judge asked to wait longer than the run's retry.max_retry_after_seconds; waiting the cap instead",
                metadata: [
                    JuryMetadata.judge: "\(key.judge)", "retry_after_seconds": "\(asked)",
                    "cap_seconds": "\(policy.maxRetryAfter)",
                ])
        }
    }
}
