import Foundation

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
