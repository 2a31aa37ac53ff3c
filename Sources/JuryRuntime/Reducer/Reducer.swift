import JuryDomain
public import JuryStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// The reducer: turns the votes of ready examples into verdicts, each exactly once.
///
/// Ready examples are claimed with `FOR UPDATE SKIP LOCKED`, so several reducers share the
/// work; the verdict and the example's move to `decided` commit together. It runs as a
/// `Service` until graceful shutdown or cancellation, sleeping on notifications (or polling)
/// when idle.
public final class Reducer: Service, Sendable {
    private let database: Database
    private let run: String?
    private let batchSize: Int
    private let idlePollSeconds: Double
    private let listens: Bool
    private let logger: Logger
    private let stopping = Mutex(false)
    private let decided = Mutex(0)
    private let wakeup = Wakeup()
    /// Set by each notification, taken by the next pass.
    private let notified = Mutex(false)
    public let probes: ProcessProbes

    public init(
        database: Database, run: String? = nil, batchSize: Int = 500, idlePollSeconds: Double = 2,
        listens: Bool = true, probes: ProcessProbes = ProcessProbes(), logger: Logger
    ) {
        self.probes = probes
        self.database = database
        self.run = run
        self.batchSize = batchSize
        self.idlePollSeconds = idlePollSeconds
        self.listens = listens
        self.logger = logger
    }

    /// Examples this reducer has decided so far.
    public var examplesDecided: Int { decided.withLock { $0 } }

    public func run() async throws {
        // A batch under way commits either way: the reducer has nothing to drain.
        try await runStoppable({ try await self.work() }, stop: { _ in self.stop() })
    }

    private func stop() {
        probes.stopping()
        stopping.withLock { $0 = true }
        wakeup.raise()
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    private func work() async throws {
        let store = try await database.connect(applicationName: "jury reducer", logger: logger)
        // Listening takes a second connection, which also beats the heartbeat between its waits;
        // polling (through a pooler) does both on the one connection.
        let listener = listens ? try await database.connect(applicationName: "jury reducer", logger: logger) : nil
        try await listener?.listen(.ready)
        let id = Store.processID(role: "reducer")
        try await (listener ?? store).registerProcess(id, role: "reducer")
        var runID: Int64?
        if let run { runID = try await store.findRun(run).id }
        try await declareMetrics(store)
        logger.info("reducer started", metadata: ["listens": "\(listens)"])
        await withDiscardingTaskGroup { group in
            if let listener { group.addTask { await self.listen(on: listener, id: id) } }
            var lastBeat = ContinuousClock.now
            var lastCompaction = ContinuousClock.now - Self.compactionInterval  // the first pass does it too
            while !isStopping {
                probes.turned()
                let followsNotification = notified.withLock { notified in
                    defer { notified = false }
                    return notified
                }
                // What the notification announced, and what it stands for, may commit after this pass.
                let idleWait = Channel.idleWait(
                    followsNotification: followsNotification, idlePoll: .seconds(idlePollSeconds))
                do {
                    let count = try await Self.decideAvailable(runID: runID, limit: batchSize, store: store)
                    probes.reachedDatabase()
                    decided.withLock { $0 += count }
                    logger.debug("decided", metadata: ["examples": "\(count)"])
                    // Keeps the counts that status sums few: gone backends folded, old minutes dropped;
                    // and the minute's progress of each run, for the web app's charts.
                    if ContinuousClock.now - lastCompaction > Self.compactionInterval {
                        try await store.compactCounts()
                        try await store.recordRunHistory()
                        try await declareMetrics(store)
                        lastCompaction = .now
                    }
                    if listener == nil && ContinuousClock.now - lastBeat > Self.heartbeatInterval {
                        try await store.heartbeat(id, inFlight: 0, leaseSeconds: Self.leaseSeconds)
                        lastBeat = .now
                    }
                    if count < batchSize {
                        // Nothing more is ready: runs whose last example was just decided end.
                        for finished in try await store.finishRuns() {
                            logger.info("run done: every example decided", metadata: ["run": "\(finished)"])
                        }
                        await wakeup.wait(timeout: idleWait)
                    }
                } catch {
                    logger.warning("reducing failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                    await wakeup.wait(timeout: .seconds(idlePollSeconds))
                }
            }
            group.cancelAll()
        }
        _ = try? await withDeadline(.seconds(2)) { await (listener ?? store).processStopped(id) }
        logger.info("reducer stopped")
    }

    private static let compactionInterval = Duration.seconds(60)

    /// The verdict counters of the runs this reducer serves, at zero before their first verdict.
    private func declareMetrics(_ store: Store) async throws {
        for served in try await store.activeRuns(named: run) { RuntimeMetrics.declareVerdicts(run: served.name) }
    }

    /// A reducer holds no jobs; its heartbeat only shows it alive.
    private static let heartbeatInterval = Duration.seconds(10)
    private static let leaseSeconds = 60.0

    /// One pass: decides up to `limit` ready examples, and when fewer were ready, the complete
    /// batches of runs under `dawid-skene` (which fits the whole run, so it waits for them).
    /// Returns how many examples it decided.
    public static func decideAvailable(runID: Int64?, limit: Int, store: Store) async throws -> Int {
        var decided = try await store.decideReady(runID: runID, limit: limit) { example, config in
            config.decide(
                votes: example.votes, rule: config.rule, sourceLabel: example.sourceLabel,
                reviewedLabel: example.reviewedLabel, early: example.early)
        }
        if decided.count < limit {
            for due in try await store.dawidSkeneDue(runID: runID) {
                decided += try await Reduction.decideCompleteBatches(runID: due, store: store)
            }
        }
        for example in decided {
            RuntimeMetrics.verdictStored(
                run: example.run, status: example.status, secondsSinceLastVote: example.secondsSinceLastVote)
        }
        return decided.count
    }

    /// Wakes the reducer on notifications, and beats its heartbeat, until cancelled.
    private func listen(on listener: Store, id: String) async {
        var lastBeat = ContinuousClock.now
        while !Task.isCancelled {
            do {
                if try await !listener.waitForNotifications(timeout: .milliseconds(200)).isEmpty {
                    notified.withLock { $0 = true }
                    wakeup.raise()
                }
                if ContinuousClock.now - lastBeat > Self.heartbeatInterval {
                    _ = try? await listener.heartbeat(id, inFlight: 0, leaseSeconds: Self.leaseSeconds)
                    lastBeat = .now
                }
            } catch {
                // The database is unreachable: wait before trying again, or this loop would spin.
                logger.debug("listening failed", metadata: [JuryMetadata.error: "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
