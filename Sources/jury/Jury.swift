public import ArgumentParser
import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTelemetry
public import Logging
import ServiceLifecycle

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
              jury calibrate --run NAME          (the panel against human labels)
              jury export --run NAME --status agreed curated.jsonl
              jury export --run NAME --review review.jsonl
              jury import-labels --run NAME review.jsonl
              jury reviewer add NAME && jury serve   (review and dashboards in a browser)

            The database comes from --database, else DATABASE_URL, else the PG* variables.
            """,
        subcommands: [
            Migrate.self, RunCommand.self, Enqueue.self, WorkerCommand.self, ReducerCommand.self, Status.self,
            Retry.self, JudgeCommand.self, Reduce.self, Calibrate.self, Export.self, ImportLabels.self, Prompt.self,
            BatchCommand.self, Serve.self, ReviewerCommand.self, MockJudge.self, Bench.self,
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

    /// The database, with the bounds on every wait for it.
    var target: Database { Database(conninfo: conninfo, settings: settings) }

    /// Connects and checks that the schema is there and current.
    func connect(_ label: String, logger: Logger) async throws -> Store {
        let store = try await target.connect(applicationName: label, logger: logger)
        try await store.checkSchema()
        return store
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Runs a service (worker, reducer, mock judge) until SIGTERM or SIGINT, which shut it down
/// gracefully. A second signal, or a shutdown that outlasts `maximumShutdownSeconds`, cancels it:
/// it stops at once (a worker releases its jobs without waiting for their calls).
///
/// With several services, the last shuts down first: a worker drains while the metrics
/// endpoint before it still answers.
func runUntilSignalled(_ services: [any Service], maximumShutdownSeconds: Double, logger: Logger) async throws {
    // The signals come from StopSignals, not from the group's own (a dispatch source, which
    // could lose one).
    var configuration = ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger)
    configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(maximumShutdownSeconds * 1000))
    let group = ServiceGroup(configuration: configuration)
    let signals = StopSignals.caught
    let running = Task { try await group.run() }
    let watcher = Task {
        var received = 0
        for await signal in signals {
            received += 1
            if received == 1 {
                logger.info("received \(StopSignals.name(signal)): shutting down")
                await group.triggerGracefulShutdown()
            } else {
                FileHandle.standardError.write(Data("second signal: stopping now\n".utf8))
                running.cancel()
                return
            }
        }
    }
    defer { watcher.cancel() }
    do {
        try await running.value
    } catch is CancellationError {
        // Cancelled by the second signal: the service stopped at once, as asked.
    }
}

/// How workers and reducers learn of new work: LISTEN (the default), or polling, for
/// connections through PgBouncer in transaction pooling.
struct PollingOptions: ParsableArguments {
    @Flag(
        help: """
            Poll for work instead of LISTEN, and set or prepare nothing on the session: for connections \
            through PgBouncer in transaction pooling. The timeout options and jit = off are then not set; set them \
            on the role (ALTER ROLE ... SET statement_timeout = '120s', ALTER ROLE ... SET jit = off) or in \
            PgBouncer.
            """)
    var poll = false

    @Option(help: "Seconds between looks for work while idle (default: 2, or 0.5 with --poll).")
    var idlePollSeconds: Double?

    var idleSeconds: Double { idlePollSeconds ?? (poll ? 0.5 : 2) }

    func validate() throws {
        if let idlePollSeconds, !(idlePollSeconds >= 0.05 && idlePollSeconds <= 3600) {
            throw ValidationError("--idle-poll-seconds must be between 0.05 and 3600")
        }
    }

    /// The database, with session settings left out when polling through a pooler.
    func target(_ db: DatabaseOptions) -> Database {
        var database = db.target
        database.settings.setsSessionSettings = !poll
        database.settings.preparesStatements = !poll
        return database
    }
}

/// The operators' endpoint of a worker or reducer: metrics for Prometheus, and probes.
struct MetricsOptions: ParsableArguments {
    @Option(
        help: """
            Serve /metrics (Prometheus text format), /healthz (liveness) and /readyz (readiness) over HTTP \
            on this port; 0 picks a free one. Off unless given.
            """)
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint listens on.") var metricsHost = "0.0.0.0"

    func validate() throws {
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
    }

    /// When a port is given: makes Prometheus the process's metrics backend, and returns the
    /// endpoint's service, which says on stdout where it listens.
    func endpoint(
        probes: ProcessProbes, logger: Logger, beforeScrape: @escaping @Sendable () async -> Void = {}
    ) -> (any Service)? {
        guard let metricsPort else { return nil }
        let server = TelemetryServer(
            registry: TelemetryServer.bootstrap(), probes: probes, logger: logger, beforeScrape: beforeScrape)
        let host = metricsHost
        return server.service(host: host, port: metricsPort) { port in
            FileHandle.standardOutput.write(Data("metrics listening on http://\(host):\(port)/metrics\n".utf8))
        }
    }
}

/// What `--json` prints: snake_case keys in sorted order and ISO 8601 dates, indented, or on
/// one line (one object per line, for --watch).
func jsonText(_ value: some Encodable, oneLine: Bool = false) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = oneLine ? [.sortedKeys] : [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
