import JuryDomain
import Synchronization

/// What a worker's parts share: the jobs it holds, the outcomes waiting to be recorded, the
/// judges it stopped calling, and whether it is stopping. Every change goes through here.
final class WorkerLedger: Sendable {
    struct State {
        /// Jobs claimed and not yet recorded.
        var inFlight: [Int64: ClaimedJob] = [:]
        /// A statement failed since the claimer last compared its jobs with the database's:
        /// a claim may have committed unheard, or a commit it heard of may have been lost (a
        /// crash with asynchronous commit, a failover to a replica behind).
        var mayHoldUntracked = false
        var perJudge: [JudgeKey: Int] = [:]
        /// Judge calls under way.
        var calling = 0
        var outcomes: [JobOutcome] = []
        var stopRequestedAt: ContinuousClock.Instant?
        /// Stopped by cancellation: no drain time for calls.
        var drainSkipped = false
        var votesRecorded = 0
        /// Jobs whose outcome could not be recorded before the worker stopped.
        var unrecorded = 0
        /// The call policy of each run served, for outcomes that cannot be stored.
        var policies: [Int64: CallPolicy] = [:]
        /// Run names by id, for the metrics' labels.
        var runNames: [Int64: String] = [:]
        /// Judges whose breaker is open: a failure no retry cures (bad key, unknown model, used-up
        /// quota) stopped them fleet-wide. Their jobs stay pending until a person resumes them.
        var halted: Set<JudgeKey> = []
        /// Breakers this worker must still open in the database, with the reason.
        var breakersToOpen: [JudgeKey: String] = [:]
        /// Runs that spent their budget, as last read.
        var overBudget: Set<Int64> = []
        /// Accounts that answered 429, with the longest wait asked: held before the next claim,
        /// so that every worker backs off.
        var holds: [String: Double] = [:]
        /// Until when each held account is not called (a 429 here, or one any worker met).
        var heldUntil: [String: ContinuousClock.Instant] = [:]
        /// What the providers' headers last said of each account.
        var observations: [String: RateLimitObservation] = [:]
        /// Tokens a call of each judge takes, as an average of what its calls reported.
        var tokenEstimates: [JudgeKey: Double] = [:]
        /// The account and the tokens taken for each job claimed under a token limit.
        var tokensTaken: [Int64: (limitKey: String, tokens: Double)] = [:]
        /// Tokens to give back to (or take from) each account: estimates minus what calls used.
        var tokenCorrections: [String: Double] = [:]
    }

    let state = Mutex(State())
    /// Raised when the claimer may have something to do: a slot freed, work announced, a stop.
    let claimerWakeup = Wakeup()
    /// Raised when outcomes are waiting, or on a stop.
    let recorderWakeup = Wakeup()
    private let drainSeconds: Double

    init(drainSeconds: Double) {
        self.drainSeconds = drainSeconds
    }

    // MARK: - Stopping

    /// Asks every part to stop; without `draining`, calls under way are cancelled at once.
    func requestStop(draining: Bool) {
        state.withLock { state in
            if state.stopRequestedAt == nil { state.stopRequestedAt = .now }
            if !draining { state.drainSkipped = true }
        }
        claimerWakeup.raise()
        recorderWakeup.raise()
    }

    var isStopping: Bool { state.withLock { $0.stopRequestedAt != nil } }

    /// When calls still under way after a stop are cancelled.
    var callsDeadline: ContinuousClock.Instant? {
        state.withLock { state in
            state.stopRequestedAt.map { $0 + .seconds(state.drainSkipped ? 0 : drainSeconds) }
        }
    }

    /// When recording gives up after a stop: the drain time and `WorkerOptions.recordingGraceSeconds`.
    var recordDeadline: ContinuousClock.Instant? {
        callsDeadline.map { $0 + .seconds(WorkerOptions.recordingGraceSeconds) }
    }

    // MARK: - Jobs

    /// A statement failed: the claimer compares the jobs it holds with the database's.
    func databaseFailed() { state.withLock { $0.mayHoldUntracked = true } }

    func track(_ jobs: [ClaimedJob]) {
        state.withLock { state in
            for job in jobs {
                state.inFlight[job.id] = job
                state.perJudge[JudgeKey(runID: job.runID, judge: job.judge), default: 0] += 1
            }
        }
    }

    func callStarted() { state.withLock { $0.calling += 1 } }

    /// A call ended with this outcome: it waits for the recorder.
    func callEnded(with outcome: JobOutcome) {
        state.withLock { state in
            state.calling -= 1
            state.outcomes.append(outcome)
        }
        recorderWakeup.raise()
    }

