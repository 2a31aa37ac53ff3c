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

    public init(
        id: Int64, runID: Int64, exampleID: Int64, judge: String, attempts: Int, claim: Int, transientFailures: Int,
        retryingSeconds: Double?, externalID: String, payload: JSONValue
    ) {
        self.id = id
        self.runID = runID
        self.exampleID = exampleID
        self.judge = judge
        self.attempts = attempts
        self.claim = claim
        self.transientFailures = transientFailures
        self.retryingSeconds = retryingSeconds
        self.externalID = externalID
        self.payload = payload
    }

    /// The job without its example's payload, once its request is made: a batch holds tens of
    /// thousands of jobs.
    public var withoutPayload: ClaimedJob { with(payload: .null) }

    /// The job with its example's payload, read when its request is made.
    public func with(payload: JSONValue) -> ClaimedJob {
        ClaimedJob(
            id: id, runID: runID, exampleID: exampleID, judge: judge, attempts: attempts, claim: claim,
            transientFailures: transientFailures, retryingSeconds: retryingSeconds, externalID: externalID,
            payload: payload)
    }

    /// What the call policy needs to know of the job's past.
    public var history: CallPolicy.History {
        CallPolicy.History(attempts: attempts, transientFailures: transientFailures, retryingSeconds: retryingSeconds)
    }
}

/// What became of a job's call.
public enum JobOutcome: Sendable {
    /// A vote; `promptHash` fingerprints the prompt the judge was sent, `costUSD` is what it cost
    /// by the judge's prices. A negative latency is none: a batch's answers have no latency of
    /// their own.
    case vote(ClaimedJob, JudgeAnswer, latencyMilliseconds: Int, promptHash: String? = nil, costUSD: Double? = nil)
    /// Give the job back as the decision says: to pending after a delay, or failed for good.
    /// `answer` is what a judge said that was not a valid vote, kept for people.
    case release(ClaimedJob, error: String, CallPolicy.Decision, answer: String? = nil)

    public var job: ClaimedJob {
        switch self {
        case .vote(let job, _, _, _, _), .release(let job, _, _, _): return job
        }
    }

    /// Gives a job back without using an attempt: the judge was never really asked.
    public static func returned(_ job: ClaimedJob, error: String, delaySeconds: Double = 0) -> JobOutcome {
        .release(job, error: error, CallPolicy.Decision(kind: .returned, delaySeconds: delaySeconds, final: false))
    }
}

/// How many jobs of one judge of one run to claim.
public struct ClaimRequest: Sendable, Equatable {
    public let runID: Int64
    public let judge: String
    public let count: Int

    public init(runID: Int64, judge: String, count: Int) {
        self.runID = runID
        self.judge = judge
        self.count = count
    }
}

/// A run as stored in the database.
public struct StoredRun: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let config: RunConfig
    public let state: RunState

    public init(id: Int64, name: String, config: RunConfig, state: RunState) {
        self.id = id
        self.name = name
        self.config = config
        self.state = state
    }
}
