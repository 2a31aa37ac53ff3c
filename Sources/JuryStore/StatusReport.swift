public import Foundation
public import JuryDomain
import JuryPostgres

/// What `jury status` prints: progress of runs, their judges and verdicts, from the views in Schema/.
public struct StatusReport: Sendable, Encodable {
    public struct RunLine: Sendable, Encodable {
        public let name: String
        public let state: RunState
        public let examples: Int, voting: Int, ready: Int, decided: Int
        public let pending: Int, running: Int, done: Int, failed: Int
        public let agreed: Int, disagreed: Int, insufficient: Int
        /// Jobs waiting for lower-order judges; jobs early decision cancelled.
        public let waiting: Int, cancelled: Int
        /// Votes per minute over the last minute or two, all judges; jobs left (pending, running, waiting).
        public var votesPerMinute = 0.0, remainingJobs = 0
        /// Seconds left at that rate (the slowest judge's); nil while a judge with jobs left is not voting.
        public var etaSeconds: Double?
        public var tokens = 0
    }

    /// Early decision per run: examples decided before every judge answered, calls saved, and
    /// what those calls would have cost at each judge's average so far.
    public struct EarlyLine: Sendable, Encodable {
        public let examples: Int, callsSaved: Int
        public let costSavedUSD: Double?
    }

    /// Jobs of a judge that carry an error of a class now: still retrying, or failed with it.
    /// Tokens a judge's votes used, by kind, as billed: output holds the thinking.
    public struct TokenUse: Sendable, Encodable, Equatable {
        public var input = 0
        public var cached = 0
        public var cacheWrite = 0
        public var output = 0
        public var thinking = 0

        enum CodingKeys: String, CodingKey {
            case input, cached, output, thinking
            case cacheWrite = "cache_write"
        }
    }

    public struct ErrorClass: Sendable, Encodable {
        public let errorClass: String
        public let retrying: Int, failed: Int
    }

    public struct JudgeLine: Sendable, Encodable {
        public let run: String
        public let judge: String
        public let pending: Int, running: Int, done: Int, failed: Int, waitingToRetry: Int
        public let averageLatencyMilliseconds: Int?
        /// The latest error of a job of this judge that has not voted since.
        public let lastError: String?
        /// Seconds the oldest outage still being retried has lasted (its jobs use up no attempts).
        public let retryingSeconds: Double?
        /// How often the provider asked for a Retry-After longer than the run's cap, and the longest.
        public let retryAfterCapped: Int
        public let longestRetryAfterAsked: Double?
        /// Jobs cancelled by early decision, and left to do (pending, running, waiting).
        public var cancelled = 0, remaining = 0
        public var votesPerMinute = 0.0
        public var etaSeconds: Double?
        public var tokens = 0
        public var errors: [ErrorClass] = []

        /// Jobs this judge will have closed when done; how many it has.
        public var total: Int { done + failed + cancelled + remaining }
        public var closed: Int { done + failed + cancelled }
    }

    public let generatedAt: Date
    public var runs: [RunLine]
    public var judges: [JudgeLine]
    public let liveWorkers: Int
    /// Judge calls the live workers have under way.
    public let callsInFlight: Int
    /// Judges stopped fleet-wide (their breaker is open): run and judge to the reason.
    public let stopped: [String: [String: String]]
    /// Spend per run and judge, in USD, and each run's budget.
    public let costs: [String: [String: Double]]
    /// Tokens per run and judge, by kind.
    public let tokens: [String: [String: TokenUse]]
    public let budgets: [String: Double]
    public let early: [String: EarlyLine]
    /// Per run: what became of the production labels (keep, relabel, clarify, drop), and how
    /// many verdicts people gave (`decided_by_people`).
    public let outcomes: [String: [String: Int]]
    /// Per run and judge in batch mode: its provider batches.
    public var batches: [Store.BatchSummary] = []

