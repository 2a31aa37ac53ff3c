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
    /// Applies every migration newer than the database's, each in its own transaction that
    /// first takes a transaction-level advisory lock, so that processes starting together
    /// apply each one exactly once. Nothing is left on the session: it works through a
    /// transaction-pooling PgBouncer too.
    ///
    /// - Returns: the names of the migrations this call applied (empty when up to date).
    @discardableResult
    public func migrate(_ migrations: [Migration] = Migrations.embedded, logger: Logger) async throws -> [String] {
        var applied: [String] = []
        while let name = try await applyNext(migrations, logger: logger) {
            applied.append(name)
        }
        if !applied.isEmpty {
            try await turnJITOffInFunctions()
            try await grantRoles(logger: logger)
        }
        return applied
    }

    /// Sets `jit = off` on every plpgsql function (Schema/038_functions_without_jit.sql): a
    /// migration that restates a function drops its settings.
    private func turnJITOffInFunctions() async throws {
        guard try await functionExists("jury_functions_without_jit") else { return }
        try await connection.query("SELECT jury_functions_without_jit()")
    }

    /// Whether the schema has the function yet: a database migrated only part way may not.
    private func functionExists(_ name: String) async throws -> Bool {
        try await connection.query("SELECT to_regproc(\(name)) IS NOT NULL AS found")[0].decode("found")
    }

    /// Creates the `jury_worker` and `jury_reader` roles when missing and sets the privileges
    /// of every table, view and function (Schema/017_roles.sql). Safe to run again at any time.
    public func grantRoles(logger: Logger) async throws {
        guard try await functionExists("jury_grant_roles") else { return }
        let problem: String? = try await connection.query("SELECT jury_grant_roles() AS problem")[0]
            .decodeIfPresent("problem")
        if let problem { logger.warning("roles not set up", metadata: [JuryMetadata.error: "\(problem)"]) }
    }

    /// Applies the oldest migration the database lacks; returns its name, or nil when up to date.
    private func applyNext(_ migrations: [Migration], logger: Logger) async throws -> String? {
        try await connection.transaction { connection in
            // A migration may rewrite large tables: it must not be cut short, nor give up on a
            // lock. Other processes migrating at once wait here however long the first one takes.
            try await connection.execute(script: "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext('jury.migrate'))")
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
            guard
                let next = migrations.sorted(by: { $0.version < $1.version }).first(where: {
                    !done.contains($0.version)
                })
            else { return nil }
            logger.info("applying migration", metadata: [JuryMetadata.migration: "\(next.name)"])
            try await connection.execute(script: next.sql)
            try await connection.query(
                "INSERT INTO jury_schema_migrations (version, name) VALUES (\(next.version), \(next.name))")
            return next.name
        }
    }
}
