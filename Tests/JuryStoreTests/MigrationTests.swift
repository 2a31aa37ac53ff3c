import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryRuntime
import JurySchema
import JuryStore
import JuryTestSupport
import Testing

@Suite("Migrations")
struct MigrationTests {
    /// The migrations before the baseline, as they were (Tests/Fixtures/schema-before-baseline).
    static let migrationsBeforeBaseline: [Migration] = {
        let directory = repositoryRoot.appendingPathComponent("Tests/Fixtures/schema-before-baseline")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".sql") }.sorted().map { name in
            Migration(
                version: Int(name.prefix(3)) ?? 0, name: name,
                sql: (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? "")
        }
    }()

    @Test func theBinaryCarriesEveryFileOfSchema() throws {
        let directory = repositoryRoot.appendingPathComponent("Schema")
        let walk = FileManager.default.enumerator(atPath: directory.path)
        let files = (walk?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == SchemaFile.embedded.map(\.path))
        for file in SchemaFile.embedded {
            let sql = try String(contentsOf: directory.appendingPathComponent(file.path), encoding: .utf8)
            #expect(sql == file.sql, "\(file.path) differs from what the build embedded")
        }
        #expect(Schema.embedded.baseline.sql.contains("CREATE TABLE jobs"))
        #expect(!Schema.embedded.baselineCode.contains("CREATE TABLE"))
        #expect(Self.migrationsBeforeBaseline.map(\.version) == Array(Schema.versionsBeforeBaseline))
    }

    @Test(.freshDatabase) func applyingTwiceIsANoOp() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        // The test database comes migrated.
        #expect(try await jury.migrate(logger: TestDatabase.logger).isEmpty)
        #expect(
            try await connection.count("SELECT count(*) FROM jury_schema_migrations")
                == Schema.embedded.migrations.count)
    }

    @Test(.freshDatabase) func tenProcessesMigratingANewDatabaseApplyTheBaselineOnce() async throws {
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
        // Each step once, whichever process applied it.
        #expect(applied.sorted() == Schema.embedded.migrations.map(\.name))
        #expect(try await setup.count("SELECT count(*) FROM jury_schema_migrations") == applied.count)
        #expect(try await setup.count("SELECT count(*) FROM pg_views WHERE viewname = 'jury_run_progress'") == 1)
    }

    /// The baseline defines what the migrations before it left, but for what only their own
    /// history needed; and a database they made, once migrated, has the baseline's catalog
    /// exactly (pg_dump --schema-only, every function body included), its data kept.
    @Test(.freshDatabase) func aDatabaseMadeByTheMigrationsBeforeTheBaselineBecomesIt() async throws {
        // The baseline alone (the migrations after it come after), on a schema made as the other's is.
        let baselineOnly = Schema(
            files: SchemaFile.embedded.filter { !$0.path.hasPrefix("1") || $0.path.hasPrefix("100_") })
        #expect(baselineOnly.later.isEmpty)
        let setup = try await connect(try TestDatabase.url)
        try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        try await store(try TestDatabase.url).migrate(baselineOnly, logger: TestDatabase.logger)
        let baselineDump = try await schemaDump(try TestDatabase.url)
        try await TestDatabase.withFresh { url in
            let setup = try await connect(url)
            try await Self.makeDatabaseBeforeBaseline(setup)
            // Work done under the old schema: a run, its examples, votes, failed jobs and verdicts.
            let jury = try await store(url)
            let run = try await createRun(ConsensusFixture.yaml(), in: jury)
            try await enqueue(
                try ConsensusFixture.writeLabelledCorpus([("a", nil, nil), ("b", nil, nil)]), run: run.name, in: jury)
            _ = try await ConsensusFixture.castVotes(
                ["a": ["valid", "valid", "valid", "valid"], "b": ["valid", "valid", nil, nil]], run: run, in: jury)
            try await ConsensusFixture.decideAll(jury)

            let before = try await schemaDump(url)
            #expect(
                Self.objectsThatDiffer(before, baselineDump)
                    == [
                        "jobs", "jury_count_jobs", "jury_counts_from_tables", "jury_record_votes", "jury_release_jobs",
                    ],
                """
                what the baseline changed: the jobs' 'done' state and the branches that read it, \
                jury_record_votes of before 043, and a comment that named a migration
                """)

            let adopted = try await jury.migrate(baselineOnly, logger: TestDatabase.logger)
            #expect(adopted.count == 1 && adopted[0].hasPrefix("100_baseline"), "\(adopted)")
            #expect(try await schemaDump(url) == baselineDump)
            // Then the migrations after the baseline, as on any database at the baseline.
            #expect(try await jury.migrate(logger: TestDatabase.logger) == Array(Schema.embedded.later.map(\.name)))
            #expect(try await jury.migrate(logger: TestDatabase.logger).isEmpty)
            #expect(try await setup.count("SELECT count(*) FROM votes") == 6)
            #expect(try await setup.count("SELECT count(*) FROM verdicts") == 2)
            try await expectCountsMatchTables(setup)
            try await jury.checkSchema()
        }
    }

    /// A database the old migrations made and someone changed since is not taken as the
    /// baseline: the error names what differs, and the database is left as it was.
    @Test(.freshDatabase) func aChangedDatabaseFromBeforeTheBaselineIsRefusedUntouched() async throws {
        let setup = try await connect(try TestDatabase.url)
        try await Self.makeDatabaseBeforeBaseline(setup)
        try await setup.execute(script: "ALTER TABLE votes ADD COLUMN reviewer text; DROP INDEX jobs_erring")
        let before = try await schemaDump(try TestDatabase.url)
        let error = await #expect(throws: JuryError.self) {
            try await store(try TestDatabase.url).migrate(logger: TestDatabase.logger)
        }
        let message = error?.description ?? ""
        #expect(message.contains("column votes.reviewer is not in the baseline"), "\(message)")
        #expect(message.contains("index jobs_erring is missing"), "\(message)")
        #expect(message.contains("nothing was changed"))
        #expect(try await schemaDump(try TestDatabase.url) == before)
    }

    /// The settings the queue's functions depend on, which a migration that restates one of
    /// them (CREATE OR REPLACE drops them) must state again: plans kept and made without
    /// sequential scans, enqueue's sort in memory, and no JIT in any plpgsql function.
    @Test(.freshDatabase) func theQueuesFunctionsKeepTheirSettings() async throws {
        let connection = try await connect(try TestDatabase.url)
        let settings = try await connection.query(
            """
            SELECT p.proname AS name, array_to_string(p.proconfig, ' ') AS config FROM pg_proc p
            WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'jury\\_%'
              AND p.prolang = (SELECT l.oid FROM pg_language l WHERE l.lanname = 'plpgsql')
              AND p.prorettype <> 'trigger'::regtype
            """)
        var byName: [String: String] = [:]
        for row in settings { byName[try row.decode("name")] = try row.decodeIfPresent("config") ?? "" }
        #expect(byName["jury_claim_jobs"] != nil)
        for (name, config) in byName { #expect(config.contains("jit=off"), "\(name): \(config)") }
        let needed = [
            "jury_lock_examples_of": ["plan_cache_mode=force_generic_plan", "enable_seqscan=off"],
            "jury_settle_examples": ["plan_cache_mode=force_generic_plan", "enable_seqscan=off"],
            "jury_claim_ready_examples": ["enable_seqscan=off"],
            "jury_insert_lines": ["work_mem=64MB"],
        ]
        for (name, wanted) in needed {
            for setting in wanted {
                #expect(byName[name]?.contains(setting) == true, "\(name): \(byName[name] ?? "missing")")
            }
        }
    }

    /// Only a database made by all of the migrations before the baseline is carried on.
    @Test(.freshDatabase) func aDatabaseMadeByOnlySomeOfTheOldMigrationsIsRefused() async throws {
        let setup = try await connect(try TestDatabase.url)
        try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        try await Self.apply(Array(Self.migrationsBeforeBaseline.prefix(20)), on: setup)
        let error = await #expect(throws: JuryError.self) {
            try await store(try TestDatabase.url).migrate(logger: TestDatabase.logger)
        }
        #expect(error?.description.contains("from before the baseline first") == true, "\(String(describing: error))")
        #expect(try await setup.count("SELECT count(*) FROM jury_schema_migrations") == 20)
    }

    /// Replaces the database's schema by what the migrations before the baseline made, applied
    /// as the jury of that time applied them.
    static func makeDatabaseBeforeBaseline(_ connection: PostgresConnection) async throws {
        try await connection.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        try await apply(migrationsBeforeBaseline, on: connection)
    }

    static func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws {
        try await connection.execute(
            script: """
                CREATE TABLE jury_schema_migrations (
                    version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """)
        for migration in migrations {
            try await connection.transaction { connection in
                try await connection.execute(script: migration.sql)
                try await connection.query(
                    "INSERT INTO jury_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))"
                )
            }
        }
        if migrations.contains(where: { $0.version == 38 }) {
            try await connection.query("SELECT jury_functions_without_jit()")
        }
        if migrations.contains(where: { $0.version == 17 }) {
            try await connection.query("SELECT jury_grant_roles()")
        }
    }

    /// The names of the objects whose pg_dump entries differ between two dumps (an object's ACL
    /// counts as the object).
    static func objectsThatDiffer(_ a: String, _ b: String) -> [String] {
        // Each entry of a dump opens with a comment "-- Name: jobs; Type: TABLE; ...".
        func entries(_ dump: String) -> [String: String] {
            var found: [String: String] = [:]
            for entry in dump.components(separatedBy: "\n-- Name: ").dropFirst() {
                found[String(entry.prefix { $0 != "\n" })] = entry
            }
            return found
        }
        let (left, right) = (entries(a), entries(b))
        let differing = Set(left.keys).union(right.keys).filter { left[$0] != right[$0] }
        return Set(
            differing.map { header in
                var name = String(header.prefix { $0 != ";" && $0 != "(" })
                for kind in ["FUNCTION ", "TABLE ", "VIEW "] where name.hasPrefix(kind) { name.removeFirst(kind.count) }
                return name
            }
        ).sorted()
    }
}

/// `pg_dump --schema-only` of a database, without its blank lines and the random token of its
/// \restrict lines: the same schema gives the same text.
func schemaDump(_ url: String) async throws -> String {
    guard let pgDump = PostgresProgram.path("pg_dump") else { throw JuryError(.io, "pg_dump not found") }
    let (status, output) = try await offThePool { try Subprocess.run(pgDump, ["--schema-only", "--dbname", url]) }
    guard status == 0 else { throw JuryError(.io, "pg_dump failed: \(output)") }
    return output.split(separator: "\n", omittingEmptySubsequences: true)
        .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
        .joined(separator: "\n")
}
