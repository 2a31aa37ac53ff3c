import JuryDomain
import JuryPostgres
public import JurySchema
public import Logging

/// One step of the schema, recorded in jury_schema_migrations once applied.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Jury's schema: the baseline (Schema/100_baseline/, its files applied in order as one step),
/// the migrations after it (Schema/101_*.sql, ...), and what a database made by the migrations
/// before the baseline needs to be taken as it (Schema/old_databases.sql).
public struct Schema: Sendable {
    public static let baselineVersion = 100
    public static let baselineName = "100_baseline"
    /// The versions a database made by the migrations before the baseline recorded.
    public static let versionsBeforeBaseline = 1...46

    public let baseline: Migration
    /// The baseline's functions, triggers and views (every file but 1_tables.sql; all CREATE OR
    /// REPLACE), which a database made before the baseline takes anew.
    public let baselineCode: String
    public let later: [Migration]
    public let forOldDatabases: String

    /// The schema this binary was built with.
    public static let embedded = Schema(files: SchemaFile.embedded)

    /// Every step, in order.
    public var migrations: [Migration] { [baseline] + later }
    /// The version of a database this binary has migrated.
    public var version: Int { migrations.map(\.version).max() ?? Self.baselineVersion }

    /// The build checked the names (embed-schema): a baseline part is `100_baseline/N_what.sql`,
    /// a later migration `NNN_what.sql`.
    public init(files: [SchemaFile]) {
        let parts = files.filter { $0.path.hasPrefix(Self.baselineName + "/") }.sorted { $0.path < $1.path }
        baseline = Migration(
            version: Self.baselineVersion, name: Self.baselineName, sql: parts.map(\.sql).joined(separator: "\n"))
        baselineCode = parts.filter { !$0.path.hasSuffix("/1_tables.sql") }.map(\.sql).joined(separator: "\n")
        later = files.compactMap { file in
            guard !file.path.contains("/"), let version = Int(file.path.prefix(3)), version > Self.baselineVersion
            else { return nil }
            // Named as the baseline is, without the extension: `101_batches`.
            let name = file.path.hasSuffix(".sql") ? String(file.path.dropLast(4)) : file.path
            return Migration(version: version, name: name, sql: file.sql)
        }.sorted { $0.version < $1.version }
        forOldDatabases = files.first { $0.path == "old_databases.sql" }?.sql ?? ""
    }
}

extension Store {
    /// Brings the database to this binary's schema: the baseline on a new database, then every
    /// migration after it not yet applied, each in its own transaction that first takes a
    /// transaction-level advisory lock, so that processes starting together apply each one
    /// exactly once. A database made by the migrations before the baseline is taken as the
    /// baseline once its catalog proves equal to it (see `adoptDatabaseBeforeBaseline`).
    /// Nothing is left on the session: it works through a transaction-pooling PgBouncer too.
    ///
    /// - Returns: the names of the steps this call applied (empty when up to date).
    @discardableResult
    public func migrate(_ schema: Schema = .embedded, logger: Logger) async throws -> [String] {
        var applied: [String] = []
        while let name = try await applyNext(schema, logger: logger) {
            applied.append(name)
        }
        if !applied.isEmpty {
            try await connection.query("SELECT jury_functions_without_jit()")
            try await grantRoles(logger: logger)
        }
        return applied
    }

    /// Creates the `jury_worker` and `jury_reader` roles when missing and sets the privileges
    /// of every table, view and function (Schema/100_baseline/9_roles.sql). Safe to run again at any time.
    public func grantRoles(logger: Logger) async throws {
        let problem: String? = try await connection.query("SELECT jury_grant_roles() AS problem")[0]
            .decodeIfPresent("problem")
        if let problem { logger.warning("roles not set up", metadata: [JuryMetadata.error: "\(problem)"]) }
    }

