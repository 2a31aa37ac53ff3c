import Foundation
import JuryDomain
import JuryRuntime
public import JuryStore
public import Logging
import ServiceLifecycle

/// A run of millions of jobs, start to end: whether throughput holds as the tables grow, whether
/// status, the views and the web app's pages stay fast at the end, and what a purge gives back.
///
/// A worker and a reducer (instant in-process judges, as in `Benchmark`) judge the whole corpus
/// together; the time each million votes took is noted as they land.
public enum ScaleRun {
    public struct Options: Sendable {
        public var examples = 2_500_000
        public var judges = 4
        public var concurrency = 512
        /// Votes per throughput sample (at most a fifth of the jobs, for small runs).
        public var sampleVotes = 1_000_000
        public init() {}
    }

    public struct TableSize: Codable, Sendable {
        public var table: String
        public var tableMegabytes: Double, indexMegabytes: Double
        public var liveRows: Int64, deadRows: Int64
    }

    public struct Result: Codable, Sendable {
        public var examples: Int
        public var jobs: Int
        public var enqueueSeconds: Double
        /// Votes per second over each successive `sampleVotes` votes (the last may be shorter).
        public var votesPerSecondBySample: [Double]
        public var lastSampleToFirst: Double?
        public var votesPerSecond: Double
        /// This process's peak RSS once every example is decided (worker and reducer in it).
        public var peakRSSMegabytes: Double?
        /// Median of five loads of `jury status`, and of each view (first 100 rows), at the end.
        public var statusMilliseconds: Double
        public var viewMilliseconds: [String: Double]
        /// Each page of the web app over HTTP, median of five, with a quarter of the verdicts
        /// made disagreements first (the review queue's share in a real run).
        public var pageMilliseconds: [String: Double]
        public var sizesAtEnd: [TableSize]
        public var sizesAfterPurgingJobs: [TableSize]
        public var purgeJobsSeconds: Double
        /// After `jury run purge --everything --reindex`: the indexes rebuilt as well.
        public var sizesAfterPurgingRun: [TableSize]
        public var purgeRunSeconds: Double
    }

    /// The views people query, each read for its first 100 rows.
    static let views = [
        "jury_run_progress", "jury_batch_progress", "jury_judge_health", "jury_failures", "jury_errors",
        "jury_disagreements", "jury_throughput", "jury_workers", "jury_costs", "jury_outcomes",
        "jury_early_decisions", "jury_invalid_answers", "jury_breakers", "jury_account_limits", "jury_table_sizes",
    ]

    public static func run(
        database: Database, options: Options, logger: Logger, report: @Sendable (String) -> Void
    ) async throws -> Result {
        let store = try await database.connect(applicationName: "jury bench", logger: logger)
        try await store.migrate(logger: logger)
        let name = "scale-\(Int(Date().timeIntervalSince1970))-\(UInt16.random(in: 0...9999))"
        let (run, _) = try await store.createRun(try Benchmark.benchConfig(name: name, judges: options.judges))
        report("run \(run.name): \(options.examples) examples x \(options.judges) judges, instant in-process judges")
        // Interrupted, the run stays: removing up to millions of examples takes minutes, longer than
        // whoever pressed Ctrl-C expects to wait. It is cancelled, so that no worker takes it up, in
        // a task of its own, which the cancellation does not reach.
        do {
            return try await measure(
                run: run, database: database, options: options, store: store, logger: logger, report: report)
        } catch  where Task.isCancelled {
            let cancelled = await Task { (try? await store.setRunState(.cancelled, run: run.name)) != nil }.value
            if cancelled {
                report("run \(run.name) is left, cancelled; remove it with: jury run purge \(run.name) --everything")
            }
            throw error
        }
    }

