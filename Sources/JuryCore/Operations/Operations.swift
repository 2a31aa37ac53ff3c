import Foundation

/// What people do to runs: retry failures, pause, resume, cancel.
public enum Operations {
    /// Puts the failed jobs of a run (optionally of one batch or judge) back to pending; returns how many.
    public static func retryFailed(
        run: String, batch: String?, judge: String?, on connection: PostgresConnection
    ) async throws -> Int {
        let stored = try await Runs.find(run, on: connection)
        if let judge, !stored.config.judges.contains(where: { $0.name == judge }) {
            throw JuryError(
                .notFound,
                "run '\(run)' has no judge '\(judge)' (its judges: \(stored.config.judges.map(\.name).joined(separator: ", ")))"
            )
        }
        if let batch {
            let found = try await connection.query(
                "SELECT 1 FROM examples WHERE run_id = \(stored.id) AND batch = \(batch) LIMIT 1")
            if found.isEmpty { throw JuryError(.notFound, "run '\(run)' has no batch '\(batch)'") }
        }
        return try await connection.query(
            "SELECT jury_retry_failed(\(stored.id), \(batch), \(judge)) AS retried")[0].decode("retried")
    }

    /// Sets a run's state: `paused` stops claims (in-flight calls finish), `active` resumes, `cancelled` stops for good.
    public static func setState(_ state: String, run: String, on connection: PostgresConnection) async throws {
        let stored = try await Runs.find(run, on: connection)
        if stored.state == "cancelled" && state != "cancelled" {
            throw JuryError(.conflict, "run '\(run)' was cancelled; it cannot be resumed")
        }
        try await connection.query("UPDATE runs SET state = \(state) WHERE id = \(stored.id)")
        if state == "active" { try await connection.notify(WorkQueue.jobsChannel) }
    }
}

/// Writes a run's verdicts as JSONL: each example's fields, its verdict, and every judge's vote.
public enum Exporter {
    /// Writes to `path` atomically (a temporary file renamed at the end); returns the number of lines.
    public static func export(
        run: String, status: Verdict.Status?, to path: String, on connection: PostgresConnection
    ) async throws -> Int {
        let stored = try await Runs.find(run, on: connection)
        let temporary = path + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary)
        else {
            throw JuryError(.io, "cannot write \(path)")
        }
        var written = 0
        do {
            try await connection.transaction { connection in
                // A cursor keeps memory flat on runs of millions of examples.
                try await connection.query(
                    """
                    DECLARE jury_export NO SCROLL CURSOR FOR
                    SELECT (e.payload || jsonb_build_object(
                        'id', e.external_id, 'batch', e.batch, 'human_label', e.human_label,
                        'source_label', e.source_label,
                        'verdict', jsonb_build_object('label', v.label, 'status', v.status, 'agreement', v.agreement,
                                                      'votes', v.votes, 'rule', v.rule,
                                                      'conflicts_with_source', v.conflicts_with_source),
                        'votes', coalesce((SELECT jsonb_object_agg(x.judge, jsonb_build_object('label', x.label,
                                                  'rationale', x.rationale)) FROM votes x WHERE x.example_id = e.id),
                                          '{}'::jsonb)))::text AS line
                    FROM verdicts v JOIN examples e ON e.id = v.example_id
                    WHERE v.run_id = \(stored.id) AND (\(status?.rawValue)::text IS NULL OR v.status = \(status?.rawValue))
                    ORDER BY e.id
                    """)
                while true {
                    let rows = try await connection.query("FETCH 2000 FROM jury_export")
                    if rows.isEmpty { break }
                    var chunk = ""
                    for row in rows { chunk += (row["line"] ?? "") + "\n" }
                    try handle.write(contentsOf: Data(chunk.utf8))
                    written += rows.count
                }
            }
            try handle.close()
            _ = try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return written
    }
}
