import ArgumentParser
import AsyncHTTPClient
import Foundation
import JuryDomain
import JuryJudges
import JuryRuntime
import JuryStore
import Logging
import NIOCore

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the database to this jury's schema (safe to run from many processes at once).",
        discussion: """
            On a new database it applies the baseline (version 100), then any migration after it \
            not yet applied. A database made by a jury from before the baseline (schema versions 1 \
            to 46) is taken as the baseline once its catalog proves equal to it; if anything \
            differs, it says what and changes nothing.

            Run it as the login that owns Jury's tables. It also creates the group roles jury_worker \
            (for worker and reducer processes: the queue's functions only) and jury_reader (the \
            monitoring views) when it may, and sets their privileges; running it again puts them right.
            """)
    @OptionGroup var db: DatabaseOptions

    func run() async throws {
        let logger = db.makeLogger("jury.migrate")
        let store = try await db.target.connect(applicationName: "jury migrate", logger: logger)
        let applied = try await store.migrate(logger: logger)
        // Already done when a migration was applied; otherwise this is what puts the roles right.
        if applied.isEmpty { try await store.grantRoles(logger: logger) }
        print(applied.isEmpty ? "schema up to date" : "applied \(applied.joined(separator: ", "))")
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create, list, update, pause, resume, cancel or purge runs.",
        subcommands: [Create.self, List.self, Update.self, Pause.self, Resume.self, Cancel.self, Purge.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a run from its YAML config (taxonomy, judges, prompt, consensus rule, retries).")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The run's YAML file.") var config: String

        func run() async throws {
            let logger = db.makeLogger("jury.run")
            let runConfig = try RunConfig.load(path: config)
            let store = try await db.connect("jury run", logger: logger)
            let (run, created) = try await store.createRun(runConfig)
            print(created ? "created run \(run.name)" : "run \(run.name) already exists with this config; unchanged")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs: state, examples decided and left, verdicts, failed jobs, cost.",
            discussion: """
                A run is done once the reducer has decided all its examples; enqueuing new examples \
                or retrying failed jobs makes it active again. The same figures are in the view jury_runs.
                """)
        @OptionGroup var db: DatabaseOptions
        @Flag(help: "Print the runs as a JSON array.") var json = false

        func run() async throws {
            let logger = db.makeLogger("jury.run")
            let store = try await db.connect("jury run", logger: logger)
            let runs = try await store.listRuns()
            if json {
                print(try jsonText(runs))
            } else {
                print(RunTable(runs).text, terminator: "")
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop claiming a run's jobs and sending its batches; calls and batches under way finish.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run.") var name: String
        func run() async throws { try await setState(.paused, name, db) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Claim a paused run's jobs again.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run.") var name: String
        func run() async throws { try await setState(.active, name, db) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a run for good, its open batches cancelled at the provider; its votes and verdicts stay.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run.") var name: String
        func run() async throws { try await setState(.cancelled, name, db) }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a finished run's jobs (or, with --everything, the whole run) and vacuum.",
            discussion: """
                A run can be purged once every example is decided (or the run was cancelled) and no job is \
                running. By default only its jobs go (a voted job went when its vote was recorded: what is left \
                is failed and cancelled jobs), the queue's bookkeeping, with the invalid answers kept for \
                people; examples, votes, verdicts and the counts jury status shows stay, so \
                exports and calibration still work. --everything deletes the run and all it holds. Rows go \
                in chunks of --examples-per-transaction, each its own short transaction, so workers on other \
                runs are not held up, and an interrupted purge can simply be run again. VACUUM then makes the \
                space reusable. --reindex also rebuilds the indexes of those tables without blocking writes \
                (REINDEX CONCURRENTLY), which returns their emptied pages; it reads the tables whole, so it \
                takes longer. The tables themselves keep their files: VACUUM FULL or pg_repack in a quiet \
                hour returns them to the operating system. Table sizes and dead rows are printed before and after.
                """)
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run.") var name: String
        @Flag(help: "Delete the run itself with its examples, votes and verdicts, not only its jobs.")
        var everything = false
        @Flag(help: "Rebuild the purged tables' indexes afterwards (REINDEX CONCURRENTLY), which shrinks them.")
        var reindex = false
        @Option(help: "Examples whose rows are deleted per transaction.") var examplesPerTransaction = 10_000

        func validate() throws {
            guard examplesPerTransaction > 0 else {
                throw ValidationError("--examples-per-transaction must be at least 1")
            }
        }

        func run() async throws {
            let store = try await db.connect("jury run", logger: db.makeLogger("jury.run"))
            let report = try await Operations.purge(
                run: name, everything: everything, reindex: reindex, examplesPerTransaction: examplesPerTransaction,
                in: store)
            print(everything ? "run \(name) deleted (\(report.examples) examples)" : "jobs of run \(name) deleted")
            print(Self.sizes(before: report.before, after: report.after))
        }

        static func sizes(before: [Store.TableSize], after: [Store.TableSize]) -> String {
            func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_048_576) }
            var lines = [
                "table            table before -> after     indexes before -> after   live rows before -> after   dead rows before -> after"
            ]
            for old in before {
                guard let new = after.first(where: { $0.table == old.table }) else { continue }
                lines.append(
                    old.table.padding(toLength: 16, withPad: " ", startingAt: 0)
                        + " \(megabytes(old.tableBytes)) -> \(megabytes(new.tableBytes))".padding(
                            toLength: 25, withPad: " ", startingAt: 0)
                        + " \(megabytes(old.indexBytes)) -> \(megabytes(new.indexBytes))".padding(
                            toLength: 26, withPad: " ", startingAt: 0)
                        + " \(old.liveRows) -> \(new.liveRows)".padding(toLength: 28, withPad: " ", startingAt: 0)
                        + " \(old.deadRows) -> \(new.deadRows)")
            }
            return lines.joined(separator: "\n")
        }
    }

    static func setState(_ state: RunState, _ name: String, _ db: DatabaseOptions) async throws {
        let store = try await db.connect("jury run", logger: db.makeLogger("jury.run"))
        try await store.setRunState(state, run: name)
        print("run \(name) is \(state)")
    }
}

