import Foundation
public import JuryDomain
import JuryRuntime
public import JuryStore
public import Logging
import ServiceLifecycle

/// A judge that answers at once, in process: what is left is Jury's own cost.
public struct InstantJudge: Judge {
    public init() {}
    public func classify(_ request: JudgeRequest) async throws -> JudgeAnswer {
        let index = abs(request.user.hashValue) % request.labels.count
        return JudgeAnswer(label: request.labels[index], rationale: "instant", promptTokens: 1, completionTokens: 1)
    }
}

/// Measures enqueue and vote throughput, and the same claim/record SQL driven by pgbench.
public enum Benchmark {
    public struct Options: Sendable {
        public var examples = 20_000
        public var judges = 4
        public var concurrency = 512
        /// Jobs per pgbench transaction (one claim and one record of this many jobs).
        public var pgbenchBatch = 128
        public var pgbenchClients = 2
        public init() {}
    }

    public struct Result: Sendable {
        public var examplesPerSecond: Double
        /// Worker and reducer together, until every example is decided.
        public var votesPerSecond: Double
        /// The worker alone, until every vote is recorded.
        public var workerVotesPerSecond: Double
        public var pgbenchVotesPerSecond: Double?
    }

    public static func run(
        database: Database, options: Options, logger: Logger, report: @Sendable (String) -> Void
    ) async throws -> Result {
        let store = try await database.connect(applicationName: "jury bench", logger: logger)
        try await store.migrate(logger: logger)
        let stamp = Int(Date().timeIntervalSince1970)
        let config = try benchConfig(name: "bench-\(stamp)-\(UInt16.random(in: 0...9999))", judges: options.judges)
        let (run, _) = try await store.createRun(config)
        // The run is the bench's alone: remove it whatever happens, so no other worker meets it.
        do {
            let result = try await measure(
                run: run, database: database, options: options, store: store, logger: logger, report: report)
            try await store.deleteRun(id: run.id)
            return result
        } catch {
            try? await store.deleteRun(id: run.id)
            throw error
        }
    }

    private static func measure(
        run: StoredRun, database: Database, options: Options, store: Store, logger: Logger,
        report: @Sendable (String) -> Void
    ) async throws -> Result {
        report("run \(run.name): \(options.examples) examples x \(options.judges) judges, instant in-process judges")

        // Enqueue.
        let (enqueued, enqueueSeconds) = try await enqueueCorpus(
            count: options.examples, prefix: "w", run: run, store: store, logger: logger)
        let examplesPerSecond = Double(enqueued.new) / enqueueSeconds
        report(
            String(
                format: "enqueue: %d examples, %d jobs in %.2fs: %.0f examples/s, %.0f jobs/s",
                enqueued.new, enqueued.jobs, enqueueSeconds, examplesPerSecond, Double(enqueued.jobs) / enqueueSeconds))

        // Worker and reducer until every example is decided.
        var workerOptions = WorkerOptions()
        workerOptions.run = run.name
        workerOptions.concurrency = options.concurrency
        workerOptions.idlePollSeconds = 0.5
        let worker = Worker(
            database: database, options: workerOptions, logger: logger, makeJudge: { _ in InstantJudge() })
        let reducer = Reducer(database: database, run: run.name, idlePollSeconds: 0.5, logger: logger)
        // Watch the reducer's own count: polling the database would take from what is measured.
        let votesPerSecond =
            Double(enqueued.jobs)
            / (try await secondsRunning(
                [worker, reducer], until: { reducer.examplesDecided >= enqueued.new }, logger: logger))
        report(
            String(
                format: "worker + reducer: %d votes, %d verdicts: %.0f votes/s", enqueued.jobs, enqueued.new,
                votesPerSecond))

        // The worker alone (claim, call, record), which is what pgbench's script does.
        let (more, _) = try await enqueueCorpus(
            count: options.examples, prefix: "v", run: run, store: store, logger: logger)
        let soloWorker = Worker(
            database: database, options: workerOptions, logger: logger, makeJudge: { _ in InstantJudge() })
        let workerVotesPerSecond =
            Double(more.jobs)
            / (try await secondsRunning([soloWorker], until: { soloWorker.votesRecorded >= more.jobs }, logger: logger))
        report(String(format: "worker alone: %d votes: %.0f votes/s", more.jobs, workerVotesPerSecond))

        // The same claim and record SQL, driven by pgbench on the same database.
        var pgbench: Double?
        if let binary = pgbenchPath() {
            pgbench = try await runPGBench(
                binary: binary, database: database, run: run, options: options, store: store, logger: logger,
                report: report)
        } else {
            report("pgbench not found (install postgresql-contrib or set PATH); no raw limit to compare with")
        }
        if let pgbench {
            report(
                String(
                    format: "ratio, worker alone / pgbench: %.0f / %.0f = %.2f", workerVotesPerSecond, pgbench,
                    workerVotesPerSecond / pgbench))
            report(
                String(
                    format: "ratio, worker + reducer / pgbench: %.0f / %.0f = %.2f", votesPerSecond, pgbench,
                    votesPerSecond / pgbench))
        }
        return Result(
            examplesPerSecond: examplesPerSecond, votesPerSecond: votesPerSecond,
            workerVotesPerSecond: workerVotesPerSecond,
            pgbenchVotesPerSecond: pgbench)
    }