    private static func measure(
        run: StoredRun, database: Database, options: Options, store: Store, logger: Logger,
        report: @Sendable (String) -> Void
    ) async throws -> Result {
        let path = try Benchmark.writeCorpus(count: options.examples, prefix: "s")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let second = try await database.connect(applicationName: "jury bench", logger: logger)
        var started = ContinuousClock.now
        let enqueued = try await Enqueuer(stores: [store, second], logger: logger).enqueue(file: path, run: run.name)
        let enqueueSeconds = Benchmark.seconds(since: started)
        report(String(format: "enqueue: %d examples, %d jobs in %.0fs", enqueued.new, enqueued.jobs, enqueueSeconds))

        var workerOptions = WorkerOptions()
        workerOptions.run = run.name
        workerOptions.concurrency = options.concurrency
        workerOptions.idlePollSeconds = 0.5
        let worker = Worker(
            database: database, options: workerOptions, logger: logger, makeJudge: { _ in InstantJudge() })
        let reducer = Reducer(database: database, run: run.name, idlePollSeconds: 0.5, logger: logger)
        var samples: [Double] = []
        let sampleVotes = min(options.sampleVotes, max(enqueued.jobs / 5, 1000))
        started = .now
        var sampleStart = ContinuousClock.now
        var sampleEnd = sampleVotes
        let group = ServiceGroup(services: [worker, reducer], logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                while reducer.examplesDecided < enqueued.new {
                    try await Task.sleep(for: .milliseconds(100))
                    let votes = worker.votesRecorded
                    if votes >= sampleEnd || (votes >= enqueued.jobs && sampleEnd - sampleVotes < votes) {
                        let counted = min(votes, sampleEnd) - (sampleEnd - sampleVotes)
                        samples.append(Double(counted) / Benchmark.seconds(since: sampleStart))
                        report(
                            String(
                                format: "votes %d: %.0f votes/s over the last %d", min(votes, sampleEnd), samples.last!,
                                counted))
                        sampleStart = .now
                        sampleEnd += sampleVotes
                    }
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        } catch  where Task.isCancelled {
            // Interrupted, the worker stops without giving back a claim whose commit the
            // cancellation cut it off from: those jobs would stay `running` until their leases
            // passed and some worker came by, and the purge the bench prints would refuse. They go
            // back here, once it has stopped, in a task the cancellation does not reach.
            _ = await Task { try? await store.returnUntrackedJobs(owner: worker.id, tracked: []) }.value
            throw error
        }
        let votesPerSecond = Double(enqueued.jobs) / Benchmark.seconds(since: started)
        report(
            String(format: "all %d votes and %d verdicts: %.0f votes/s", enqueued.jobs, enqueued.new, votesPerSecond))
        let rss = Benchmark.reportPeakRSS(report)

        let statusMilliseconds = try await medianMilliseconds { _ = try await StatusReport.load(run: nil, from: store) }
        report(String(format: "jury status: %.0f ms", statusMilliseconds))
        var viewMilliseconds: [String: Double] = [:]
        for view in views {
            viewMilliseconds[view] = try await medianMilliseconds { try await store.readView(view, limit: 100) }
        }
        report(
            "views (ms): "
                + views.map { String(format: "%@ %.0f", $0, viewMilliseconds[$0] ?? .nan) }.joined(separator: ", "))

        let disputed = try await store.makeDisagreements(runID: run.id, every: 4)
        report("made \(disputed) verdicts (a quarter) disagreements, as a panel leaves them, for the review queue")
        let pages = try await PageTimings.measure(database: database, run: run, store: store, logger: logger)
        report(
            "pages of jury serve (ms, median of 5): "
                + pages.map { String(format: "%@ %.1f", $0.page, $0.milliseconds) }.joined(separator: ", "))

        let atEnd = try await sizes(store)
        report("at the end:\n" + describe(atEnd))
        started = .now
        _ = try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 10_000, in: store)
        let purgeJobsSeconds = Benchmark.seconds(since: started)
        let afterJobs = try await sizes(store)
        report(String(format: "after jury run purge (%.0fs):\n", purgeJobsSeconds) + describe(afterJobs))
        started = .now
        // With --reindex, as a user who wants the disk back runs it: vacuum leaves the indexes at
        // their size, and the report should show what the whole purge returns.
        _ = try await Operations.purge(
            run: run.name, everything: true, reindex: true, examplesPerTransaction: 10_000, in: store)
        let purgeRunSeconds = Benchmark.seconds(since: started)
        let afterRun = try await sizes(store)
        report(
            String(format: "after jury run purge --everything --reindex (%.0fs):\n", purgeRunSeconds)
                + describe(afterRun))
        return Result(
            examples: enqueued.new, jobs: enqueued.jobs, enqueueSeconds: enqueueSeconds,
            votesPerSecondBySample: samples, lastSampleToFirst: samples.count > 1 ? samples.last! / samples[0] : nil,
            votesPerSecond: votesPerSecond, peakRSSMegabytes: rss, statusMilliseconds: statusMilliseconds,
            viewMilliseconds: viewMilliseconds,
            pageMilliseconds: Dictionary(
                pages.map { ($0.page, $0.milliseconds) }, uniquingKeysWith: { first, _ in first }),
            sizesAtEnd: atEnd, sizesAfterPurgingJobs: afterJobs, purgeJobsSeconds: purgeJobsSeconds,
            sizesAfterPurgingRun: afterRun, purgeRunSeconds: purgeRunSeconds)
    }

    private static func medianMilliseconds(_ body: () async throws -> Void) async throws -> Double {
        var times: [Double] = []
        for _ in 0..<5 {
            let started = ContinuousClock.now
            try await body()
            times.append(Benchmark.seconds(since: started) * 1000)
        }
        return times.sorted()[2]
    }

    private static func sizes(_ store: Store) async throws -> [TableSize] {
        try await store.refreshTableStatistics()
        return try await store.tableSizes().map {
            TableSize(
                table: $0.table, tableMegabytes: Double($0.tableBytes) / 1_048_576,
                indexMegabytes: Double($0.indexBytes) / 1_048_576, liveRows: $0.liveRows, deadRows: $0.deadRows)
        }
    }

    private static func describe(_ sizes: [TableSize]) -> String {
        sizes.map {
            String(
                format: "  %@: table %.0f MB, indexes %.0f MB, %lld live rows, %lld dead", $0.table, $0.tableMegabytes,
                $0.indexMegabytes, $0.liveRows, $0.deadRows)
        }.joined(separator: "\n")
    }
}
