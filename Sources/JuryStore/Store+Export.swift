public import JuryDomain
import JuryPostgres

/// Which verdicts an export reads.
public struct ExportFilter: Sendable, Equatable {
    public var status: Verdict.Status?
    public var outcome: SourceOutcome?
    public var label: String?
    public var batch: String?
    /// Only what people should look at: the panel did not agree, or agreed against the
    /// production label (relabel, clarify). Verdicts people already gave are left out.
    public var review: Bool

    public init(
        status: Verdict.Status? = nil, outcome: SourceOutcome? = nil, label: String? = nil, batch: String? = nil,
        review: Bool = false
    ) {
        self.status = status
        self.outcome = outcome
        self.label = label
        self.batch = batch
        self.review = review
    }
}

/// Reading a run's results out.
extension Store {
    /// Each decided example of a run that passes `filter`, as one JSON object's text: its
    /// fields, its verdict and every judge's vote with its rationale. `write` receives them in
    /// order, a few thousand at a time, through a cursor, so memory stays flat on runs of millions.
    public func exportVerdicts(
        runID: Int64, filter: ExportFilter, write: ([String]) throws -> Void
    ) async throws {
        try await connection.transaction { connection in
            try await connection.query(
                """
                DECLARE jury_export NO SCROLL CURSOR FOR
                SELECT (e.payload || jsonb_build_object(
                    'id', e.external_id, 'batch', e.batch, 'human_label', e.human_label,
                    'source_label', e.source_label,
                    'verdict', jsonb_build_object('label', v.label, 'status', v.status, 'agreement', v.agreement,
                                                  'votes', v.votes, 'rule', v.rule, 'rule_params', v.rule_params,
                                                  'decided_by', v.decided_by, 'outcome', v.outcome, 'early', v.early),
                    'votes', coalesce((SELECT jsonb_object_agg(x.judge, jsonb_build_object('label', x.label,
                                              'rationale', x.rationale)) FROM votes x WHERE x.example_id = e.id),
                                      '{}'::jsonb)))::text AS line
                FROM verdicts v JOIN examples e ON e.id = v.example_id
                WHERE v.run_id = \(runID)
                  AND (\(filter.status)::text IS NULL OR v.status = \(filter.status))
                  AND (\(filter.outcome)::text IS NULL OR v.outcome = \(filter.outcome))
                  AND (\(filter.label)::text IS NULL OR v.label = \(filter.label))
                  AND (\(filter.batch)::text IS NULL OR e.batch = \(filter.batch))
                  AND (NOT \(filter.review) OR (v.decided_by = 'panel'
                                                AND (v.status <> 'agreed' OR v.outcome IN ('relabel', 'clarify'))))
                ORDER BY e.id
                """)
            while true {
                let rows = try await connection.query("FETCH 2000 FROM jury_export")
                if rows.isEmpty { break }
                try write(rows.map { $0["line"] ?? "" })
            }
        }
    }

    /// Verdicts of a run per status, label, outcome and who decided: for an export's manifest.
    public func verdictCounts(runID: Int64) async throws -> [String: [String: Int]] {
        var counts: [String: [String: Int]] = [:]
        for row in try await connection.query(
            """
            SELECT 'status' AS kind, status AS value, count(*)::int AS n FROM verdicts WHERE run_id = \(runID) GROUP BY status
            UNION ALL SELECT 'label', coalesce(label, '(none)'), count(*)::int FROM verdicts WHERE run_id = \(runID) GROUP BY label
            UNION ALL SELECT 'outcome', coalesce(outcome, '(no source label)'), count(*)::int FROM verdicts WHERE run_id = \(runID) GROUP BY outcome
            UNION ALL SELECT 'decided_by', decided_by, count(*)::int FROM verdicts WHERE run_id = \(runID) GROUP BY decided_by
            UNION ALL SELECT 'early', early::text, count(*)::int FROM verdicts WHERE run_id = \(runID) GROUP BY early
            """)
        {
            counts[try row.decode("kind"), default: [:]][try row.decode("value")] = try row.decode("n")
        }
        return counts
    }
}
