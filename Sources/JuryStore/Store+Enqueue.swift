import Foundation
public import JuryDomain
import JuryPostgres

/// Loading a corpus: COPY into a staging table, then one function moves it into the run.
extension Store {
    /// Adds examples to a run, one job per example and judge, in one transaction: `next` gives
    /// the checked lines a chunk at a time (nil at the end), and an error it throws writes nothing.
    public func enqueue(
        into run: StoredRun, batch: String, next: () throws -> [CorpusLine]?
    ) async throws -> EnqueueReport {
        let judges = run.config.judges.map(\.name)
        let orders = run.config.judges.map(\.order)
        let votesNeeded = run.config.rule.votesNeeded(panel: judges.count)
        return try await connection.transaction { connection in
            // A corpus of millions of lines takes longer than the statement timeout workers use.
            try await connection.execute(script: "SET LOCAL statement_timeout = 0")
            try await connection.execute(
                script: "CREATE TEMP TABLE jury_incoming_lines (line int, doc jsonb) ON COMMIT DROP")
            let copied = try await connection.copyIn("COPY jury_incoming_lines (line, doc) FROM STDIN") {
                try next().map(Self.copyRows)
            }
            let row = try await connection.query(
                """
                SELECT * FROM jury_enqueue_lines(\(run.id), \(batch), \(judges)::text[], \(orders)::int[], \(votesNeeded))
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

    /// COPY's text format: a row per line (its number, a tab, the line), with backslash escapes
    /// for the bytes that separate columns and rows, and for backslash itself.
    static func copyRows(_ lines: [CorpusLine]) -> [UInt8] {
        var rows: [UInt8] = []
        rows.reserveCapacity(lines.reduce(0) { $0 + $1.bytes.count + 12 })
        for line in lines {
            rows += String(line.number).utf8
            rows.append(UInt8(ascii: "\t"))
            for byte in line.bytes {
                switch byte {
                case UInt8(ascii: "\\"): rows += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
                case UInt8(ascii: "\t"): rows += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                case UInt8(ascii: "\n"): rows += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                case UInt8(ascii: "\r"): rows += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                default: rows.append(byte)
                }
            }
            rows.append(UInt8(ascii: "\n"))
        }
        return rows
    }
}
