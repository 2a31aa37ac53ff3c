public import JuryDomain
public import JuryStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Builds the judge that answers for a judge of a run's panel.
public typealias JudgeFactory = @Sendable (JudgeConfig) throws -> any Judge

/// A worker: claims jobs, calls judges concurrently, records votes, keeps its lease alive.
///
/// It runs as a `Service` until graceful shutdown or cancellation. On graceful shutdown it stops
/// claiming, lets calls in flight finish for up to `drainSeconds`, cancels and releases the rest,
/// and returns once every outcome is recorded. Cancellation does the same without the drain.
/// If outcomes could still not be recorded `WorkerOptions.recordingGraceSeconds` after that (the
/// database is gone), it throws, saying how many jobs will be redone once their leases expire.
///
/// Its parts each do one thing: the `Claimer` (with the pure `ClaimPlanner`) claims and starts
/// calls, the `JudgeCaller` (with the pure `CallPolicy`) turns a call into an outcome, the
/// `OutcomeRecorder` stores outcomes, the `Heartbeat` holds the worker's leases and lets the
/// `Reaper` take back expired ones. They share the `WorkerLedger`. The `BatchDriver` moves the
/// batches of batch-mode judges along. The claimer has a connection
/// of its own, on which it sleeps for notifications; the others share the second.
public final class Worker: Service, Sendable {
    public let id: String
    private let database: Database
    private let options: WorkerOptions
    private let makeJudge: JudgeFactory
    private let makeBatchJudge: BatchJudgeFactory?
    private let logger: Logger
    private let ledger: WorkerLedger
    public let probes: ProcessProbes
    /// The connection outcomes are recorded on, once open: the queue's depth is read on it too.
    private let recordStore = Mutex<Store?>(nil)
    private let queueLabels = Mutex<Set<RuntimeMetrics.JudgeLabels>>([])

    public init(
        database: Database, options: WorkerOptions, logger: Logger, probes: ProcessProbes? = nil,
        makeJudge: @escaping JudgeFactory, makeBatchJudge: BatchJudgeFactory? = nil
    ) {
        self.makeBatchJudge = makeBatchJudge
        self.id = Store.processID(role: "worker")
        self.database = database
        self.options = options
        self.makeJudge = makeJudge
        // Beats come every third of the lease: three missed ones make the worker stale.
        self.probes = probes ?? ProcessProbes(staleAfter: .seconds(max(options.leaseSeconds, 30)))
        var logger = logger
        logger[metadataKey: JuryMetadata.worker] = "\(id)"
        self.logger = logger
        self.ledger = WorkerLedger(drainSeconds: options.drainSeconds)
    }

    /// Votes this worker has recorded so far.
    public var votesRecorded: Int { ledger.state.withLock { $0.votesRecorded } }

    public func run() async throws {
        try await runStoppable(
            { try await self.work() },
            stop: {
                self.probes.stopping()
                self.ledger.requestStop(draining: $0)
            })
    }

    /// Reads the queue's depth and sets its gauges; `/metrics` calls it at each scrape.
    public func refreshQueueMetrics() async {
        guard let store = recordStore.withLock({ $0 }) else { return }
        do {
            let depths = try await store.queueDepth()
            queueLabels.withLock { $0 = RuntimeMetrics.queue(depths, previously: $0) }
            if makeBatchJudge != nil { RuntimeMetrics.batches(try await store.batchSummary()) }
        } catch {
            logger.debug("reading the queue's depth failed", metadata: [JuryMetadata.error: "\(error)"])
        }
    }

    private func work() async throws {
        // Two connections: claims (and LISTEN, which the claimer sleeps on) on one; outcomes,
        // the heartbeat and reaping on the other.
        let connect = { try await self.database.connect(applicationName: "jury worker", logger: self.logger) }
        let claimStore = try await connect()
        let recordStore = try await connect()
        if options.listens {
            try await claimStore.listen(.jobs)
            ledger.claimerWakeup.alsoOnRaise { claimStore.interruptWait() }
        }
        try await recordStore.registerProcess(id, role: "worker")
        self.recordStore.withLock { $0 = recordStore }
        // The worker may outlive its run: its connections close when it stops, not when it is released.
        defer { self.recordStore.withLock { $0 = nil } }
        probes.reachedDatabase()
        logger.info(
            "worker started", metadata: ["concurrency": "\(options.concurrency)", "listens": "\(options.listens)"])

        let claimer = Claimer(
            id: id, store: claimStore, options: options, ledger: ledger,
            caller: JudgeCaller(ledger: ledger, logger: logger), makeJudge: makeJudge, logger: logger)
        let recorder = OutcomeRecorder(
            id: id, store: recordStore, ledger: ledger, batchSize: options.recordBatchInUse, logger: logger)
        let heartbeat = Heartbeat(
            id: id, store: recordStore, ledger: ledger, leaseSeconds: options.leaseSeconds, probes: probes,
            reaper: Reaper(store: recordStore, leaseSeconds: options.leaseSeconds, logger: logger), logger: logger)

        await withDiscardingTaskGroup { helpers in
            helpers.addTask { await heartbeat.run() }
            await withDiscardingTaskGroup { main in
                main.addTask { await recorder.run() }
                if let makeBatchJudge {
                    // Batches share the recording connection: their statements are few and short.
                    let batches = BatchDriver(
                        id: id, store: recordStore, options: options, makeBatchJudge: makeBatchJudge,
                        isStopping: { self.ledger.isStopping }, logger: logger)
                    main.addTask { await batches.run() }
                }
                await claimer.run()
            }
            // Everything claimed is recorded (or could not be): the lease and wake-ups are done with.
            helpers.cancelAll()
        }
        _ = try? await withDeadline(.seconds(2)) { await recordStore.processStopped(self.id) }
        let unrecorded = ledger.state.withLock { $0.unrecorded }
        logger.info("worker stopped", metadata: ["votes": "\(votesRecorded)", "unrecorded": "\(unrecorded)"])
        if unrecorded > 0 {
            throw JuryError(
                .incomplete,
                "the worker stopped with \(unrecorded) outcomes it could not record (the database did not answer); "
                    + "their jobs will be redone once their leases expire, within \(Int(options.leaseSeconds)) seconds")
        }
    }
}