    /// Reads the report from the views, for every run or only `run`.
    public static func load(run: String?, from store: Store) async throws -> StatusReport {
        if let run { _ = try await store.findRun(run) }
        let connection = store.connection
        let runRows = try await connection.query(
            "SELECT * FROM jury_run_progress WHERE \(run)::text IS NULL OR run = \(run) ORDER BY run")
        let runs = try runRows.map { row in
            RunLine(
                name: try row.decode("run"), state: try row.decode("state"),
                examples: try row.decode("examples"), voting: try row.decode("voting"), ready: try row.decode("ready"),
                decided: try row.decode("decided"), pending: try row.decode("pending"),
                running: try row.decode("running"), done: try row.decode("done"), failed: try row.decode("failed"),
                agreed: try row.decode("agreed"), disagreed: try row.decode("disagreed"),
                insufficient: try row.decode("insufficient"), waiting: try row.decode("waiting"),
                cancelled: try row.decode("cancelled"))
        }
        let judgeRows = try await connection.query(
            """
            SELECT *, extract(epoch FROM now() - retrying_since)::float8 AS retrying_seconds FROM jury_judge_health
            WHERE \(run)::text IS NULL OR run = \(run) ORDER BY run, judge
            """)
        let judges = try judgeRows.map { row in
            JudgeLine(
                run: try row.decode("run"), judge: try row.decode("judge"), pending: try row.decode("pending"),
                running: try row.decode("running"), done: try row.decode("done"), failed: try row.decode("failed"),
                waitingToRetry: try row.decode("waiting_to_retry"),
                averageLatencyMilliseconds: try row.decodeIfPresent("avg_latency_ms", as: Double.self).map { Int($0) },
                lastError: row["last_error"],
                retryingSeconds: try row.decodeIfPresent("retrying_seconds"),
                retryAfterCapped: try row.decodeIfPresent("retry_after_capped") ?? 0,
                longestRetryAfterAsked: try row.decodeIfPresent("longest_retry_after_asked"))
        }
        let live = try await connection.query(
            "SELECT count(*)::int AS n, coalesce(sum(in_flight), 0)::int AS calls FROM jury_workers WHERE alive")[0]
        var stopped: [String: [String: String]] = [:]
        for row in try await connection.query(
            "SELECT run, judge, reason FROM jury_breakers WHERE \(run)::text IS NULL OR run = \(run)")
        {
            stopped[try row.decode("run"), default: [:]][try row.decode("judge")] = try row.decode("reason")
        }
        var costs: [String: [String: Double]] = [:]
        var tokens: [String: [String: TokenUse]] = [:]
        var budgets: [String: Double] = [:]
        for row in try await connection.query(
            """
            SELECT run, judge, cost_usd, budget_usd, input_tokens, cached_tokens, cache_write_tokens, output_tokens,
                   thinking_tokens
            FROM jury_costs WHERE \(run)::text IS NULL OR run = \(run)
            """)
        {
            let name: String = try row.decode("run")
            let judge: String = try row.decode("judge")
            costs[name, default: [:]][judge] = try row.decode("cost_usd")
            tokens[name, default: [:]][judge] = TokenUse(
                input: try row.decode("input_tokens"), cached: try row.decode("cached_tokens"),
                cacheWrite: try row.decode("cache_write_tokens"), output: try row.decode("output_tokens"),
                thinking: try row.decode("thinking_tokens"))
            budgets[name] = try row.decodeIfPresent("budget_usd")
        }
        var early: [String: EarlyLine] = [:]
        for row in try await connection.query(
            "SELECT * FROM jury_early_decisions WHERE \(run)::text IS NULL OR run = \(run)")
        {
            early[try row.decode("run")] = EarlyLine(
                examples: try row.decode("examples_decided_early"), callsSaved: try row.decode("calls_saved"),
                costSavedUSD: try row.decodeIfPresent("cost_saved_usd"))
        }
        var outcomes: [String: [String: Int]] = [:]
        for row in try await connection.query(
            "SELECT * FROM jury_outcomes WHERE \(run)::text IS NULL OR run = \(run)")
        {
            var counts: [String: Int] = [:]
            for key in ["keep", "relabel", "clarify", "drop", "decided_by_people"] { counts[key] = try row.decode(key) }
            outcomes[try row.decode("run")] = counts
        }
        var report = StatusReport(
            generatedAt: Date(), runs: runs, judges: judges, liveWorkers: try live.decode("n"),
            callsInFlight: try live.decode("calls"), stopped: stopped, costs: costs, tokens: tokens, budgets: budgets,
            early: early,
            outcomes: outcomes)
        try await report.loadRates(run: run, on: connection)
        report.batches = try await store.batchSummary(run: run)
        return report
    }

