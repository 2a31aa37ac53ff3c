import Foundation
public import JuryDomain
import JuryPostgres

/// Loading a corpus: COPY into a staging table, then one function moves it into the run.
extension Store {
    /// Adds examples to a run, one job per example and judge, in one transaction: `next` gives
    /// the examples a chunk at a time (nil at the end), and an error it throws writes nothing.
    public func enqueue(
        into run: StoredRun, batch: String, next: () throws -> [IncomingExample]?
    ) async throws -> EnqueueReport {
        let judges = run.config.judges.map(\.name)
        let orders = run.config.judges.map(\.order)
        let votesNeeded = run.config.rule.votesNeeded(panel: judges.count)
        return try await connection.transaction { connection in
            // A corpus of millions of lines takes longer than the statement timeout workers use.
            try await connection.execute(script: "SET LOCAL statement_timeout = 0")
            try await connection.execute(
                script: """
                    CREATE TEMP TABLE jury_incoming (
                        external_id text, payload jsonb, human_label text, source_label text, line int
                    ) ON COMMIT DROP
                    """)
            let copied = try await connection.copyIn(
                "COPY jury_incoming (external_id, payload, human_label, source_label, line) FROM STDIN"
            ) {
                try next().map(Self.copyRows)
            }
            let row = try await connection.query(
                """
                SELECT * FROM jury_enqueue_incoming(\(run.id), \(batch), \(judges)::text[], \(orders)::int[], \(votesNeeded))
                """)[0]
            return EnqueueReport(
                examples: copied, new: try row.decode("inserted_examples"), jobs: try row.decode("inserted_jobs"),
                changed: try row.decode("changed_examples"),
                changedIDs: try JSONDecoder().decode(
                    [String].self, from: Data(try row.decode("changed_sample", as: String.self).utf8)))
        }
    }

    /// Refreshes the planner's statistics of the queue's tables: after a large load, before
    /// autovacuum notices, the planner could pick scans that slow every claim of the run.
    public func analyzeQueue() async throws {
        try await connection.execute(script: "ANALYZE examples, jobs")
    }

    /// COPY's text format: a row per example, backslash escapes for the bytes that separate columns and rows.
    static func copyRows(_ examples: [IncomingExample]) -> [UInt8] {
        var rows: [UInt8] = []
        for example in examples {
            append(example.externalID, to: &rows)
            rows.append(UInt8(ascii: "\t"))
            append(example.payloadJSON, to: &rows)
            rows.append(UInt8(ascii: "\t"))
            append(example.humanLabel, to: &rows)
            rows.append(UInt8(ascii: "\t"))
            append(example.sourceLabel, to: &rows)
            rows.append(UInt8(ascii: "\t"))
            append(String(example.line), to: &rows)
            rows.append(UInt8(ascii: "\n"))
        }
        return rows
    }

    private static func append(_ value: String?, to row: inout [UInt8]) {
        guard let value else {
            row += [UInt8(ascii: "\\"), UInt8(ascii: "N")]
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): row += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\t"): row += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case UInt8(ascii: "\n"): row += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): row += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            default: row.append(byte)
            }
        }
    }
}
