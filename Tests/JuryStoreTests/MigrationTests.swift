import Foundation
import JuryDomain
import JuryPostgres
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
}