    /// Rates, ETA, tokens and errors by class, from jury_run_eta, jury_judge_progress and jury_error_classes.
    private mutating func loadRates(run: String?, on connection: PostgresConnection) async throws {
        for row in try await connection.query("SELECT * FROM jury_run_eta WHERE \(run)::text IS NULL OR run = \(run)") {
            guard let index = runs.firstIndex(where: { $0.name == (try? row.decode("run", as: String.self)) }) else {
                continue
            }
            runs[index].votesPerMinute = try row.decodeIfPresent("votes_per_minute") ?? 0
            runs[index].remainingJobs = try row.decode("remaining_jobs")
            runs[index].etaSeconds = try row.decodeIfPresent("eta_seconds")
            runs[index].tokens = try row.decode("tokens")
        }
        func judgeIndex(_ row: PostgresRow) throws -> Int? {
            let run: String = try row.decode("run")
            let judge: String = try row.decode("judge")
            return judges.firstIndex { $0.run == run && $0.judge == judge }
        }
        for row in try await connection.query(
            "SELECT * FROM jury_judge_progress WHERE \(run)::text IS NULL OR run = \(run)")
        {
            guard let index = try judgeIndex(row) else { continue }
            judges[index].cancelled = try row.decode("cancelled")
            judges[index].remaining = try row.decode("remaining")
            judges[index].votesPerMinute = try row.decodeIfPresent("votes_per_minute") ?? 0
            judges[index].etaSeconds = try row.decodeIfPresent("eta_seconds")
            judges[index].tokens = try row.decode("tokens")
        }
        for row in try await connection.query(
            """
            SELECT * FROM jury_error_classes WHERE \(run)::text IS NULL OR run = \(run)
            ORDER BY run, judge, retrying + failed DESC, class
            """)
        {
            guard let index = try judgeIndex(row) else { continue }
            judges[index].errors.append(
                ErrorClass(
                    errorClass: try row.decode("class"), retrying: try row.decode("retrying"),
                    failed: try row.decode("failed")))
        }
    }

