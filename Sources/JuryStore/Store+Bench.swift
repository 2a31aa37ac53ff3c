public import JuryDomain

extension Store {
    /// A pgbench script doing what a worker does to the queue, in Jury's own SQL: each
    /// transaction claims `perJudge` jobs of every judge of the run, then records a vote for each.
    public static func pgbenchScript(run: StoredRun, perJudge: Int) -> String {
        let judges = run.config.judges.map(\.name)
        let runs = "{" + judges.map { _ in String(run.id) }.joined(separator: ",") + "}"
        let judgeArray = "{" + judges.joined(separator: ",") + "}"
        let counts = "{" + judges.map { _ in String(perJudge) }.joined(separator: ",") + "}"
        let fill = { (value: String) in "array_fill(\(value), ARRAY[cardinality(':ids'::bigint[])])" }
        return """
            SELECT array_agg(job_id)::text AS ids, array_agg(claim)::text AS claims FROM jury_claim_jobs('pgbench-:client_id', 60, '\(runs)'::bigint[], '\(judgeArray)'::text[], '\(counts)'::int[]) \\gset
            SELECT count(*) FROM jury_record_votes('pgbench-:client_id', ':ids'::bigint[], ':claims'::int[], \(fill("'\(run.config.labels[0])'::text")), \(fill("'pgbench'::text")), \(fill("1")), \(fill("1::bigint")), \(fill("1::bigint")), NULL::bigint[], NULL::text[], NULL::text[], NULL::float8[]);

            """
    }
}
