import CoreMetrics
import JuryDomain
import JuryStore

/// The metrics worker and reducer processes report, through swift-metrics: whichever backend
/// the process bootstrapped receives them (`jury worker --metrics-port` serves them to
/// Prometheus), and without one they cost next to nothing.
///
/// Names follow Prometheus conventions: the `jury_` prefix, base units in the name, `_total`
/// on counters. Labels are the run's name, the judge's name and, where said, a class.
public enum RuntimeMetrics {
    public struct Metric: Sendable {
        public let name: String
        public let help: String

        public init(name: String, help: String) {
            self.name = name
            self.help = help
        }
    }

    public static let judgeCalls = Metric(
        name: "jury_judge_calls_total",
        help: "Judge calls that ended, by outcome: vote, or the class of the error "
            + "(rate_limited, server_error, timeout, network_error, bad_answer, unauthorized, not_found, "
            + "quota_exhausted, bad_request, stopped, other).")
    public static let judgeCallDuration = Metric(
        name: "jury_judge_call_duration_seconds", help: "Time from sending a judge call to its answer or its error.")
    public static let rateLimited = Metric(
        name: "jury_judge_rate_limited_total", help: "Judge calls the provider refused with 429 (rate limited).")
    public static let callsInFlight = Metric(
        name: "jury_judge_calls_in_flight", help: "Judge calls this process has under way.")
    public static let claimSize = Metric(
        name: "jury_claim_size_jobs", help: "Jobs per claim that returned any.")
    public static let votes = Metric(
        name: "jury_votes_total", help: "Votes this process recorded (claims taken back meanwhile are not counted).")
    public static let tokens = Metric(
        name: "jury_tokens_total", help: "Tokens of the recorded votes, by kind (prompt or completion).")
    public static let cost = Metric(
        name: "jury_cost_usd_total", help: "Cost of the recorded votes at the judges' configured prices, in USD.")
    public static let verdicts = Metric(
        name: "jury_verdicts_total", help: "Verdicts this reducer stored, by status (agreed, disagreed, insufficient).")
    public static let lastVoteToVerdict = Metric(
        name: "jury_last_vote_to_verdict_seconds",
        help: "Time from an example's last vote to the reducer taking it up for its verdict.")
    public static let pendingJobs = Metric(
        name: "jury_queue_pending_jobs", help: "Jobs waiting to be claimed, read from the database at each scrape.")
    public static let oldestPendingAge = Metric(
        name: "jury_queue_oldest_pending_age_seconds",
        help: "How long the oldest claimable job has waited, read from the database at each scrape.")

    public static let batches = Metric(
        name: "jury_batches", help: "Provider batches by state, read from the database at each scrape.")
    public static let oldestSubmittedBatchAge = Metric(
        name: "jury_batch_oldest_submitted_age_seconds",
        help: "How long the oldest batch at the provider has been there, read from the database at each scrape.")

    public static let all: [Metric] = [
        judgeCalls, judgeCallDuration, rateLimited, callsInFlight, claimSize, votes, tokens, cost, verdicts,
        lastVoteToVerdict, pendingJobs, oldestPendingAge, batches, oldestSubmittedBatchAge,
    ]

    /// The outcome class of a call that ended in `error`, as `jury_judge_calls_total` labels it.
    static func outcome(of error: any Error) -> String {
        guard let error = error as? JudgeError else { return "other" }
        return error.code.description.replacing(" ", with: "_")
    }

    static func callEnded(run: String, judge: String, outcome: String, after duration: Duration) {
        let labels = [("run", run), ("judge", judge)]
        Counter(label: judgeCalls.name, dimensions: labels + [("outcome", outcome)]).increment()
        CoreMetrics.Timer(label: judgeCallDuration.name, dimensions: labels).recordSeconds(duration.inSeconds)
        if outcome == "rate_limited" { Counter(label: rateLimited.name, dimensions: labels).increment() }
    }

    static func callsUnderWay(run: String, judge: String) -> Meter {
        Meter(label: callsInFlight.name, dimensions: [("run", run), ("judge", judge)])
    }

    static func claimed(_ count: Int) {
        if count > 0 { Recorder(label: claimSize.name, aggregate: true).record(count) }
    }

