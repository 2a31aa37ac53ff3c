import Foundation
public import JuryDomain
import JuryPostgres

/// An example with its votes, as the reducer and a reduction see it.
public struct ExampleVotes: Sendable {
    public let id: Int64
    public let runID: Int64
    public var batch: String = ""
    public let sourceLabel: String?
    public let humanLabel: String?
    /// Whether `humanLabel` came from a person's review (`jury import-labels`): it then decides.
    public let reviewed: Bool
    /// Decided before every judge answered: early decision cancelled some of its jobs (or, in
    /// the reducer's claim, some were still under way).
    public let early: Bool
    public var state: ExampleState = .ready
    /// Judge name to label.
    public var votes: [String: String]
    /// In the reducer's claim: seconds since the example's last vote landed.
    public var secondsSinceLastVote: Double? = nil

    /// The label that decides over the panel, if a person gave one.
    public var reviewedLabel: String? { reviewed ? humanLabel : nil }
}

/// An example the reducer decided: what its metrics count.
public struct DecidedExample: Sendable {
    public let run: String
    public let status: Verdict.Status
    /// Known for examples taken up as they became ready, not for whole batches fitted at once.
    public let secondsSinceLastVote: Double?

    public init(run: String, status: Verdict.Status, secondsSinceLastVote: Double? = nil) {
        self.run = run
        self.status = status
        self.secondsSinceLastVote = secondsSinceLastVote
    }
}

/// A person's label for one example, by its id in the corpus; `line` names it in errors.
public struct ReviewLabel: Sendable, Equatable {
    public let externalID: String
    public let label: String
    public let line: Int

    public init(externalID: String, label: String, line: Int) {
        self.externalID = externalID
        self.label = label
        self.line = line
    }
}

/// What a reduction wrote.
public struct ReductionReport: Sendable, Equatable {
    /// Verdicts replaced (the earlier ones are in `verdict_history`).
    public var replaced: Int
    /// Ready examples decided for the first time.
    public var decided: Int
    /// Examples given a person's label.
    public var labelled: Int
}

/// The reducer's transitions: claim ready examples, store their verdicts; and reductions.
extension Store {
    /// Decides up to `limit` ready examples (of one run, or of all) in one transaction: they are
    /// claimed with SKIP LOCKED, so reducers share the work, and each verdict commits together
    /// with its example's move to `decided`. Runs under `dawid-skene` are left to
    /// `reduce(runID:...)`, which needs a whole batch. Returns how many were decided.
    public func decideReady(
        runID: Int64?, limit: Int, decide: (ExampleVotes, RunConfig) -> Decision
    ) async throws -> [DecidedExample] {
        try await connection.transaction { connection in
            var examples: [ExampleVotes] = []
            for row in try await connection.query(
                prepared: "SELECT * FROM jury_claim_ready_examples(\(runID), \(limit))")
            {
                let id: Int64 = try row.decode("example_id")
                if examples.last?.id != id {
                    examples.append(
                        ExampleVotes(
                            id: id, runID: try row.decode("run_id"),
                            sourceLabel: try row.decodeIfPresent("source_label"),
                            humanLabel: try row.decodeIfPresent("human_label"), reviewed: try row.decode("reviewed"),
                            early: try row.decode("early"), votes: [:],
                            secondsSinceLastVote: try row.decodeIfPresent("since_last_vote_seconds")))
                }
                if let judge: String = try row.decodeIfPresent("judge") {
                    examples[examples.count - 1].votes[judge] = try row.decode("label")
                }
            }
            guard !examples.isEmpty else { return [] }
            let configs = try await Self.configs(of: Set(examples.map(\.runID)), on: connection)
            var decisions: [Decision] = []
            for example in examples {
                guard let config = configs[example.runID] else {
                    throw JuryError(.notFound, "example \(example.id) belongs to run \(example.runID), which is gone")
                }
                decisions.append(decide(example, config))
            }
            let stored = try await Self.record(
                decisions, of: examples.map(\.id), runs: examples.map(\.runID), on: connection)
            return zip(examples, decisions).filter { stored.contains($0.0.id) }.map { example, decision in
                DecidedExample(
                    run: configs[example.runID]?.name ?? "", status: decision.verdict.status,
                    secondsSinceLastVote: example.secondsSinceLastVote)
            }
        }
    }

