import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// What the consensus suites share: a run of four judges whose votes the test chooses, cast
/// through the store's own claim and record, so that every outcome is known in advance.
enum ConsensusFixture {
    static func yaml(
        judges: Int = 4, orders: [Int]? = nil, consensus: String = "rule: unanimous\n  early_decision: false",
        training: Bool = true
    ) -> String {
        let panel = (1...judges).map { index in
            "  - { name: j\(index), provider: openai-compatible, model: m\(index), base_url: \"http://127.0.0.1:9/v1\""
                + (orders.map { ", order: \($0[index - 1])" } ?? "") + " }"
        }.joined(separator: "\n")
        return """
            name: cons
            taxonomy:
              - { label: valid, description: can be done, kind: accept }
              - { label: needs_more_context, description: a term must be defined, kind: clarify, reply: "What do you mean by {{request}}?" }
              - { label: wrong_skill, description: not a segment, reply: "I build segments only." }
              - { label: ambiguous, description: several readings, kind: clarify }
            judges:
            \(panel)
            prompt: { system: "s", user: "{{request}}" }
            consensus:
              \(consensus)
            \(training ? "training: { system: \"You build segments.\", user: \"{{request}}\" }" : "")
            """
    }

    /// Examples: id to (human label, source label).
    static let corpus: [(id: String, human: String?, source: String?)] = [
        ("e0", "valid", "valid"), ("e1", "wrong_skill", "valid"), ("e2", "needs_more_context", "valid"),
        ("e3", "valid", "valid"), ("e4", "valid", "valid"), ("e5", "valid", "valid"), ("e6", "valid", "wrong_skill"),
        ("e7", nil, nil),
    ]

    /// Votes per example: one label per judge j1...j4 (nil: the job fails).
    static let votes: [String: [String?]] = [
        "e0": ["valid", "valid", "valid", "valid"],
        "e1": ["wrong_skill", "wrong_skill", "wrong_skill", "wrong_skill"],
        "e2": ["needs_more_context", "needs_more_context", "needs_more_context", "needs_more_context"],
        "e3": ["valid", "valid", "valid", "ambiguous"],
        "e4": ["valid", "valid", "wrong_skill", "wrong_skill"],
        "e5": [nil, "valid", "valid", "valid"],
        "e6": ["valid", "wrong_skill", "wrong_skill", "valid"],
        "e7": ["valid", "valid", "valid", "valid"],
    ]

    static func writeLabelledCorpus(_ rows: [(id: String, human: String?, source: String?)]) throws -> String {
        try writeFile(
            rows.map { row in
                var fields = [#""id":"\#(row.id)""#, #""request":"segment \#(row.id)""#]
                if let human = row.human { fields.append(#""human_label":"\#(human)""#) }
                if let source = row.source { fields.append(#""source_label":"\#(source)""#) }
                return "{" + fields.joined(separator: ",") + "}"
            }.joined(separator: "\n") + "\n")
    }

    /// Claims every claimable job of the run, judge by judge, and records the chosen label (or a
    /// final failure); again until nothing is claimable. Jobs of examples not in `votes` go back
    /// for an hour. Returns the jobs recorded.
    @discardableResult
    static func castVotes(_ votes: [String: [String?]], run: StoredRun, in jury: Store) async throws -> Int {
        var recorded = 0
        while true {
            var outcomes: [JobOutcome] = []
            for (index, judge) in run.config.panel.enumerated() {
                let claimed = try await jury.claim(
                    [ClaimRequest(runID: run.id, judge: judge, count: 100)], owner: "test", leaseSeconds: 60)
                for job in claimed {
                    guard let row = votes[job.externalID] else {
                        outcomes.append(.returned(job, error: "not now", delaySeconds: 3600))
                        continue
                    }
                    if let label = row[index] {
                        outcomes.append(
                            .vote(
                                job, JudgeAnswer(label: label, rationale: "\(judge) says \(label)"),
                                latencyMilliseconds: 1))
                    } else {
                        outcomes.append(
                            .release(
                                job, error: "no answer",
                                CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: true)))
                    }
                }
            }
            if outcomes.isEmpty { return recorded }
            recorded += try await jury.record(outcomes, owner: "test").outcomes
        }
    }

    static func decideAll(_ jury: Store) async throws {
        while try await Reducer.decideAvailable(runID: nil, limit: 100, store: jury) > 0 {}
    }

    /// Verdict per example id: label, status, outcome, decided_by, early, rule.
    static func verdicts(_ connection: PostgresConnection) async throws -> [String: [String: String?]] {
        var result: [String: [String: String?]] = [:]
        for row in try await connection.query(
            """
            SELECT e.external_id, v.label, v.status, v.outcome, v.decided_by, v.early::text, v.rule,
                   v.rule_params->>'rule' AS params_rule
            FROM verdicts v JOIN examples e ON e.id = v.example_id
            """)
        {
            result[row["external_id"]!] = [
                "label": row["label"], "status": row["status"], "outcome": row["outcome"],
                "decided_by": row["decided_by"], "early": row["early"], "rule": row["rule"],
                "params_rule": row["params_rule"],
            ]
        }
        return result
    }

    static func setUp(_ consensus: String = "rule: unanimous\n  early_decision: false") async throws -> (
        PostgresConnection, Store, StoredRun
    ) {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let run = try await createRun(Self.yaml(consensus: consensus), in: jury)
        try await enqueue(try Self.writeLabelledCorpus(Self.corpus), run: run.name, in: jury)
        try await Self.castVotes(Self.votes, run: run, in: jury)
        try await Self.decideAll(jury)
        return (try await connect(url), jury, run)
    }
}
