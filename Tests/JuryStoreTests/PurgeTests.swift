import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

private typealias Fixture = ConsensusFixture

@Suite("Purge")
struct PurgeTests {
    /// Runs "cons" and "other", each with the examples p0, p1, ... and no votes yet.
    func twoRuns(examplesEach count: Int, in jury: Store) async throws -> (StoredRun, StoredRun) {
        let run = try await createRun(Fixture.yaml(), in: jury)
        let other = try await createRun(Fixture.yaml().replacing("name: cons\n", with: "name: other\n"), in: jury)
        let rows = (0..<count).map { (id: "p\($0)", human: String?.none, source: String?.none) }
        try await enqueue(try Fixture.writeLabelledCorpus(rows), run: run.name, in: jury)
        try await enqueue(try Fixture.writeLabelledCorpus(rows), run: other.name, in: jury)
        return (run, other)
    }

    @Test(.freshDatabase) func aFinishedRunsJobsGoAndWhatItDecidedStays() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let (run, other) = try await twoRuns(examplesEach: 5, in: jury)
        let votes = Dictionary(
            uniqueKeysWithValues: (0..<4).map { ("p\($0)", [String?](repeating: "valid", count: 4)) })
        try await Fixture.castVotes(votes, run: run, in: jury)
        try await Fixture.decideAll(jury)