    /// Runs under `dawid-skene` with a ready example whose batch has all its votes, from the
    /// kept batch counts: the reducer asks on every idle pass, and a count of the examples
    /// themselves would read the whole run each time.
    public func dawidSkeneDue(runID: Int64?) async throws -> [Int64] {
        try await connection.query("SELECT jury_dawid_skene_due(\(runID)) AS run_id").map { try $0.decode("run_id") }
    }

    /// Which examples a reduction decides.
    public enum ReductionScope: Sendable {
        /// Every decided example (`jury reduce`): its verdict is replaced.
        case decided
        /// Ready examples whose batch has all its votes (`dawid-skene`).
        case completeBatches
        /// The examples people labelled in this reduction, where decided.
        case labelled
    }

    /// Recomputes verdicts of one run in one transaction, under the run's row lock (NO KEY
    /// UPDATE: workers inserting votes, whose foreign key takes KEY SHARE, go on): `labels` (a
    /// person's review) are stored first, all or nothing; then `compute` gets every example of
    /// the run with its votes and the ones in `scope`, and returns a decision for each of those.
    /// Replaced verdicts move to `verdict_history`. With `rule`, the run's config takes it, so
    /// that later verdicts (and early decisions) follow it.
    public func reduce(
        runID: Int64, scope: ReductionScope, labels: [ReviewLabel] = [], rule: ConsensusRule? = nil,
        compute: (_ all: [ExampleVotes], _ targets: [ExampleVotes], RunConfig) throws -> [Decision]
    ) async throws -> ReductionReport {
        try await connection.transaction { connection in
            try await connection.execute(script: "SET LOCAL statement_timeout = 0")
            // Through a function: the reducer, which runs these for Dawid-Skene, may not lock runs itself.
            let rows = try await connection.query("SELECT * FROM jury_lock_run_for_reduction(\(runID))")
            guard let row = rows.first else { throw JuryError(.notFound, "run \(runID) is gone") }
            var config = try Self.decodeRun(row).config
            var labelled = Set<Int64>()
            if !labels.isEmpty {
                let result = try await connection.query(
                    """
                    SELECT * FROM jury_import_labels(\(runID), \(labels.map(\.externalID))::text[],
                                                     \(labels.map(\.label))::text[])
                    """)
                let unknown: [String] = try result.compactMap { try $0.decodeIfPresent("unknown_id") }
                if !unknown.isEmpty {
                    let lines = Dictionary(labels.map { ($0.externalID, $0.line) }, uniquingKeysWith: min)
                    let named = unknown.prefix(5).map { "'\($0)' (line \(lines[$0] ?? 0))" }.joined(separator: ", ")
                    throw JuryError(
                        .invalidInput,
                        "\(unknown.count) id(s) are not in the run: \(named)\(unknown.count > 5 ? ", ..." : ""); nothing was imported"
                    )
                }
                labelled = Set(try result.map { try $0.decode("example_id") as Int64 })
            }
            if let rule {
                config.consensus = rule
                try await connection.query(
                    "UPDATE runs SET config = jsonb_set(config, '{consensus}', \(try Self.json(rule))::jsonb) WHERE id = \(runID)"
                )
            }
            let all = try await Self.examplesWithVotes(runID: runID, on: connection)
            let targets: [ExampleVotes]
            switch scope {
            case .decided:
                targets = all.filter { $0.state == .decided }
            case .labelled:
                targets = all.filter { $0.state == .decided && labelled.contains($0.id) }
            case .completeBatches:
                let incomplete = Set(all.filter { $0.state == .voting }.map(\.batch))
                targets = all.filter { $0.state == .ready && !incomplete.contains($0.batch) }
            }
            let decisions = try compute(all, targets, config)
            precondition(decisions.count == targets.count, "a reduction decides each target once")
            let decided = zip(targets, decisions).filter { $0.0.state == .decided }
            let ready = zip(targets, decisions).filter { $0.0.state == .ready }
            var report = ReductionReport(replaced: 0, decided: 0, labelled: labelled.count)
            if !decided.isEmpty {
                report.replaced = try await Self.replace(
                    decided.map(\.1), of: decided.map(\.0.id), run: runID, on: connection)
            }
            if !ready.isEmpty {
                report.decided = try await Self.record(
                    ready.map(\.1), of: ready.map(\.0.id), runs: ready.map(\.0.runID), on: connection
                ).count
            }
            return report
        }
    }

