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

/// Measures Jury's queue against the raw limit of the same PostgreSQL: enqueue, a worker alone,
/// a worker with the reducer deciding as it goes, and pgbench running a minimal queue loop and
/// Jury's own SQL; with last-vote-to-verdict latency, peak memory and database writes per vote.
public enum Benchmark {
    public struct Options: Sendable {
        public var examples = 20_000
        public var judges = 4
        public var concurrency = 512
        /// Jobs per transaction of pgbench running Jury's SQL (one claim and one record).
        public var pgbenchBatch = 128
        /// Clients of both pgbench runs.
        public var pgbenchClients = 4
        public init() {}
    }

    /// Database writes per vote over one phase.
    public struct Writes: Codable, Sendable {
        public var tuplesPerVote: Double
        public var walRecordsPerVote: Double
        public var walBytesPerVote: Double
        public var transactionsPerVote: Double

        init(_ activity: DatabaseActivity, votes: Int) {
            let n = Double(max(votes, 1))
            tuplesPerVote = Double(activity.tuplesInserted + activity.tuplesUpdated + activity.tuplesDeleted) / n
            walRecordsPerVote = Double(activity.walRecords) / n
            walBytesPerVote = Double(activity.walBytes) / n
            transactionsPerVote = Double(activity.transactions) / n
        }
    }

    public struct Result: Codable, Sendable {
        public var examples: Int
        public var judges: Int
        public var enqueueExamplesPerSecond: Double
        public var enqueueJobsPerSecond: Double
        /// The worker alone, until every vote is recorded.
        public var workerVotesPerSecond: Double
        /// Worker and reducer together, until every example is decided.
        public var workerAndReducerVotesPerSecond: Double
        /// Seconds from an example's last vote to its verdict, with worker and reducer at full load.
        public var lastVoteToVerdictP50Seconds: Double?
        public var lastVoteToVerdictP99Seconds: Double?
        /// Peak resident memory of this process, which ran the worker and the reducer.
        public var peakRSSMegabytes: Double?
        public var workerWrites: Writes
        public var workerAndReducerWrites: Writes
        /// CPU per vote in this process and, on this machine, in PostgreSQL.
        public var workerCPUPerVote: CPUUse
        public var workerAndReducerCPUPerVote: CPUUse
        /// pgbench: a minimal queue loop (claim 100 with SKIP LOCKED; insert votes, mark done).
        public var minimalQueue: PGBenchFigures?
        /// pgbench: Jury's own claim and record SQL.
        public var jurySQL: PGBenchFigures?
        /// pgbench: the same with one job per judge per claim, where each call's fixed costs dominate.
        public var jurySQLOneJobPerJudge: PGBenchFigures?
        /// pgbench: one job per judge per claim from 16 clients, as many workers with slow judges:
        /// what shows when their records wait for each other.
        public var jurySQLOneJobPerJudgeManyClients: PGBenchFigures?
        public var workerToMinimalQueue: Double?
        public var workerAndReducerToMinimalQueue: Double?
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
        // Cancelled (the command's SIGINT or SIGTERM), the removal runs in a task of its own,
        // which the cancellation does not reach.
        do {
            let result = try await measure(
                run: run, database: database, options: options, store: store, logger: logger, report: report)
            try await store.deleteRun(id: run.id)
            return result
        } catch {
            await Task {
                try? await store.deleteRun(id: run.id)
                try? await store.dropMinimalQueue()
            }.value
            throw error
        }
    }

