import JuryDomain
import JuryPostgres
public import Logging

/// One numbered SQL file from Schema/.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// The schema's migrations, from Schema/ (embedded in the binary by scripts/embed-schema).
public enum Migrations {}

extension Store {
    /// Applies every migration newer than the database's, each in its own transaction, under
    /// an advisory lock so that processes starting together apply each one exactly once.
    ///
    /// - Returns: the names of the migrations this call applied (empty when up to date).
    @discardableResult
    public func migrate(_ migrations: [Migration] = Migrations.embedded, logger: Logger) async throws -> [String] {
        // A session-level lock: it must outlive the per-migration transactions below. Other
        // processes migrating at once wait for it however long the first one takes.
        try await connection.execute(script: "SET statement_timeout = 0")
        try await connection.query("SELECT pg_advisory_lock(hashtext('jury.migrate'))")
        do {
            let applied = try await applyLocked(migrations, logger: logger)
            try await connection.query("SELECT pg_advisory_unlock(hashtext('jury.migrate'))")
            return applied
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtext('jury.migrate'))")
            throw error
        }
    }

    private func applyLocked(_ migrations: [Migration], logger: Logger) async throws -> [String] {
        try await connection.execute(
            script: """
                CREATE TABLE IF NOT EXISTS jury_schema_migrations (
                    version int PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
        let rows = try await connection.query("SELECT version FROM jury_schema_migrations")
        let done = Set(try rows.map { try $0.decode("version", as: Int.self) })
        if let newest = done.max(), let known = migrations.map(\.version).max(), newest > known {
            throw JuryError.schemaTooNew(database: newest, binary: known)
        }
        var applied: [String] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !done.contains(migration.version) {
            logger.info("applying migration", metadata: [JuryMetadata.migration: "\(migration.name)"])
            try await connection.transaction { connection in
                // A migration may rewrite large tables: it must not be cut short, nor give up on a lock.
                try await connection.execute(script: "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
                try await connection.execute(script: migration.sql)
                try await connection.query(
                    "INSERT INTO jury_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))"
                )
            }
            applied.append(migration.name)
        }
        return applied
    }
}