    /// Every example of a run with its votes, in id order, read through a cursor.
    static func examplesWithVotes(runID: Int64, on connection: PostgresConnection) async throws -> [ExampleVotes] {
        try await connection.query(
            """
            DECLARE jury_votes NO SCROLL CURSOR FOR
            SELECT e.id, e.batch, e.state, e.source_label, e.human_label, e.reviewed_at IS NOT NULL AS reviewed,
                   e.jobs_cancelled > 0 AS early, v.judge, v.label
            FROM examples e LEFT JOIN votes v ON v.example_id = e.id
            WHERE e.run_id = \(runID)
            ORDER BY e.id
            """)
        var examples: [ExampleVotes] = []
        while true {
            let rows = try await connection.query("FETCH 10000 FROM jury_votes")
            if rows.isEmpty { break }
            for row in rows {
                let id: Int64 = try row.decode("id")
                if examples.last?.id != id {
                    examples.append(
                        ExampleVotes(
                            id: id, runID: runID, batch: try row.decode("batch"),
                            sourceLabel: try row.decodeIfPresent("source_label"),
                            humanLabel: try row.decodeIfPresent("human_label"), reviewed: try row.decode("reviewed"),
                            early: try row.decode("early"), state: try row.decode("state"), votes: [:]))
                }
                if let judge: String = try row.decodeIfPresent("judge") {
                    examples[examples.count - 1].votes[judge] = try row.decode("label")
                }
            }
        }
        try await connection.query("CLOSE jury_votes")
        return examples
    }

    /// The runs' configs. (A reduction may change a run's rule meanwhile: `jury_record_verdicts`
    /// then stores none of the verdicts made under the old one, and their examples stay ready.)
    static func configs(of runIDs: Set<Int64>, on connection: PostgresConnection) async throws -> [Int64: RunConfig] {
        var configs: [Int64: RunConfig] = [:]
        for row in try await connection.query(
            "SELECT id, name, config, state FROM runs WHERE id = ANY(\(Array(runIDs))::bigint[])")
        {
            let run = try Self.decodeRun(row)
            configs[run.id] = run.config
        }
        return configs
    }

    /// Stores the verdicts of examples decided for the first time (they move to decided).
    /// Returns the examples decided: a verdict made under a rule its run no longer has is not stored.
    static func record(
        _ decisions: [Decision], of examples: [Int64], runs: [Int64], on connection: PostgresConnection
    ) async throws -> Set<Int64> {
        let c = try VerdictColumns(decisions)
        let rows = try await connection.query(
            prepared: """
                SELECT jury_record_verdicts(\(examples)::bigint[], \(runs)::bigint[], \(c.labels)::text[],
                    \(c.statuses)::text[], \(c.agreements)::float8[], \(c.votes)::int[], \(c.rules)::text[],
                    \(c.parameters)::jsonb[], \(c.decidedBy)::text[], \(c.outcomes)::text[], \(c.early)::boolean[]) AS example_id
                """)
        return Set(try rows.map { try $0.decode("example_id", as: Int64.self) })
    }

    /// Replaces the verdicts of decided examples of one run, whose lock the caller holds; the
    /// earlier ones go to the history. Returns how many it wrote.
    static func replace(
        _ decisions: [Decision], of examples: [Int64], run: Int64, on connection: PostgresConnection
    ) async throws -> Int {
        let c = try VerdictColumns(decisions)
        return try await connection.query(
            """
            SELECT jury_replace_verdicts(\(run), \(examples)::bigint[], \(c.labels)::text[], \(c.statuses)::text[],
                \(c.agreements)::float8[], \(c.votes)::int[], \(c.rules)::text[], \(c.parameters)::jsonb[],
                \(c.decidedBy)::text[], \(c.outcomes)::text[], \(c.early)::boolean[]) AS written
            """)[0].decode("written")
    }

    /// Decisions as the columns the verdict functions take, one array each.
    private struct VerdictColumns {
        let labels: [String?], statuses: [String], agreements: [Double], votes: [Int], rules: [String]
        let parameters: [String], decidedBy: [String], outcomes: [String?], early: [Bool]

        init(_ decisions: [Decision]) throws {
            let verdicts = decisions.map(\.verdict)
            labels = verdicts.map(\.label)
            statuses = verdicts.map(\.status.rawValue)
            agreements = verdicts.map(\.agreement)
            votes = verdicts.map(\.votes)
            rules = verdicts.map(\.rule.description)
            parameters = try verdicts.map { try Store.json($0.rule) }
            decidedBy = decisions.map(\.decidedBy.rawValue)
            outcomes = decisions.map { $0.outcome?.rawValue }
            early = decisions.map(\.early)
        }
    }

    static func json(_ rule: ConsensusRule) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(rule), as: UTF8.self)
    }
}