    private static func measure(
        run: StoredRun, database: Database, options: Options, store: Store, logger: Logger,
        report: @Sendable (String) -> Void
    ) async throws -> Result {
        report("run \(run.name): \(options.examples) examples x \(options.judges) judges, instant in-process judges")
        // Another run's work, and workers serving it, would count in the figures (a bench that was
        // killed leaves its run behind, with work left).
        let others = try await store.activeRuns(named: nil).map(\.name).filter { $0 != run.name }
        if !others.isEmpty {
            report(
                "warning: other active runs in this database (\(others.joined(separator: ", "))): their work and "
                    + "any worker serving them count in these figures; remove them, or use a database of its own")
        }

        // Enqueue.
        let (enqueued, enqueueSeconds) = try await enqueueCorpus(
            count: options.examples, prefix: "w", run: run, store: store, database: database, logger: logger)
        let examplesPerSecond = Double(enqueued.new) / enqueueSeconds
        let jobsPerSecond = Double(enqueued.jobs) / enqueueSeconds
        report(
            String(
                format: "enqueue: %d examples, %d jobs in %.2fs: %.0f examples/s, %.0f jobs/s",
                enqueued.new, enqueued.jobs, enqueueSeconds, examplesPerSecond, jobsPerSecond))

        // Worker and reducer until every example is decided.
        var workerOptions = WorkerOptions()
        workerOptions.run = run.name
        workerOptions.concurrency = options.concurrency
        workerOptions.idlePollSeconds = 0.5
        let worker = Worker(
            database: database, options: workerOptions, logger: logger, makeJudge: { _ in InstantJudge() })
        let reducer = Reducer(database: database, run: run.name, idlePollSeconds: 0.5, logger: logger)
        // The server's CPU counts only where it runs on this machine.
        let server = ServerProcesses.find(try await store.serverIdentity())
        // Watch the reducer's own count: polling the database would take from what is measured.
        let (votesPerSecond, bothWrites, bothCPU) = try await measurePhase(
            [worker, reducer], votes: enqueued.jobs, until: { reducer.examplesDecided >= enqueued.new }, store: store,
            server: server, logger: logger)
        let latency = try await store.lastVoteToVerdictSeconds(runID: run.id)
        report(
            String(
                format:
                    "worker + reducer: %d votes, %d verdicts: %.0f votes/s; last vote to verdict p50 %.3fs, p99 %.3fs",
                enqueued.jobs, enqueued.new, votesPerSecond, latency?.p50 ?? .nan, latency?.p99 ?? .nan))
        report(describe(bothWrites, phase: "worker + reducer"))
        report(describe(bothCPU, phase: "worker + reducer", per: "vote", client: "this process"))

        // The worker alone (claim, call, record).
        let (more, _) = try await enqueueCorpus(
            count: options.examples, prefix: "v", run: run, store: store, database: database, logger: logger)
        let soloWorker = Worker(
            database: database, options: workerOptions, logger: logger, makeJudge: { _ in InstantJudge() })
        let (workerVotesPerSecond, workerWrites, workerCPU) = try await measurePhase(
            [soloWorker], votes: more.jobs, until: { soloWorker.votesRecorded >= more.jobs }, store: store,
            server: server, logger: logger)
        report(String(format: "worker alone: %d votes: %.0f votes/s", more.jobs, workerVotesPerSecond))
        report(describe(workerWrites, phase: "worker alone"))
        report(describe(workerCPU, phase: "worker alone", per: "vote", client: "this process"))
        let rss = reportPeakRSS(report)

        // pgbench on the same database: the minimal queue loop, then Jury's own SQL.
        var minimal: PGBench.Figures?
        var jurySQL: PGBench.Figures?
        var jurySQLOneJobPerJudge: PGBench.Figures?
        var jurySQLOneJobPerJudgeManyClients: PGBench.Figures?
        if let binary = PostgresProgram.path("pgbench") {
            // Enough work that the loop's rate is steady, however small the bench.
            let jobs = max(options.examples * options.judges, 200_000)
            minimal = try await PGBench.minimalQueue(
                binary: binary, database: database, store: store, jobs: jobs, clients: options.pgbenchClients,
                server: server)
            report(
                String(
                    format:
                        "pgbench, minimal queue loop (%d clients, claim 100 with SKIP LOCKED, then record): %.0f jobs/s",
                    options.pgbenchClients, minimal!.jobsPerSecond))
            report(describe(minimal!.cpuPerJob, phase: "minimal queue loop", per: "job", client: "pgbench"))
            // Small batches first, each phase on its own share of the examples: what a claim and a
            // record cost whatever their size, which is what a worker whose judges are slow pays;
            // then the same from many clients, where records that wait for each other show.
            let smallExamples = 6_000
            let manyClients = 16
            let (pending, _) = try await enqueueCorpus(
                count: options.examples + 2 * smallExamples, prefix: "p", run: run, store: store, database: database,
                logger: logger)
            func smallBatches(clients: Int) async throws -> PGBench.Figures {
                let figures = try await PGBench.jurySQL(
                    binary: binary, database: database, run: run, jobs: smallExamples * options.judges,
                    batch: options.judges, clients: clients, server: server)
                report(
                    String(
                        format:
                            "pgbench, Jury's claim + record SQL (%d clients, 1 job per judge per claim): %.0f votes/s",
                        clients, figures.jobsPerSecond))
                return figures
            }
            jurySQLOneJobPerJudge = try await smallBatches(clients: options.pgbenchClients)
            jurySQLOneJobPerJudgeManyClients = try await smallBatches(clients: manyClients)
            jurySQL = try await PGBench.jurySQL(
                binary: binary, database: database, run: run, jobs: pending.jobs - 2 * smallExamples * options.judges,
                batch: options.pgbenchBatch, clients: options.pgbenchClients, server: server)
            report(
                String(
                    format: "pgbench, Jury's claim + record SQL (%d clients, %d jobs per claim): %.0f votes/s",
                    options.pgbenchClients, jurySQL!.jobsPerTransaction, jurySQL!.jobsPerSecond))
            report(describe(jurySQL!.cpuPerJob, phase: "Jury's claim + record SQL", per: "vote", client: "pgbench"))
        } else {
            report("pgbench not found (install postgresql-contrib or set PATH); no raw limit to compare with")
        }
        let floor = minimal?.jobsPerSecond
        if let floor {
            report(
                String(
                    format:
                        "ratio to the minimal loop: worker alone %.2f (target 0.8), worker + reducer %.2f (target 0.7)",
                    workerVotesPerSecond / floor, votesPerSecond / floor))
            // Where the cores are all busy, throughput follows the CPU a vote costs in all.
            if let loop = minimal?.cpuPerJob.totalMicroseconds, let worker = workerCPU.totalMicroseconds,
                let both = bothCPU.totalMicroseconds
            {
                report(
                    String(
                        format:
                            "CPU per vote against the minimal loop's per job: worker alone %.1fx, worker + reducer %.1fx",
                        worker / loop, both / loop))
            }
        }
        return Result(
            examples: options.examples, judges: options.judges, enqueueExamplesPerSecond: examplesPerSecond,
            enqueueJobsPerSecond: jobsPerSecond, workerVotesPerSecond: workerVotesPerSecond,
            workerAndReducerVotesPerSecond: votesPerSecond, lastVoteToVerdictP50Seconds: latency?.p50,
            lastVoteToVerdictP99Seconds: latency?.p99, peakRSSMegabytes: rss, workerWrites: workerWrites,
            workerAndReducerWrites: bothWrites, workerCPUPerVote: workerCPU, workerAndReducerCPUPerVote: bothCPU,
            minimalQueue: minimal, jurySQL: jurySQL,
            jurySQLOneJobPerJudge: jurySQLOneJobPerJudge,
            jurySQLOneJobPerJudgeManyClients: jurySQLOneJobPerJudgeManyClients,
            workerToMinimalQueue: floor.map { workerVotesPerSecond / $0 },
            workerAndReducerToMinimalQueue: floor.map { votesPerSecond / $0 })
    }

