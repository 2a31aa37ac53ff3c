/// What to do with a job whose judge call gave no vote: a pure function of the error and the
/// job's history, so that it is tested without a database or a network.
///
/// - Failures that waiting cures (429, 5xx and 529, timeouts, dropped connections) retry with
///   capped exponential backoff and full jitter, honouring Retry-After up to a cap, until
///   `giveUpAfter` seconds have passed since the first of them. They use up no attempts.
/// - Wrong answers (unparseable, outside the taxonomy, a request the provider refused with
///   4xx) use up an attempt; the job fails for good after `maxAttempts`.
/// - Failures that no retry cures (a bad key, an unknown model) stop this worker's calls to
///   the judge; the job goes back without using an attempt, for a worker that can call it.
public struct CallPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    public var giveUpAfter: Double
    public var maxRetryAfter: Double

    public init(maxAttempts: Int, baseDelay: Double, maxDelay: Double, giveUpAfter: Double, maxRetryAfter: Double) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.giveUpAfter = giveUpAfter
        self.maxRetryAfter = maxRetryAfter
    }

    public init(config: RunConfig) {
        self.init(
            maxAttempts: config.maxAttempts, baseDelay: config.retry.baseDelaySeconds,
            maxDelay: config.retry.maxDelaySeconds, giveUpAfter: config.retry.giveUpAfterSeconds,
            maxRetryAfter: config.retry.maxRetryAfterSeconds)
    }

    /// How a failure counts against the job (the `kind` of `jury_release_jobs`).
    public enum Kind: String, Sendable {
        /// The judge answered wrongly: the attempt counts.
        case answer
        /// Waiting cures it: no attempt is used, the outage streak grows.
        case transient
        /// The judge was never really asked (the worker stopped, or cannot call it).
        case returned
    }

    /// The decision for one failed call.
    public struct Decision: Sendable, Equatable {
        public var kind: Kind
        /// Seconds before the job may be claimed again.
        public var delaySeconds: Double
        /// The job fails for good.
        public var final: Bool
        /// This worker stops calling the judge (retrying cannot cure the failure).
        public var haltsJudge = false
        /// Seconds every worker holds off the judge (its shared rate limit), after a 429.
        public var holdSeconds: Double?
        /// The Retry-After the provider asked for, when the cap cut it short.
        public var cappedRetryAfter: Double?

        public init(
            kind: Kind, delaySeconds: Double, final: Bool, haltsJudge: Bool = false, holdSeconds: Double? = nil,
            cappedRetryAfter: Double? = nil
        ) {
            self.kind = kind
            self.delaySeconds = delaySeconds
            self.final = final
            self.haltsJudge = haltsJudge
            self.holdSeconds = holdSeconds
            self.cappedRetryAfter = cappedRetryAfter
        }
    }

    /// The history of the job as its claim found it.
    public struct History: Sendable, Equatable {
        /// Counted attempts, this call included.
        public var attempts: Int
        /// Consecutive failures that waiting cures, before this call.
        public var transientFailures: Int
        /// Seconds since the first of them, or nil when the last call was not one.
        public var retryingSeconds: Double?

        public init(attempts: Int, transientFailures: Int = 0, retryingSeconds: Double? = nil) {
            self.attempts = attempts
            self.transientFailures = transientFailures
            self.retryingSeconds = retryingSeconds
        }
    }

    /// Decides what becomes of a job whose call failed with `error`.
    ///
    /// - Parameter random: a number in 0...1 for the jitter (injected so that tests can pin it).
    public func decide(_ error: Error, history: History, random: Double = Double.random(in: 0...1)) -> Decision {
        let code = (error as? JudgeError)?.code
        switch code {
        case .unauthorized?, .notFound?, .quotaExhausted?:
            return Decision(kind: .returned, delaySeconds: 60, final: false, haltsJudge: true)
        case .rateLimited?, .server?, .timeout?, .network?:
            let streak = history.transientFailures + 1
            let giveUp = (history.retryingSeconds ?? 0) >= giveUpAfter
            var decision = Decision(kind: .transient, delaySeconds: backoff(streak, random: random), final: giveUp)
            if let asked = (error as? JudgeError)?.retryAfter {
                let honoured = min(max(asked, 0), maxRetryAfter)
                if asked > maxRetryAfter { decision.cappedRetryAfter = asked }
                // A little jitter on top, so that the workers it stopped do not all come back at once.
                decision.delaySeconds = honoured + backoff(1, random: random) * 0.1
                if code == .rateLimited { decision.holdSeconds = honoured }
            } else if code == .rateLimited {
                decision.holdSeconds = 1
            }
            return decision
        default:
            let final = history.attempts >= maxAttempts
            return Decision(
                kind: .answer, delaySeconds: final ? 0 : backoff(history.attempts, random: random), final: final)
        }
    }

    /// Full jitter: a random wait up to base × 2^(n-1), capped at `maxDelay`.
    public func backoff(_ failures: Int, random: Double) -> Double {
        let ceiling = min(maxDelay, baseDelay * Double(1 << min(max(failures - 1, 0), 30)))
        return ceiling * min(max(random, 0), 1)
    }
}
