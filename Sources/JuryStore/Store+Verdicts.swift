public import JuryDomain
import JuryPostgres

/// An example whose votes are all in, as the reducer sees it.
public struct ReadyExample: Sendable {
    public let id: Int64
    public let runID: Int64
    public let sourceLabel: String?
    /// Judge name to label.
    public var votes: [String: String]
}

/// The reducer's transitions: claim ready examples, store their verdicts.
extension Store {
    /// Decides up to `limit` ready examples (of one run, or of all) in one transaction: they are
    /// claimed with SKIP LOCKED, so reducers share the work, and each verdict commits together
    /// with its example's move to `decided`. Returns how many were decided.
    public func decideReady(
        runID: Int64?, limit: Int, decide: (ReadyExample, RunConfig) -> Verdict
    ) async throws -> Int {
        try await connection.transaction { connection in
            var examples: [ReadyExample] = []
            for row in try await connection.query("SELECT * FROM jury_claim_ready_examples(\(runID), \(limit))") {
                let id: Int64 = try row.decode("example_id")
                if examples.last?.id != id {
                    examples.append(
                        ReadyExample(
                            id: id, runID: try row.decode("run_id"),
                            sourceLabel: try row.decodeIfPresent("source_label"),
                            votes: [:]))
                }
                if let judge: String = try row.decodeIfPresent("judge") {
                    examples[examples.count - 1].votes[judge] = try row.decode("label")
                }
            }
            guard !examples.isEmpty else { return 0 }
            let runIDs = Array(Set(examples.map(\.runID)))
            var configs: [Int64: RunConfig] = [:]
            for row in try await connection.query(
                "SELECT id, name, config, state FROM runs WHERE id = ANY(\(runIDs)::bigint[])")
            {
                let run = try Self.decodeRun(row)
                configs[run.id] = run.config
            }
            var verdicts: [Verdict] = []
            for example in examples {
                guard let config = configs[example.runID] else {
                    throw JuryError(.notFound, "example \(example.id) belongs to run \(example.runID), which is gone")
                }
                verdicts.append(decide(example, config))
            }
            let conflicts = zip(examples, verdicts).map { example, verdict in
                verdict.label.flatMap { label in example.sourceLabel.map { $0 != label } }
            }
            return try await connection.query(
                """
                SELECT jury_record_verdicts(\(examples.map(\.id))::bigint[], \(examples.map(\.runID))::bigint[],
                    \(verdicts.map(\.label))::text[], \(verdicts.map(\.status))::text[],
                    \(verdicts.map(\.agreement))::float8[], \(verdicts.map(\.votes))::int[],
                    \(verdicts.map(\.rule))::text[], \(conflicts)::boolean[]) AS decided
                """)[0].decode("decided")
        }
    }
}