    /// The report as aligned text for a terminal.
    public var text: String {
        if runs.isEmpty { return "no runs yet; create one with `jury run create --config FILE`\n" }
        var out = ""
        for run in runs {
            let percent = run.examples == 0 ? 0 : run.decided * 100 / run.examples
            out += "run \(run.name) (\(run.state)): \(run.decided)/\(run.examples) examples decided (\(percent)%)\n"
            out += "  examples  voting \(run.voting)  ready \(run.ready)  decided \(run.decided)\n"
            out +=
                "  jobs      pending \(run.pending)  running \(run.running)  done \(run.done)  failed \(run.failed)"
                + (run.waiting > 0 ? "  waiting \(run.waiting)" : "")
                + (run.cancelled > 0 ? "  cancelled \(run.cancelled)" : "") + "\n"
            out += "  verdicts  agreed \(run.agreed)  disagreed \(run.disagreed)  insufficient \(run.insufficient)\n"
            if run.remainingJobs > 0 {
                out += "  pace      \(Int(run.votesPerMinute.rounded())) votes/min over the last minute or two, "
                out += "\(run.remainingJobs) jobs left, ETA \(Self.eta(run.etaSeconds, left: run.remainingJobs))\n"
            }
            if let counts = outcomes[run.name], counts.values.contains(where: { $0 > 0 }) {
                out += "  production labels  keep \(counts["keep"] ?? 0)  relabel \(counts["relabel"] ?? 0)"
                out += "  clarify \(counts["clarify"] ?? 0)  drop \(counts["drop"] ?? 0)"
                out += "  (decided by people: \(counts["decided_by_people"] ?? 0))\n"
            }
            if let early = early[run.name], early.callsSaved > 0 {
                let cost = early.costSavedUSD.map { String(format: ", about $%.4f", $0) } ?? ""
                out +=
                    "  early decision  \(early.examples) examples decided early, \(early.callsSaved) judge calls saved\(cost)\n"
            }
            let width = max(5, judges.filter { $0.run == run.name }.map(\.judge.count).max() ?? 5)
            out +=
                "  " + "judge".padding(toLength: width, withPad: " ", startingAt: 0)
                + "   pending   running      done    failed  retrying  avg ms\n"
            for judge in judges where judge.run == run.name {
                out += "  " + judge.judge.padding(toLength: width, withPad: " ", startingAt: 0)
                for value in [judge.pending, judge.running, judge.done, judge.failed, judge.waitingToRetry] {
                    out += String(value).leftPadded(10)
                }
                out += (judge.averageLatencyMilliseconds.map(String.init) ?? "-").leftPadded(8) + "\n"
            }
            if let spent = costs[run.name], spent.values.contains(where: { $0 > 0 }) {
                let total = spent.values.reduce(0, +)
                let budget = budgets[run.name].map { String(format: " of a budget of $%.2f", $0) } ?? ""
                out += String(format: "  cost      $%.4f", total) + budget + "\n"
            }
            for judge in judges where judge.run == run.name {
                if let reason = stopped[run.name]?[judge.judge] {
                    out +=
                        "  \(judge.judge) STOPPED on every worker: \(reason); "
                        + "fix it, then `jury judge resume \(run.name) \(judge.judge)`\n"
                }
                if let cost = costs[run.name]?[judge.judge], cost > 0 {
                    out += "  \(judge.judge) cost " + String(format: "$%.4f", cost) + "\n"
                }
                if let used = tokens[run.name]?[judge.judge], used.input + used.output > 0 {
                    var kinds = ["\(used.input) in"]
                    if used.cached > 0 { kinds.append("\(used.cached) of them read from the cache") }
                    if used.cacheWrite > 0 { kinds.append("\(used.cacheWrite) written to it") }
                    kinds.append("\(used.output) out")
                    if used.thinking > 0 { kinds.append("\(used.thinking) of them thinking") }
                    out += "  \(judge.judge) tokens \(kinds.joined(separator: ", "))\n"
                }
                if let summary = batches.first(where: { $0.run == run.name && $0.judge == judge.judge }) {
                    out += "  \(judge.judge) batches " + Self.describe(summary) + "\n"
                }
                if let error = judge.lastError { out += "  \(judge.judge) last error: \(error)\n" }
                if !judge.errors.isEmpty {
                    let classes = judge.errors.map { "\($0.errorClass) \($0.retrying) retrying, \($0.failed) failed" }
                    out += "  \(judge.judge) errors now: \(classes.joined(separator: "; "))\n"
                }
                if let seconds = judge.retryingSeconds {
                    out += "  \(judge.judge) retrying an outage for \(Int(seconds))s (no attempts used)\n"
                }
                if judge.retryAfterCapped > 0 {
                    let longest = judge.longestRetryAfterAsked.map { " (longest asked: \(Int($0))s)" } ?? ""
                    out +=
                        "  \(judge.judge) asked \(judge.retryAfterCapped) times to wait longer than "
                        + "retry.max_retry_after_seconds\(longest); waited the cap instead\n"
                }
            }
        }
        out += "live workers and reducers: \(liveWorkers)\n"
        return out
    }
}