    static func voteRecorded(run: String, judge: String, answer: JudgeAnswer, costUSD: Double?) {
        let labels = [("run", run), ("judge", judge)]
        Counter(label: votes.name, dimensions: labels).increment()
        if let prompt = answer.promptTokens, prompt > 0 {
            Counter(label: tokens.name, dimensions: labels + [("kind", "prompt")]).increment(by: prompt)
        }
        if let completion = answer.completionTokens, completion > 0 {
            Counter(label: tokens.name, dimensions: labels + [("kind", "completion")]).increment(by: completion)
        }
        // Parts of the two above, for what they cost apart: cache reads and writes, thinking.
        for (kind, count) in [
            ("cached", answer.cachedTokens), ("cache_write", answer.cacheWriteTokens),
            ("thinking", answer.thinkingTokens),
        ] {
            if let count, count > 0 {
                Counter(label: tokens.name, dimensions: labels + [("kind", kind)]).increment(by: count)
            }
        }
        if let costUSD, costUSD > 0 {
            FloatingPointCounter(label: cost.name, dimensions: labels).increment(by: costUSD)
        }
    }

    /// A worker's series of a run's judge, at zero until the first call: dashboards and
    /// `absent()` alerts see them from the start.
    static func declare(run: String, judge: String) {
        let labels = [("run", run), ("judge", judge)]
        Counter(label: votes.name, dimensions: labels).increment(by: 0)
        Counter(label: judgeCalls.name, dimensions: labels + [("outcome", "vote")]).increment(by: 0)
        Counter(label: rateLimited.name, dimensions: labels).increment(by: 0)
        for kind in ["prompt", "completion"] {
            Counter(label: tokens.name, dimensions: labels + [("kind", kind)]).increment(by: 0)
        }
        FloatingPointCounter(label: cost.name, dimensions: labels).increment(by: 0)
        Meter(label: callsInFlight.name, dimensions: labels).increment(by: 0.0)
    }

    /// A reducer's series of a run, at zero until its first verdict.
    static func declareVerdicts(run: String) {
        for status in Verdict.Status.allCases {
            Counter(label: verdicts.name, dimensions: [("run", run), ("status", status.rawValue)]).increment(by: 0)
        }
    }

    static func verdictStored(run: String, status: Verdict.Status, secondsSinceLastVote: Double?) {
        Counter(label: verdicts.name, dimensions: [("run", run), ("status", status.rawValue)]).increment()
        if let seconds = secondsSinceLastVote {
            CoreMetrics.Timer(label: lastVoteToVerdict.name, dimensions: [("run", run)]).recordSeconds(seconds)
        }
    }

    /// Sets the queue gauges from the database's figures; runs and judges no longer pending read 0.
    static func queue(_ depths: [Store.QueueDepth], previously: Set<JudgeLabels>) -> Set<JudgeLabels> {
        var seen: Set<JudgeLabels> = []
        for depth in depths {
            let labels = JudgeLabels(run: depth.run, judge: depth.judge)
            seen.insert(labels)
            Gauge(label: pendingJobs.name, dimensions: labels.dimensions).record(depth.pending)
            Gauge(label: oldestPendingAge.name, dimensions: labels.dimensions).record(depth.oldestAgeSeconds)
        }
        for gone in previously.subtracting(seen) {
            Gauge(label: pendingJobs.name, dimensions: gone.dimensions).record(0)
            Gauge(label: oldestPendingAge.name, dimensions: gone.dimensions).record(0)
        }
        return seen
    }

    /// Sets the batch gauges from the database's figures, one series per run, judge and state.
    static func batches(_ summaries: [Store.BatchSummary]) {
        for summary in summaries {
            let labels = JudgeLabels(run: summary.run, judge: summary.judge)
            for (state, count) in summary.byState {
                Gauge(label: batches.name, dimensions: labels.dimensions + [("state", state)]).record(count)
            }
            Gauge(label: oldestSubmittedBatchAge.name, dimensions: labels.dimensions)
                .record(summary.oldestSubmittedSeconds)
        }
    }

    struct JudgeLabels: Hashable {
        let run: String
        let judge: String
        var dimensions: [(String, String)] { [("run", run), ("judge", judge)] }
    }
}