    /// An outcome without a call (the job could not be called here).
    func submit(_ outcome: JobOutcome) {
        state.withLock { $0.outcomes.append(outcome) }
        recorderWakeup.raise()
    }

    /// The recorder is done with these jobs: their slots are free again.
    func recorded(_ batch: [JobOutcome], votes: Int) {
        state.withLock { state in
            state.votesRecorded += votes
            for outcome in batch {
                let job = outcome.job
                state.tokensTaken.removeValue(forKey: job.id)
                guard state.inFlight.removeValue(forKey: job.id) != nil else { continue }
                state.perJudge[JudgeKey(runID: job.runID, judge: job.judge), default: 1] -= 1
            }
        }
        claimerWakeup.raise()
    }

    // MARK: - Judges

    /// Stops calling a judge, and has its breaker opened for every worker; true the first time,
    /// so that it is said once.
    func halt(_ key: JudgeKey, reason: String) -> Bool {
        state.withLock { state in
            guard state.halted.insert(key).inserted else { return false }
            state.breakersToOpen[key] = reason
            return true
        }
    }

    /// Whether this worker stops calling the judge (its breaker is open, or about to be).
    func isHalted(_ key: JudgeKey) -> Bool {
        state.withLock { $0.halted.contains(key) }
    }

    func takeBreakersToOpen() -> [JudgeKey: String] {
        state.withLock { state in
            defer { state.breakersToOpen = [:] }
            return state.breakersToOpen
        }
    }

    /// Records which runs are over budget; returns those that were not before (to say so once).
    func setOverBudget(_ runs: Set<Int64>) -> Set<Int64> {
        state.withLock { state in
            defer { state.overBudget = runs }
            return runs.subtracting(state.overBudget)
        }
    }

    /// The breakers open in the database, with those this worker has yet to open.
    func setOpenBreakers(_ open: Set<JudgeKey>) {
        state.withLock { $0.halted = open.union($0.breakersToOpen.keys) }
    }

    func hold(limitKey: String, seconds: Double) {
        state.withLock { state in
            state.holds[limitKey] = max(state.holds[limitKey] ?? 0, seconds)
            state.heldUntil[limitKey] = max(state.heldUntil[limitKey] ?? .now, .now + .seconds(seconds))
        }
    }

    /// Accounts that other workers held, as the database says.
    func setHeldAccounts(_ held: [String: Double]) {
        state.withLock { state in
            for (key, seconds) in held {
                state.heldUntil[key] = max(state.heldUntil[key] ?? .now, .now + .seconds(seconds))
            }
        }
    }

    /// Whether calls on this account wait now.
    func isHeld(_ limitKey: String) -> Bool {
        state.withLock { state in state.heldUntil[limitKey].map { $0 > .now } ?? false }
    }

    func observe(limitKey: String, _ observation: RateLimitObservation) {
        state.withLock { $0.observations[limitKey] = observation }
    }

    /// Tokens a call of this judge is expected to take, before any was seen: a guess on the safe side.
    static let firstTokenEstimate = 1000.0

    func tokenEstimate(_ judge: JudgeKey) -> Double {
        state.withLock { $0.tokenEstimates[judge] ?? Self.firstTokenEstimate }
    }

    func tokensTaken(_ jobs: [ClaimedJob], limitKey: String, each: Double) {
        state.withLock { state in
            for job in jobs { state.tokensTaken[job.id] = (limitKey, each) }
        }
    }

    /// A call of `job` used `tokens` (nil: it reported none, or never reached the judge): the
    /// difference with what was taken goes back to its account, and the estimate learns.
    func tokensUsed(_ tokens: Int?, by job: ClaimedJob) {
        state.withLock { state in
            guard let taken = state.tokensTaken.removeValue(forKey: job.id) else { return }
            let used = tokens.map(Double.init) ?? taken.tokens
            state.tokenCorrections[taken.limitKey, default: 0] += taken.tokens - used
            if let tokens {
                let judge = JudgeKey(runID: job.runID, judge: job.judge)
                let previous = state.tokenEstimates[judge] ?? Double(tokens)
                state.tokenEstimates[judge] = previous * 0.9 + Double(tokens) * 0.1
            }
        }
    }

    /// Holds, observations and token corrections gathered since the last call, to send to the accounts.
    func takeAccountNews() -> (
        holds: [String: Double], observations: [String: RateLimitObservation], corrections: [String: Double]
    ) {
        state.withLock { state in
            defer {
                state.holds = [:]
                state.observations = [:]
                state.tokenCorrections = [:]
            }
            return (state.holds, state.observations, state.tokenCorrections.filter { $0.value != 0 })
        }
    }
}
