import Foundation
import JuryCore
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

    @Test func applyingTwiceIsANoOp() async throws {
        try await TestDatabase.withFresh { url in
            let connection = try await connect(url)
            // The test database comes migrated.
            #expect(try await Migrations.apply(on: connection, logger: TestDatabase.logger).isEmpty)
            #expect(
                try await connection.count("SELECT count(*) FROM jury_schema_migrations") == Migrations.embedded.count)
        }
    }

    @Test func tenProcessesMigratingAtOnceApplyEachMigrationOnce() async throws {
        try await TestDatabase.withFresh { url in
            let setup = try await connect(url)
            // Start from an empty database.
            try await setup.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            let applied = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        let connection = try await connect(url)
                        return try await Migrations.apply(on: connection, logger: TestDatabase.logger)
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(applied.sorted() == Migrations.embedded.map(\.name).sorted())
            #expect(try await setup.count("SELECT count(*) FROM jury_schema_migrations") == Migrations.embedded.count)
            #expect(try await setup.count("SELECT count(*) FROM pg_views WHERE viewname = 'jury_run_progress'") == 1)
        }
    }
}