    private static func runPGBench(
        binary: String, database: Database, run: StoredRun, options: Options, store: Store,
        logger: Logger, report: @Sendable (String) -> Void
    ) async throws -> Double {
        // Fresh pending jobs for pgbench to claim: as many as the worker just processed.
        let (enqueued, _) = try await enqueueCorpus(
            count: options.examples, prefix: "p", run: run, store: store, logger: logger)
        let judges = run.config.judges.map(\.name)
        let perJudge = options.pgbenchBatch / judges.count
        let jobsPerTransaction = perJudge * judges.count
        // Leave a margin so that no transaction finds the queue empty.
        let transactions = max(1, enqueued.jobs / jobsPerTransaction / options.pgbenchClients - 2)
        let script = Store.pgbenchScript(run: run, perJudge: perJudge)
        let scriptPath = FileManager.default.temporaryDirectory.appendingPathComponent("jury-pgbench-\(run.id).sql")
            .path
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: scriptPath) }
        let arguments =
            [
                "-n", "-f", scriptPath, "-c", String(options.pgbenchClients), "-j", String(options.pgbenchClients),
                "-t", String(transactions),
            ]
        // The database goes to pgbench through PG* variables: a password on its command line would
        // be visible to every user of the machine.
        let environment = ProcessInfo.processInfo.environment.merging(
            try database.environment(), uniquingKeysWith: { _, ours in ours })
        let (status, text) = try Subprocess.run(binary, arguments, environment: environment)
        guard status == 0,
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst(6).prefix(while: { $0 != " " }))
        else {
            throw JuryError(.io, "pgbench failed: \(text.suffix(500))")
        }
        let votes = tps * Double(jobsPerTransaction)
        report(
            String(
                format:
                    "pgbench (same claim + record SQL, %d clients, %d jobs per transaction): %.0f tps = %.0f votes/s",
                options.pgbenchClients, jobsPerTransaction, tps, votes))
        return votes
    }

    private static func benchConfig(name: String, judges: Int) throws -> RunConfig {
        let panel = (1...judges).map { index in
            """
              - name: judge-\(index)
                provider: openai-compatible
                model: instant
                base_url: http://127.0.0.1:9/v1
                concurrency: 10000
            """
        }.joined(separator: "\n")
        return try RunConfig.parse(
            yaml: """
                name: \(name)
                taxonomy:
                  - { label: valid, description: a request the assistant can do }
                  - { label: needs_more_context, description: a request that lacks a detail }
                  - { label: ambiguous, description: a request with several readings }
                judges:
                \(panel)
                prompt:
                  system: "Label the request: {{#labels}}{{.}} {{/labels}}"
                  user: "{{request}}"
                """, file: "bench")
    }

    /// Enqueues `count` generated examples into the run; returns the report and how long the enqueue took.
    private static func enqueueCorpus(
        count: Int, prefix: String, run: StoredRun, store: Store, logger: Logger
    ) async throws -> (report: EnqueueReport, seconds: Double) {
        var text = ""
        text.reserveCapacity(count * 80)
        for index in 0..<count {
            text +=
                #"{"id":"\#(prefix)\#(index)","request":"customers who ordered more than \#(index % 17) times"}"# + "\n"
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jury-bench-\(UUID()).jsonl").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let started = ContinuousClock.now
        let report = try await Enqueuer(store: store, logger: logger).enqueue(file: path, run: run.name)
        return (report, seconds(since: started))
    }

    /// Runs the services until `done` holds; returns the seconds that took, then shuts them down gracefully.
    private static func secondsRunning(
        _ services: [any Service], until done: () -> Bool, logger: Logger
    ) async throws -> Double {
        let started = ContinuousClock.now
        let group = ServiceGroup(services: services, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while !done() {
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = seconds(since: started)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return elapsed
        }
    }

    /// pg_config's bindir first (Debian keeps pgbench off the PATH), then the PATH.
    private static func pgbenchPath() -> String? {
        if let pgConfig = findOnPath("pg_config"), let (status, output) = try? Subprocess.run(pgConfig, ["--bindir"]),
            status == 0
        {
            let candidate = output.trimmingCharacters(in: .whitespacesAndNewlines) + "/pgbench"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return findOnPath("pgbench")
    }

    private static func findOnPath(_ command: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/\(command)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}
