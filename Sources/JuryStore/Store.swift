public import JuryDomain
public import JuryPostgres
public import Logging

/// Where Jury's database is and how to talk to it: what processes are given, to open stores with.
public struct Database: Sendable {
    /// A libpq connection string or `postgres://` URL; empty uses the `PG*` environment variables.
    public var conninfo: String
    /// Bounds on every wait for PostgreSQL.
    public var settings: PostgresSettings

    public init(conninfo: String, settings: PostgresSettings = PostgresSettings()) {
        self.conninfo = conninfo
        self.settings = settings
    }

    /// Opens a store on a connection of its own; `applicationName` shows in `pg_stat_activity`.
    public func connect(applicationName: String, logger: Logger) async throws -> Store {
        Store(
            try await PostgresConnection.connect(
                conninfo, applicationName: applicationName, settings: settings, logger: logger))
    }

    /// The `PG*` variables that name this database, for a child process such as pgbench.
    public func environment() throws -> [String: String] {
        try PostgresConnection.environment(for: conninfo)
    }
}

/// Every statement Jury runs, one typed method each: nothing else touches the database.
///
/// A store is one connection: statements from several tasks run one after the other, and a
/// transaction needs the store to its own task. The state changes are
/// `jury_*` functions in Schema/; the methods here call them and read the views.
public struct Store: Sendable {
    let connection: PostgresConnection

    init(_ connection: PostgresConnection) {
        self.connection = connection
    }

    /// Whether the database refused a value, not the statement as a whole: the same call with
    /// the same values fails again, and another without that value may succeed.
    public static func isRefusedValue(_ error: any Error) -> Bool {
        (error as? PostgresError)?.isDataError ?? false
    }

    /// True when the server stopped a transaction to break a deadlock, or for a serialization
    /// conflict: the same transaction, tried again, can succeed.
    public static func isConflict(_ error: any Error) -> Bool {
        guard let state = (error as? PostgresError)?.sqlState else { return false }
        return state == "40P01" || state == "40001"
    }

    /// Checks that the schema is there and at the version this binary carries.
    public func checkSchema() async throws {
        let exists = try await connection.query(
            "SELECT to_regclass('jury_schema_migrations') IS NOT NULL AS found")
        var version = 0
        if try exists[0].decode("found", as: Bool.self) {
            version = try await connection.query(
                "SELECT coalesce(max(version), 0) AS version FROM jury_schema_migrations")[0].decode("version")
        }
        let expected = Schema.embedded.version
        guard version == expected else {
            throw JuryError(
                .schema,
                version < expected
                    ? "the database schema is at version \(version), this jury needs \(expected): run `jury migrate` first"
                    : "the database schema (version \(version)) is newer than this jury (\(expected)): upgrade jury")
        }
    }

    /// The backend's process id, for `pg_terminate_backend` in tests and for logs.
    public func backendPID() async throws -> Int32 {
        try await connection.backendPID()
    }
}

extension RunState: PostgresArrayElement, PostgresDecodable {}
extension ExampleState: PostgresArrayElement, PostgresDecodable {}
extension JobState: PostgresArrayElement, PostgresDecodable {}
extension Verdict.Status: PostgresArrayElement, PostgresDecodable {}
extension SourceOutcome: PostgresArrayElement, PostgresDecodable {}
extension DecidedBy: PostgresArrayElement, PostgresDecodable {}

extension ConsensusRule: PostgresArrayElement, PostgresDecodable {
    public var postgresText: String? { description }
    public init?(postgresText: String) { self.init(description: postgresText) }
}