    /// Applies the next step the database lacks; returns its name, or nil when up to date.
    private func applyNext(_ schema: Schema, logger: Logger) async throws -> String? {
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
            if let newest = done.max(), newest > schema.version {
                throw JuryError.schemaTooNew(database: newest, binary: schema.version)
            }
            let step: Migration
            if done.contains(Schema.baselineVersion) {
                guard let next = schema.later.first(where: { !done.contains($0.version) }) else { return nil }
                step = next
                logger.info("applying migration", metadata: [JuryMetadata.migration: "\(step.name)"])
                try await connection.execute(script: step.sql)
            } else if done.isEmpty {
                step = schema.baseline
                logger.info("applying the baseline", metadata: [JuryMetadata.migration: "\(step.name)"])
                try await connection.execute(script: step.sql)
            } else {
                try Self.checkMadeBeforeBaseline(done)
                logger.info(
                    "taking a database made before the baseline as the baseline",
                    metadata: [JuryMetadata.migration: "\(schema.baseline.name)"])
                try await Self.adoptDatabaseBeforeBaseline(connection, schema: schema)
                step = schema.baseline
            }
            try await connection.query(
                "INSERT INTO jury_schema_migrations (version, name) VALUES (\(step.version), \(step.name))")
            return done.isEmpty || step.version > Schema.baselineVersion
                ? step.name : "\(step.name) (checked equal to this database, made by migrations 1 to 46)"
        }
    }

    /// A database that is neither new nor at the baseline must have been made by all of the
    /// migrations before it, and by nothing else.
    private static func checkMadeBeforeBaseline(_ done: Set<Int>) throws {
        let before = Schema.versionsBeforeBaseline
        let unknown = done.filter { !before.contains($0) }.sorted()
        let missing = before.filter { !done.contains($0) }
        guard unknown.isEmpty, missing.isEmpty else {
            let found = done.sorted().map(String.init).joined(separator: ", ")
            throw JuryError(
                .schema,
                """
                the database records schema versions this jury cannot carry on from (\(found)): \
                it takes a new database, or one made by all of the migrations before the baseline \
                (versions \(before.lowerBound) to \(before.upperBound)); \
                \(missing.isEmpty ? "" : "run `jury migrate` of a jury from before the baseline first, then this one; ")\
                nothing was changed
                """)
        }
    }

    /// Takes a database made by the migrations before the baseline (001 to 046) as the
    /// baseline, in the caller's transaction: runs Schema/old_databases.sql and the baseline's
    /// functions, triggers and views, then builds the baseline in a scratch schema and compares
    /// the two catalogs. If they differ it throws, naming what differs, and the transaction
    /// rolls back: nothing is changed.
    private static func adoptDatabaseBeforeBaseline(_ connection: PostgresConnection, schema: Schema) async throws {
        let scratch = "jury_baseline_check"
        try await connection.execute(script: schema.forOldDatabases)
        try await connection.execute(script: schema.baselineCode)
        try await connection.query("SELECT jury_functions_without_jit()")
        let searchPath: String = try await connection.query("SELECT current_setting('search_path') AS path")[0]
            .decode("path")
        let database = try await SchemaCatalog.read(connection)

        // The baseline's own objects, built where nothing else is, and read as the database's were.
        try await connection.execute(
            script: "CREATE SCHEMA \(scratch); SELECT set_config('search_path', '\(scratch)', true)")
        try await connection.execute(script: schema.baseline.sql)
        try await connection.query("SELECT jury_functions_without_jit()")
        let baseline = try await SchemaCatalog.read(connection)
        try await connection.query("SELECT set_config('search_path', \(searchPath), true)")
        try await connection.execute(script: "DROP SCHEMA \(scratch) CASCADE")

        let differences = SchemaCatalog.differences(database: database, baseline: baseline)
        guard differences.isEmpty else {
            let shown = differences.prefix(20).joined(separator: "; ")
            let more = differences.count > 20 ? "; and \(differences.count - 20) more" : ""
            throw JuryError(
                .schema,
                """
                the database was made by the migrations before the baseline, but its schema differs \
                from the baseline's: \(shown)\(more); nothing was changed
                """)
        }
    }
}