struct Enqueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a JSONL corpus into a run: one job per example and judge.",
        discussion: """
            Each line is a JSON object with an "id" (string or integer, unique in the run), the fields the \
            prompt uses, and optionally "human_label" and "source_label" (labels of the taxonomy). The whole \
            file is checked first: a bad line stops the load before anything is written, and names the line. \
            Then it goes in by chunks of --examples-per-transaction, each its own transaction, --connections \
            of them at once. Ids compare by \
            their bytes. Ids already in the run are skipped, so enqueueing a file again is a no-op and an \
            interrupted enqueue resumes; ids whose line changed since are counted and the first few named.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run to add the examples to.") var run: String
    @Option(help: "The batch the examples belong to (default: the file's name without extension).") var batch: String?
    @Option(help: "The longest line accepted, in bytes.") var maxLineBytes = Enqueuer.defaultMaxLineBytes
    @Option(help: "Examples per transaction: short transactions let vacuum keep up on large corpora.")
    var examplesPerTransaction = 50_000
    @Option(
        help: """
            Connections that load chunks at once. Inserting keeps a server process's core busy: \
            2 keeps two busy; more helps only a server with more cores to spare.
            """)
    var connections = 2
    @Argument(help: "The JSONL file.") var file: String

    func validate() throws {
        guard maxLineBytes > 0 else { throw ValidationError("--max-line-bytes must be at least 1") }
        guard examplesPerTransaction > 0 else { throw ValidationError("--examples-per-transaction must be at least 1") }
        guard (1...64).contains(connections) else { throw ValidationError("--connections must be from 1 to 64") }
    }

    func run() async throws {
        let logger = db.makeLogger("jury.enqueue")
        var stores: [Store] = []
        for _ in 0..<connections { stores.append(try await db.connect("jury enqueue", logger: logger)) }
        let report = try await Enqueuer(
            stores: stores, logger: logger, maxLineBytes: maxLineBytes, examplesPerTransaction: examplesPerTransaction
        ).enqueue(file: file, run: run, batch: batch)
        print(
            "\(report.examples) examples read, \(report.new) new, \(report.examples - report.new) already in run \(run); \(report.jobs) jobs created"
        )
        if report.changed > 0 {
            let sample = report.changedIDs.map { "\"\($0)\"" }.joined(separator: ", ")
            print(
                "warning: \(report.changed) ids already in the run have a different payload, batch or label in this file "
                    + "(first: \(sample)); the run keeps what it had. Use new ids, or a new run, to label them anew.")
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim jobs, call the judges, record the votes; until SIGTERM or SIGINT.",
        discussion: """
            API keys are read from the environment variables each judge's api_key_env names. A worker that \
            lacks a judge's key leaves that judge's jobs to other workers.

            Failures that waiting cures (429, 5xx, timeouts, dropped connections) are retried with backoff \
            until the run's retry.give_up_after_seconds, without using up max_attempts, which counts wrong \
            answers. An answer that cannot be stored costs its own job, never the worker.

            On SIGTERM or SIGINT the worker stops claiming, lets calls in flight finish (up to \
            --drain-seconds), cancels and releases the rest, and exits 0 once every outcome is recorded. If \
            the database does not answer within 5 more seconds, it exits 1 and says how many jobs will be \
            redone once their leases expire. A second signal stops it at once: calls in flight are \
            cancelled and their jobs released.

            Judges in batch mode (mode: batch) are never called online: their jobs are gathered into \
            the provider's batches, which any worker opens, submits, polls every --batch-poll-seconds and \
            collects. A worker that stops in any of those steps leaves the batch to the next worker.
            """)
    @OptionGroup var db: DatabaseOptions
    @OptionGroup var polling: PollingOptions
    @OptionGroup var metrics: MetricsOptions
    @Option(help: "Only work on this run (default: every active run).") var run: String?
    @Option(help: "Seconds between polls of a provider batch, and between looks for batches due.")
    var batchPollSeconds = 30.0
    @Option(help: "Most judge calls in flight in this process.") var concurrency = 128
    @Option(
        help: """
            Seconds this worker's jobs stay its own after its last heartbeat (beaten every third of it); \
            then another worker takes them back.
            """)
    var leaseSeconds = 60.0
    @Option(help: "Seconds calls in flight may take to finish after SIGTERM.") var drainSeconds = 30.0

    func validate() throws {
        guard concurrency > 0 else { throw ValidationError("--concurrency must be at least 1") }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
        guard drainSeconds >= 0 && drainSeconds < 86400 else {
            throw ValidationError("--drain-seconds must be between 0 and 86400")
        }
        guard batchPollSeconds >= 0.1 && batchPollSeconds <= 3600 else {
            throw ValidationError("--batch-poll-seconds must be between 0.1 and 3600")
        }
    }

    func run() async throws {
        let logger = db.makeLogger("jury.worker")
        if let run { _ = try await db.connect("jury worker", logger: logger).findRun(run) }
        var options = WorkerOptions()
        options.listens = !polling.poll
        options.idlePollSeconds = polling.idleSeconds
        options.run = run
        options.concurrency = concurrency
        options.leaseSeconds = leaseSeconds
        options.drainSeconds = drainSeconds
        options.batchPollSeconds = batchPollSeconds
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let worker = Worker(
            database: polling.target(db), options: options, logger: logger,
            makeJudge: HTTPJudge.factory(client: client),
            makeBatchJudge: BatchJudges.factory(client: client))
        let endpoint = metrics.endpoint(probes: worker.probes, logger: logger) { await worker.refreshQueueMetrics() }
        do {
            // The worker bounds its own stop; the group's limit is a backstop a little beyond it.
            try await runUntilSignalled(
                [endpoint, worker].compactMap { $0 }, maximumShutdownSeconds: options.longestStopSeconds + 5,
                logger: logger)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

struct ReducerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reducer",
        abstract: "Turn the votes of ready examples into verdicts, exactly once; until SIGTERM or SIGINT.")
    @OptionGroup var db: DatabaseOptions
    @OptionGroup var polling: PollingOptions
    @OptionGroup var metrics: MetricsOptions
    @Option(help: "Only decide examples of this run (default: every run).") var run: String?

    func run() async throws {
        let logger = db.makeLogger("jury.reducer")
        if let run { _ = try await db.connect("jury reducer", logger: logger).findRun(run) }
        let reducer = Reducer(
            database: polling.target(db), run: run, idlePollSeconds: polling.idleSeconds, listens: !polling.poll,
            logger: logger)
        let endpoint = metrics.endpoint(probes: reducer.probes, logger: logger)
        try await runUntilSignalled([endpoint, reducer].compactMap { $0 }, maximumShutdownSeconds: 30, logger: logger)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Examples, jobs and verdicts by state, per run and judge; --watch for a live screen.",
        discussion: """
            --watch redraws every --interval seconds: per run and judge, progress bars, votes per minute over \
            the last minute or two, the time left at that rate, tokens and cost, the errors jobs carry now by \
            class, and the live processes. If the database cannot be reached, it says so and keeps trying.

            The same figures are in the views jury_run_progress, jury_judge_progress, jury_run_eta, \
            jury_judge_health, jury_error_classes, jury_costs, jury_workers.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Only this run.") var run: String?
    @Flag(help: "Redraw the status in place until Ctrl-C.") var watch = false
    @Option(help: "Seconds between redraws with --watch.") var interval = 2.0
    @Flag(help: "Print the report as JSON (with --watch, one object per line).") var json = false

    func validate() throws {
        guard interval >= 0.2 && interval <= 3600 else {
            throw ValidationError("--interval must be between 0.2 and 3600")
        }
    }

    func run() async throws {
        let logger = db.makeLogger("jury.status")
        var store = try await db.connect("jury status", logger: logger)
        guard watch else {
            try print(render(try await StatusReport.load(run: run, from: store)), terminator: "")
            return
        }
        while true {
            do {
                let report = try await StatusReport.load(run: run, from: store)
                let screen = json ? try render(report) : StatusDashboard.render(report, interval: interval)
                write(json ? screen : StatusDashboard.clearScreen + screen, to: .standardOutput)
            } catch let error as JuryError where error.code == .notFound {
                throw error
            } catch {
                // The database went away: say so, and reconnect at the next turn.
                let message = "\(StatusDashboard.clock(Date())): cannot read the status: \(error); trying again\n"
                if json {
                    write(message, to: .standardError)
                } else {
                    write(StatusDashboard.clearScreen + message, to: .standardOutput)
                }
                if let fresh = try? await db.connect("jury status", logger: logger) { store = fresh }
            }
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }

    private func write(_ text: String, to handle: FileHandle) { handle.write(Data(text.utf8)) }

    private func render(_ report: StatusReport) throws -> String {
        guard json else { return report.text }
        return try jsonText(report, oneLine: watch) + "\n"
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a run's failed jobs back to pending with fresh attempts.",
        discussion: "Examples whose jobs are retried vote again; a verdict they had is withdrawn and decided anew.")
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run.") var run: String
    @Option(help: "Only this batch.") var batch: String?
    @Option(help: "Only this judge.") var judge: String?

    func run() async throws {
        let store = try await db.connect("jury retry", logger: db.makeLogger("jury.retry"))
        let retried = try await Operations.retryFailed(run: run, batch: batch, judge: judge, in: store)
        print("\(retried) failed jobs back to pending")
    }
}
