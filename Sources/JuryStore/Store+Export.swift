public import JuryDomain
import JuryPostgres

/// Reading a run's results out.
extension Store {
    /// Each decided example of a run (only those with `status`, when given) as one JSON object's
    /// text: its fields, its verdict and every judge's vote. `write` receives them in order, a
    /// few thousand at a time, through a cursor, so memory stays flat on runs of millions.
    public func exportVerdicts(
        runID: Int64, status: Verdict.Status?, write: ([String]) throws -> Void
    ) async throws {
        try await connection.transaction { connection in
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
                WHERE v.run_id = \(runID) AND (\(status)::text IS NULL OR v.status = \(status))
                ORDER BY e.id
                """)
            while true {
                let rows = try await connection.query("FETCH 2000 FROM jury_export")
                if rows.isEmpty { break }
                try write(rows.map { $0["line"] ?? "" })
            }
        }
    }
}
