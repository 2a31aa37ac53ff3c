import ArgumentParser
import Foundation
import JuryCore
import Logging
import NIOConcurrencyHelpers

@main
struct Jury: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jury",
        abstract: "Curate training data by the consensus of a panel of LLM judges, on PostgreSQL.",
        discussion: """
            A typical run:
              jury migrate
              jury run create --config run.yaml
              jury enqueue --run NAME corpus.jsonl
              jury worker &   jury reducer &      (as many of each, on as many machines, as you like)
              jury status --run NAME
              jury export --run NAME --status agreed curated.jsonl

            The database comes from --database, else DATABASE_URL, else the PG* variables.
            """,
        subcommands: [
            Migrate.self, RunCommand.self, Enqueue.self, WorkerCommand.self, ReducerCommand.self, Status.self,
            Retry.self, Export.self, MockJudge.self, Bench.self,
        ])
}

/// Options every database command takes.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .long,
        help: """
            libpq connection string or postgres:// URL. Default: $DATABASE_URL, else the PG* variables. \
            Prefer DATABASE_URL or PGPASSWORD/.pgpass for passwords: arguments are visible in the process list.
            """)
    var database: String?

    @Option(name: .long, help: "How much to log, to stderr.")
    var logLevel: Logger.Level = .info

    @Option(help: "Seconds a statement may run before PostgreSQL cancels it (0: no limit).")
    var statementTimeout = 120.0

    @Option(help: "Seconds a statement may wait for a lock (0: no limit).")
    var lockTimeout = 30.0

    @Option(help: "Seconds a transaction may sit idle before PostgreSQL ends the session (0: no limit).")
    var idleInTransactionTimeout = 120.0

    /// The bounds on every wait for PostgreSQL. Connection-level ones (connect_timeout,
    /// keepalives, tcp_user_timeout) have defaults the connection string may override.
    var settings: PostgresSettings {
        func bound(_ seconds: Double) -> Duration? { seconds > 0 ? .milliseconds(Int64(seconds * 1000)) : nil }
        var settings = PostgresSettings()
        settings.statementTimeout = bound(statementTimeout)
        settings.lockTimeout = bound(lockTimeout)
        settings.idleInTransactionTimeout = bound(idleInTransactionTimeout)
        return settings
    }

    func validate() throws {
        for (name, value) in [
            ("--statement-timeout", statementTimeout), ("--lock-timeout", lockTimeout),
            ("--idle-in-transaction-timeout", idleInTransactionTimeout),
        ] where !(value >= 0 && value < 1e7) {
            throw ValidationError("\(name) must be a number of seconds, 0 or more")
        }
    }

    var conninfo: String {
        database ?? ProcessInfo.processInfo.environment["DATABASE_URL"] ?? ""
    }

    func makeLogger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }

    /// Connects and checks that the schema is there and current.
    func connect(_ label: String, logger: Logger) async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(
            conninfo, applicationName: label, settings: settings, logger: logger)
        let exists = try await connection.query("SELECT to_regclass('jury_schema_migrations') IS NOT NULL AS found")
        var version = 0
        if try exists[0].decode("found", as: Bool.self) {
            version = try await connection.query(
                "SELECT coalesce(max(version), 0) AS version FROM jury_schema_migrations")[0].decode("version")
        }
        let expected = Migrations.embedded.map(\.version).max() ?? 0
        guard version == expected else {
            throw JuryError(
                .schema,
                version < expected
                    ? "the database schema is at version \(version), this jury needs \(expected): run `jury migrate` first"
                    : "the database schema (version \(version)) is newer than this jury (\(expected)): upgrade jury")
        }
        return connection
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Runs `body` until it returns, calling `onSignal` on the first SIGINT or SIGTERM; a second one exits at once.
func untilSignalled(onSignal: @escaping @Sendable () -> Void, _ body: () async throws -> Void) async throws {
    let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if SignalState.received.withLockedValue({ count in
                count += 1
                return count
            }) > 1 {
                FileHandle.standardError.write(Data("second signal: exiting now\n".utf8))
                exit(130)
            }
            onSignal()
        }
        source.resume()
        return source
    }
    defer { signals.forEach { $0.cancel() } }
    try await body()
}

enum SignalState {
    static let received = NIOLockedValueBox(0)
}