        // p4 is still voting: refused, and nothing is deleted.
        await #expect(throws: JuryError.self) {
            try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 2, in: jury)
        }
        // Four examples voted, their 16 jobs replaced by votes; p4's 4 jobs are left.
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE run_id = \(run.id)") == 4)
        // A job under way is refused even in a cancelled run.
        try await connection.query("UPDATE jobs SET run_after = now() WHERE state = 'pending'")
        let held = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 1)], owner: "w", leaseSeconds: 60)
        try await jury.setRunState(.cancelled, run: run.name)
        do {
            _ = try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 2, in: jury)
            Issue.record("a run with a job running was purged")
        } catch let error as JuryError {
            #expect(error.message.contains("1 of its jobs are still running"))
        }
        #expect(try await jury.record([.returned(held[0], error: "stopping")], owner: "w").outcomes == 1)

        let progressBefore = try await connection.query("SELECT * FROM jury_run_progress WHERE run = \(run.name)")
        let report = try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 2, in: jury)
        #expect(report.before.contains { $0.table == "jobs" } && report.after.contains { $0.table == "jobs" })
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE run_id = \(run.id)") == 0)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE run_id = \(other.id)") == 20)
        #expect(try await connection.count("SELECT count(*) FROM votes WHERE run_id = \(run.id)") == 16)
        #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE run_id = \(run.id)") == 4)
        // What status shows of the run stays as it was.
        let progressAfter = try await connection.query("SELECT * FROM jury_run_progress WHERE run = \(run.name)")
        #expect(progressAfter[0].values == progressBefore[0].values)

        // --everything: the run goes with all it holds; the other run is untouched.
        let gone = try await Operations.purge(run: run.name, everything: true, examplesPerTransaction: 2, in: jury)
        #expect(gone.examples == 5)
        #expect(try await connection.count("SELECT count(*) FROM runs WHERE id = \(run.id)") == 0)
        for table in ["examples", "votes", "verdicts", "run_counts", "judge_spend"] {
            #expect(
                try await connection.count("SELECT count(*) FROM \(unescaped: table) WHERE run_id = \(run.id)") == 0)
        }
        #expect(try await connection.count("SELECT count(*) FROM examples WHERE run_id = \(other.id)") == 5)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func reindexingGivesTheIndexesTheirSpaceBack() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        let run = try await createRun(runYAML(models: ["a", "b"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
        try await enqueue(try writeCorpus(count: 3000), run: run.name, in: jury)
        try await jury.setRunState(.cancelled, run: run.name)
        func jobs(_ sizes: [Store.TableSize]) throws -> Store.TableSize {
            try #require(sizes.first { $0.table == "jobs" })
        }

        // VACUUM makes the index pages reusable, but the indexes keep their size.
        let vacuumed = try await Operations.purge(
            run: run.name, everything: false, examplesPerTransaction: 1000, in: jury)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
        #expect(try jobs(vacuumed.after).indexBytes == jobs(vacuumed.before).indexBytes)
        // Rebuilt, they shrink, and stay valid.
        let rebuilt = try await Operations.purge(
            run: run.name, everything: false, reindex: true, examplesPerTransaction: 1000, in: jury)
        #expect(try jobs(rebuilt.after).indexBytes < jobs(vacuumed.after).indexBytes)
        #expect(try await connection.count("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0)
    }

    @Test(.freshDatabase) func examplesTakeTheirJobsAndVotesWithThem() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        let run = try await createRun(Fixture.yaml(), in: jury)
        let rows = (0..<6).map { (id: "p\($0)", human: String?.none, source: String?.none) }
        try await enqueue(try Fixture.writeLabelledCorpus(rows), run: run.name, in: jury)
        // Three judges vote; the fourth's jobs fail, and stay.
        let votes = Dictionary(uniqueKeysWithValues: (0..<6).map { ("p\($0)", ["valid", "valid", "valid", nil]) })
        try await Fixture.castVotes(votes, run: run, in: jury)
        #expect(try await connection.count("SELECT count(*) FROM votes") == 18)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 6)
        // One chunk of a purge --everything: two examples go, and their jobs and votes (no
        // foreign key does it, a trigger does), counted out of the run's counts.
        #expect(try await jury.purgeRun(runID: run.id, limit: 2) == 2)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 4)
        #expect(try await connection.count("SELECT count(*) FROM votes") == 12)
        for table in ["jobs", "votes"] {
            #expect(
                try await connection.count(
                    PostgresQuery(
                        stringLiteral:
                            "SELECT count(*) FROM \(table) t WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE e.id = t.example_id)"
                    )) == 0)
        }
        try await expectCountsMatchTables(connection)
        // Deleting the run takes the rest, verdicts too (examples have no key to the run).
        try await Fixture.decideAll(jury)
        #expect(try await connection.count("SELECT count(*) FROM verdicts") == 4)
        try await jury.deleteRun(id: run.id)
        for table in ["examples", "jobs", "votes", "verdicts", "run_counts"] {
            #expect(try await connection.count(PostgresQuery(stringLiteral: "SELECT count(*) FROM \(table)")) == 0)
        }
    }

    /// Verdicts have no foreign keys: a reduction must neither write the verdict of an
    /// example that is gone or in another run, nor let one go while its verdict is being written.
    @Test(.freshDatabase) func aReductionWritesVerdictsOnlyForTheRunsExamplesThatStay() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let reducer = try await connect(url)
        let purger = try await connect(url)
        let (run, _) = try await twoRuns(examplesEach: 2, in: jury)
        let ids = try await reducer.query("SELECT id FROM examples ORDER BY run_id, id").map {
            try $0.decode("id", as: Int64.self)
        }
        let (kept, purged, othersExample, missing) = (ids[0], ids[1], ids[2], Int64(999_999_999))

        func replace(_ examples: [Int64]) async throws -> Int {
            let n = examples.count
            return try await reducer.query(
                """
                SELECT jury_replace_verdicts(\(run.id), \(examples)::bigint[], \([String](repeating: "valid", count: n))::text[],
                    \([String](repeating: "agreed", count: n))::text[], \([Double](repeating: 1, count: n))::float8[],
                    \([Int](repeating: 4, count: n))::int[], \([String](repeating: "unanimous", count: n))::text[],
                    \([String](repeating: "{}", count: n))::jsonb[], \([String](repeating: "people", count: n))::text[],
                    \([String?](repeating: nil, count: n))::text[], \([Bool](repeating: false, count: n))::boolean[]) AS written
                """)[0].decode("written")
        }

        // Another run's example and one that never was get no verdict.
        #expect(try await replace([kept, othersExample, missing]) == 1)
        #expect(try await reducer.count("SELECT count(*) FROM verdicts") == 1)
        #expect(try await reducer.count("SELECT count(*) FROM verdicts WHERE example_id = \(kept)") == 1)

        // An example deleted while its verdict is written goes after the reduction commits, and
        // takes the verdict with it.
        try await reducer.query("BEGIN")
        #expect(try await replace([purged]) == 1)
        let purgerPID = try await purger.backendPID()
        let deletion = Task { try await purger.query("DELETE FROM examples WHERE id = \(purged)") }
        try await eventually("the deletion waits for the reduction") {
            try await reducer.count(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = \(purgerPID) AND wait_event_type = 'Lock'") == 1
        }
        try await reducer.query("COMMIT")
        _ = try await deletion.value
        #expect(try await reducer.count("SELECT count(*) FROM verdicts WHERE example_id = \(purged)") == 0)
        #expect(
            try await reducer.count(
                "SELECT count(*) FROM verdicts v WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE e.id = v.example_id)")
                == 0)
    }
}
