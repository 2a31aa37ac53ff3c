import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

@Suite("Migrations")
struct MigrationTests {
    @Test func embeddedSchemaMatchesTheSQLFiles() throws {
        let directory = repositoryRoot.appendingPathComponent("Schema")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
            .sorted()
        #expect(files == Migrations.embedded.map(\.name), "run scripts/embed-schema after editing Schema/")
        for migration in Migrations.embedded {
            let sql = try String(contentsOf: directory.appendingPathComponent(migration.name), encoding: .utf8)
            #expect(
                sql.trimmingCharacters(in: .newlines) == migration.sql,
                "run scripts/embed-schema: \(migration.name) changed")
        }
    }

    @Test(.freshDatabase) func applyingTwiceIsANoOp() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        // The test database comes migrated.
        #expect(try await jury.migrate(logger: TestDatabase.logger).isEmpty)
        #expect(
            try await connection.count("SELECT count(*) FROM jury_schema_migrations") == Migrations.embedded.count)
    }

    @Test(.freshDatabase) func tenProcessesMigratingAtOnceApplyEachMigrationOnce() async throws {
        let url = try TestDatabase.url
        let setup = try await connect(url)
        // Start from an empty database.
        try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        let applied = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<10 {
                group.addTask {
                    return try await store(url).migrate(logger: TestDatabase.logger)
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(applied.sorted() == Migrations.embedded.map(\.name).sorted())
        #expect(try await setup.count("SELECT count(*) FROM jury_schema_migrations") == Migrations.embedded.count)
        #expect(try await setup.count("SELECT count(*) FROM pg_views WHERE viewname = 'jury_run_progress'") == 1)
    }

    /// 026: jobs an example left pending when failures made it ready, before that migration
    /// cancelled them, are cancelled by it, and the counters follow.
    @Test(.freshDatabase) func jobsStrandedBeforeMigration026AreCancelledByIt() async throws {
        let url = try TestDatabase.url
        let setup = try await connect(url)
        try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        let jury = try await store(url)
        let before = Array(Migrations.embedded.prefix { $0.version < 26 })
        #expect(try await jury.migrate(before, logger: TestDatabase.logger).count == 25)
        let run = try await createRun(ConsensusFixture.yaml(), in: jury)
        try await enqueue(
            try ConsensusFixture.writeLabelledCorpus([("a", nil, nil), ("b", nil, nil)]), run: run.name, in: jury)
        let claimed = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 1)], owner: "t", leaseSeconds: 60)
        try await jury.record(
            [
                .release(
                    claimed[0], error: "no answer", CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: true))
            ],
            owner: "t")
        #expect(
            try await setup.count(
                "SELECT count(*) FROM jobs j JOIN examples e ON e.id = j.example_id WHERE e.state = 'ready' AND j.state = 'pending'"
            ) == 3)
        #expect(try await jury.migrate(logger: TestDatabase.logger).first == "026_short_examples_cancel_their_jobs.sql")
        #expect(try await setup.count("SELECT count(*) FROM jobs WHERE state = 'cancelled'") == 3)
        #expect(try await setup.count("SELECT count(*) FROM jobs WHERE state = 'pending'") == 4)
        #expect(
            try await setup.count(
                "SELECT count(*) FROM examples WHERE state = 'ready' AND jobs_open = 0 AND jobs_cancelled = 3") == 1)
        try await expectCountsMatchTables(setup)
    }

    /// Done jobs and invalid answers written before 037 keep their counts and their examples,
    /// and a purge still removes them without changing what the run counted.
    @Test(.freshDatabase) func doneJobsAndInvalidAnswersFromBeforeMigration037() async throws {
        let url = try TestDatabase.url
        let setup = try await connect(url)
        try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        let jury = try await store(url)
        let before = Array(Migrations.embedded.prefix { $0.version < 37 })
        #expect(try await jury.migrate(before, logger: TestDatabase.logger).count == 36)
        let run = try await createRun(ConsensusFixture.yaml(), in: jury)
        try await enqueue(
            try ConsensusFixture.writeLabelledCorpus([("a", nil, nil), ("b", nil, nil)]), run: run.name, in: jury)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 2)]
        let claimed = try await jury.claim(want, owner: "t", leaseSeconds: 60)
        let answer = CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: false)
        // A vote as the workers of that schema recorded it (043 added two arguments).
        func recordAsBefore(_ job: ClaimedJob) async throws {
            try await setup.query(
                """
                SELECT jury_record_votes('t', ARRAY[\(job.id)::bigint], ARRAY[\(job.claim)::int], ARRAY['valid'],
                    ARRAY['ok'], ARRAY[1], NULL::bigint[], NULL::bigint[], NULL::bigint[], NULL::text[], NULL::text[],
                    NULL::float8[])
                """)
        }
        try await jury.record([.release(claimed[0], error: "not JSON", answer, answer: "no idea")], owner: "t")
        try await recordAsBefore(claimed[1])
        let again = try await jury.claim(want, owner: "t", leaseSeconds: 60)
        try await recordAsBefore(again[0])
        #expect(try await setup.count("SELECT count(*) FROM jobs WHERE state = 'done'") == 2)

        #expect(try await jury.migrate(logger: TestDatabase.logger).first == "037_votes_replace_done_jobs.sql")
        #expect(
            try await setup.count(
                "SELECT count(*) FROM jury_invalid_answers WHERE example = \(claimed[0].externalID) AND answer = 'no idea'"
            )
                == 1)
        try await expectCountsMatchTables(setup)
        // The other judges vote after the migration: their jobs go, the old done rows stay and count once.
        try await ConsensusFixture.castVotes(
            ["a": ["valid", "valid", "valid", "valid"], "b": ["valid", "valid", "valid", "valid"]], run: run, in: jury)
        #expect(try await setup.count("SELECT count(*) FROM jobs") == 2)
        let progress = try await setup.query("SELECT done FROM jury_run_progress")[0]
        #expect(progress["done"] == "8")
        try await expectCountsMatchTables(setup)

        try await ConsensusFixture.decideAll(jury)
        _ = try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 1, in: jury)
        #expect(
            try await setup.count("SELECT count(*) FROM jobs")
                + (try await setup.count("SELECT count(*) FROM invalid_answers")) == 0)
        #expect(try await setup.query("SELECT done FROM jury_run_progress")[0]["done"] == "8")
        try await expectCountsMatchTables(setup)
    }
}