    /// Runs `services` until `done`, and measures what their `votes` cost: votes/s, the writes
    /// per vote, and the CPU per vote.
    private static func measurePhase(
        _ services: [any Service], votes: Int, until done: () -> Bool, store: Store, server: ServerProcesses?,
        logger: Logger
    ) async throws -> (votesPerSecond: Double, writes: Writes, cpu: CPUUse) {
        let activity = try await store.databaseActivity()
        let cpu = CPUReading.now(server: server)
        let seconds = try await secondsRunning(services, until: done, logger: logger)
        let cpuUse = CPUReading.perUnit(from: cpu, to: .now(server: server), units: votes)
        // The counters once the phase's sessions have ended and flushed their statistics (at
        // exit, or within a second while they live).
        try await Task.sleep(for: .milliseconds(1200))
        let writes = Writes(try await store.databaseActivity() - activity, votes: votes)
        return (Double(votes) / seconds, writes, cpuUse)
    }

    private static func describe(_ cpu: CPUUse, phase: String, per unit: String, client: String) -> String {
        let server = cpu.serverMicroseconds.map { String(format: ", %.0f µs in PostgreSQL", $0) } ?? ""
        return String(format: "%@ CPU per %@: %.0f µs in %@", phase, unit, cpu.clientMicroseconds, client) + server
    }

    private static func describe(_ writes: Writes, phase: String) -> String {
        String(
            format: "%@ writes per vote: %.2f tuples, %.2f WAL records, %.0f WAL bytes, %.3f transactions", phase,
            writes.tuplesPerVote, writes.walRecordsPerVote, writes.walBytesPerVote, writes.transactionsPerVote)
    }

    /// Reports this process's peak RSS (the worker and reducer run in it) and returns it.
    static func reportPeakRSS(_ report: (String) -> Void) -> Double? {
        let rss = peakRSSMegabytes()
        if let rss { report(String(format: "peak RSS of this process (worker and reducer in it): %.0f MB", rss)) }
        return rss
    }

    /// VmHWM from /proc/self/status, in MB; nil where there is no /proc.
    private static func peakRSSMegabytes() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes / 1024
    }

    static func benchConfig(name: String, judges: Int) throws -> RunConfig {
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

    /// Enqueues `count` generated examples into the run as `jury enqueue` does, on the store and
    /// a second connection; returns the report and how long the enqueue took.
    private static func enqueueCorpus(
        count: Int, prefix: String, run: StoredRun, store: Store, database: Database, logger: Logger
    ) async throws -> (report: EnqueueReport, seconds: Double) {
        let path = try writeCorpus(count: count, prefix: prefix)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let second = try await database.connect(applicationName: "jury bench", logger: logger)
        let started = ContinuousClock.now
        let report = try await Enqueuer(stores: [store, second], logger: logger).enqueue(file: path, run: run.name)
        return (report, seconds(since: started))
    }

    /// Writes `count` generated examples (ids `prefix0`, `prefix1`, ...) to a temporary file a
    /// megabyte at a time, so that millions of lines never sit in memory; returns its path.
    static func writeCorpus(count: Int, prefix: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jury-bench-\(UUID()).jsonl").path
        guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path)
        else { throw JuryError(.io, "cannot write the corpus to \(path)") }
        defer { try? file.close() }
        var chunk = ""
        for index in 0..<count {
            chunk +=
                #"{"id":"\#(prefix)\#(index)","request":"customers who ordered more than \#(index % 17) times"}"# + "\n"
            if chunk.utf8.count > 1 << 20 {
                try file.write(contentsOf: Data(chunk.utf8))
                chunk = ""
            }
        }
        try file.write(contentsOf: Data(chunk.utf8))
        return path
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

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}