extension StatusReport {
    /// A judge's batches in one line: the open ones and their requests, the oldest at the
    /// provider, then the closed ones by how they ended.
    static func describe(_ summary: Store.BatchSummary) -> String {
        let count = { (state: ProviderBatch.State) in summary.byState[state.rawValue] ?? 0 }
        let open = count(.building) + count(.submitted) + count(.ended)
        var parts = ["\(open) open (\(summary.requestsOpen) requests)"]
        if count(.submitted) > 0 {
            parts.append(
                "\(count(.submitted)) at the provider, the oldest for \(eta(summary.oldestSubmittedSeconds, left: 1))")
        }
        if summary.reservedUSD > 0 { parts.append(String(format: "$%.4f of the budget reserved", summary.reservedUSD)) }
        let closed = [ProviderBatch.State.collected, .expired, .cancelled, .failed].filter { count($0) > 0 }
            .map { "\(count($0)) \($0.rawValue)" }
        if !closed.isEmpty { parts.append(closed.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }

    /// Time left as people read it: "done" when nothing is left, "-" when the rate is unknown,
    /// else 1h02m, 4m10s or 12s.
    public static func eta(_ seconds: Double?, left: Int) -> String {
        if left == 0 { return "done" }
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "-" }
        let total = Int(seconds.rounded())
        if total >= 3600 { return "\(total / 3600)h" + String(format: "%02dm", (total % 3600) / 60) }
        if total >= 60 { return "\(total / 60)m" + String(format: "%02ds", total % 60) }
        return "\(total)s"
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

extension Store {
    /// Folds the count slots of backends that are gone, and drops votes-per-minute counts older
    /// than an hour; returns how many rows that was.
    @discardableResult
    public func compactCounts() async throws -> Int {
        try await connection.query("SELECT jury_compact_counts() AS compacted")[0].decode("compacted")
    }

    /// Jobs waiting per run and judge, and how long the oldest claimable one has waited.
    public struct QueueDepth: Sendable {
        public let run: String
        public let judge: String
        public let pending: Int
        public let oldestAgeSeconds: Double
    }

    /// The queue's depth, in one cheap query (kept counts, and the first entry of the claim index).
    public func queueDepth() async throws -> [QueueDepth] {
        try await connection.query("SELECT * FROM jury_queue_depth()").map { row in
            QueueDepth(
                run: try row.decode("run"), judge: try row.decode("judge"), pending: try row.decode("pending"),
                oldestAgeSeconds: try row.decode("oldest_age_seconds"))
        }
    }
}

extension Store {
    /// Votes of a run per UTC minute over the last hour, oldest first, from the kept
    /// per-minute counts (which `jury_compact_counts` keeps for an hour); minutes without a
    /// vote are absent.
    public func votesPerMinute(run: String) async throws -> [(minute: Date, votes: Int)] {
        try await connection.query(
            """
            SELECT (substr(c.counter, 14) || ':00+00')::timestamptz AS minute, sum(c.n)::int AS votes
            FROM run_counts c JOIN runs r ON r.id = c.run_id
            WHERE r.name = \(run) AND c.counter LIKE 'votes.minute.%'
              AND c.counter >= 'votes.minute.' || to_char((now() - interval '60 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
            GROUP BY c.counter ORDER BY c.counter
            """
        ).map { (minute: try $0.decode("minute"), votes: try $0.decode("votes")) }
    }
}

/// A run's progress and spend at one minute (`run_history`).
public struct RunHistoryPoint: Sendable {
    public let minute: Date
    public let examples: Int
    public let decided: Int
    public let votes: Int
    public let costUSD: Double
}

extension Store {
    /// Writes this minute's progress and spend of every active run, once whichever reducers
    /// ask; returns how many rows that was.
    @discardableResult
    public func recordRunHistory() async throws -> Int {
        try await connection.query("SELECT jury_record_run_history() AS written")[0].decode("written")
    }

    /// A run's history, oldest first, thinned to at most `points` (the last minute of each of
    /// as many equal spans): a chart needs no more.
    public func runHistory(run: String, points: Int = 240) async throws -> [RunHistoryPoint] {
        try await connection.query(
            """
            SELECT DISTINCT ON (t.bucket) t.minute, t.examples, t.decided, t.votes, t.cost_usd
            FROM (SELECT h.*, ntile(\(points)) OVER (ORDER BY h.minute) AS bucket
                  FROM run_history h JOIN runs r ON r.id = h.run_id WHERE r.name = \(run)) t
            ORDER BY t.bucket, t.minute DESC
            """
        ).map { row in
            RunHistoryPoint(
                minute: try row.decode("minute"), examples: try row.decode("examples"),
                decided: try row.decode("decided"),
                votes: try row.decode("votes"), costUSD: try row.decode("cost_usd"))
        }
    }
}

extension Store {
    /// The accounts (limit keys) a provider's 429 holds now, and until when.
    public func accountHolds() async throws -> [String: Date] {
        var holds: [String: Date] = [:]
        for row in try await connection.query("SELECT limit_key, held_until FROM jury_account_limits WHERE held") {
            holds[try row.decode("limit_key")] = try row.decode("held_until")
        }
        return holds
    }
}
