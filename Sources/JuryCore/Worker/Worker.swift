import AsyncHTTPClient
import Foundation
import Logging
import Synchronization

/// How a worker process behaves.
public struct WorkerOptions: Sendable {
    /// Only claim jobs of this run; nil claims from every active run.
    public var run: String?
    /// Most judge calls in flight in this process, all judges together.
    public var concurrency: Int = 128
    /// How long a claimed job stays ours without renewal; renewed every third of it.
    public var leaseSeconds: Double = 60
    /// How often an idle worker looks for work when no notification wakes it.
    public var idlePollSeconds: Double = 2
    /// On stop, how long in-flight calls may take to finish before they are cancelled and released.
    public var drainSeconds: Double = 30
    /// After the drain time, how long the worker keeps trying to record outcomes before it gives up.
    public static let recordingGraceSeconds: Double = 5
    /// Most jobs claimed in one statement.
    public var claimBatch: Int = 500
    /// Bounds on every wait for PostgreSQL.
    public var database = PostgresSettings()

    public init() {}
}

/// Builds the judge that answers for a judge of a run's panel.
public typealias JudgeFactory = @Sendable (JudgeConfig) throws -> any Judge

/// A worker: claims jobs, calls judges concurrently, records votes, keeps its leases alive.
///
/// `run()` returns after `stop()`: it stops claiming, lets in-flight calls finish, cancels and
/// releases the rest, records everything, and marks itself stopped, all within `drainSeconds`.
/// If outcomes could still not be recorded by then (the database is gone), it throws, saying
/// how many jobs will be redone once their leases expire.
public final class Worker: Sendable {
    public let id: String
    private let conninfo: String
    private let options: WorkerOptions
    private let makeJudge: JudgeFactory
    private let logger: Logger
    private let state = Mutex(State())
    private let claimerWake: AsyncStream<Void>
    private let claimerWakeContinuation: AsyncStream<Void>.Continuation
    private let recorderWake: AsyncStream<Void>
    private let recorderWakeContinuation: AsyncStream<Void>.Continuation

    private struct State {
        /// Jobs claimed and not yet recorded.
        var inFlight: [Int64: ClaimedJob] = [:]
        var perJudge: [JudgeKey: Int] = [:]
        /// Judge calls under way.
        var calling = 0
        var outcomes: [JobOutcome] = []
        var stopping = false
        var stopRequestedAt: ContinuousClock.Instant?
        /// Stopped by cancellation: no drain time for calls.
        var drainSkipped = false
        var votesRecorded = 0
        /// Jobs whose outcome could not be recorded before the worker stopped.
        var unrecorded = 0
        /// The call policy of each run served, for outcomes that cannot be stored.
        var policies: [Int64: CallPolicy] = [:]
        /// When a capped Retry-After was last logged, per judge: a 429 storm logs once a minute.
        var capLoggedAt: [JudgeKey: ContinuousClock.Instant] = [:]
        /// Judges whose calls failed in a way retrying cannot cure (bad key, unknown model):
        /// this worker calls them no more, and leaves their jobs pending for a fixed worker.
        var halted: Set<JudgeKey> = []
        /// Judges that answered 429, with the longest Retry-After seen: applied to their shared
        /// rate limit before the next claim, so that every worker backs off.
        var holds: [JudgeKey: Double] = [:]
    }

    private struct JudgeKey: Hashable {
        let runID: Int64
        let judge: String
    }

    /// What the worker needs to serve one run: its judges, prompt and retry policy.
    private struct RunContext: Sendable {
        let run: StoredRun
        let renderer: PromptRenderer
        let judges: [String: any Judge]
        let policy: CallPolicy
    }

    public init(conninfo: String, options: WorkerOptions, logger: Logger, makeJudge: @escaping JudgeFactory) {
        self.id = Heartbeats.processID(role: "worker")
        self.conninfo = conninfo
        self.options = options
        self.makeJudge = makeJudge
        var logger = logger
        logger[metadataKey: JuryMetadata.worker] = "\(id)"
        self.logger = logger
        (claimerWake, claimerWakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (recorderWake, recorderWakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The judges of real runs: OpenAI-compatible HTTP, keys from this process's environment.
    public static func httpJudges(client: HTTPClient) -> JudgeFactory {
        { config in try OpenAIChatJudge(config: config, client: client) }
    }

    /// Asks the worker to stop; `run()` then drains and returns. Without `draining`, calls under
    /// way are cancelled at once (what cancelling `run()`'s task does); their jobs are still released.
    public func stop(draining: Bool = true) {
        state.withLock { state in
            if !state.stopping { state.stopRequestedAt = .now }
            if !draining { state.drainSkipped = true }
            state.stopping = true
        }
        claimerWakeContinuation.yield()
        recorderWakeContinuation.yield()
    }

    /// When calls still under way after a stop are cancelled.
    private var callsDeadline: ContinuousClock.Instant? {
        state.withLock { state in
            state.stopRequestedAt.map { $0 + .seconds(state.drainSkipped ? 0 : options.drainSeconds) }
        }
    }

    /// When recording gives up after a stop: the drain time and `WorkerOptions.recordingGraceSeconds`.
    private var recordDeadline: ContinuousClock.Instant? {
        callsDeadline.map { $0 + .seconds(WorkerOptions.recordingGraceSeconds) }
    }

    /// Votes this worker has recorded so far.
    public var votesRecorded: Int { state.withLock { $0.votesRecorded } }

    /// Works until `stop()`, or until the calling task is cancelled, which stops the worker
    /// without a drain: calls under way are cancelled, and their jobs released.
    public func run() async throws {
        // The work runs in a task of its own, so that cancellation reaches it only as a stop:
        // its waits, which end at once in a cancelled task, would otherwise spin.
        let work = Task { try await self.work() }
        try await withTaskCancellationHandler {
            try await work.value
        } onCancel: {
            self.stop(draining: false)
        }
    }

    private func work() async throws {
        let connect = {
            try await PostgresConnection.connect(
                self.conninfo, applicationName: "jury worker", settings: self.options.database, logger: self.logger)
        }
        let claimConnection = try await connect()
        let recordConnection = try await connect()
        let leaseConnection = try await connect()
        let listenConnection = try await connect()
        try await listenConnection.listen(WorkQueue.jobsChannel)
        try await Heartbeats.register(id, role: "worker", on: leaseConnection)
        logger.info("worker started", metadata: ["concurrency": "\(options.concurrency)"])

        await withDiscardingTaskGroup { group in
            group.addTask { await self.listenAndReap(on: listenConnection) }
            group.addTask { await self.keepLeases(on: leaseConnection) }
            group.addTask { await self.recordOutcomes(on: recordConnection) }
            group.addTask { await self.tick() }
            await self.claimAndCall(on: claimConnection)
            // Everything claimed has been recorded (or could not be): let the helpers end.
            self.stop()
        }
        _ = try? await withDeadline(.seconds(2)) { await Heartbeats.stopped(self.id, on: leaseConnection) }
        let unrecorded = state.withLock { $0.unrecorded }
        logger.info("worker stopped", metadata: ["votes": "\(votesRecorded)", "unrecorded": "\(unrecorded)"])
        if unrecorded > 0 {
            throw JuryError(
                .incomplete,
                "the worker stopped with \(unrecorded) outcomes it could not record (the database did not answer); "
                    + "their jobs will be redone once their leases expire, within \(Int(options.leaseSeconds)) seconds")
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: - Claiming and calling

    private func claimAndCall(on connection: PostgresConnection) async {
        var contexts: [Int64: RunContext] = [:]
        var contextsLoadedAt = ContinuousClock.now - .seconds(3600)
        var wake = claimerWake.makeAsyncIterator()
        await withDiscardingTaskGroup { calls in
            while !isStopping {
                do {
                    if ContinuousClock.now - contextsLoadedAt > .seconds(5) {
                        contexts = try await loadRuns(on: connection, previous: contexts)
                        contextsLoadedAt = .now
                    }
                    for (key, seconds) in takeHolds() {
                        try await WorkQueue.holdPermits(
                            runID: key.runID, judge: key.judge, seconds: seconds, on: connection)
                    }
                    let (wants, permits, throttledFor) = try await applyRateLimits(
                        plan(contexts), contexts: contexts, on: connection)
                    let requested = wants.reduce(0) { $0 + $1.count }
                    var claimed: [ClaimedJob] = []
                    if requested > 0 {
                        claimed = try await WorkQueue.claim(
                            wants, owner: id, leaseSeconds: options.leaseSeconds, on: connection)
                        state.withLock { state in
                            for job in claimed {
                                state.inFlight[job.id] = job
                                state.perJudge[JudgeKey(runID: job.runID, judge: job.judge), default: 0] += 1
                            }
                        }
                        for job in claimed {
                            guard let context = contexts[job.runID] else {
                                submit(.returned(job, error: "run not loaded"))
                                continue
                            }
                            state.withLock { $0.calling += 1 }
                            calls.addTask {
                                let outcome = await self.call(job, context: context)
                                self.state.withLock { $0.calling -= 1 }
                                self.submit(outcome)
                            }
                        }
                        // Only after the jobs are tracked: a failure here must not strand them.
                        for (key, taken) in permits {
                            let used = claimed.count { $0.runID == key.runID && $0.judge == key.judge }
                            if taken > used {
                                try await WorkQueue.returnPermits(
                                    runID: key.runID, judge: key.judge, count: taken - used, on: connection)
                            }
                        }
                    }
                    if let throttledFor {
                        // A judge is at its rate limit: come back when its next permit is due.
                        await sleep(
                            for: .seconds(min(throttledFor, options.idlePollSeconds)), unless: { self.isStopping })
                    } else if requested == 0 || claimed.count < requested {
                        _ = await wake.next()  // a slot freed, work was announced, the poll ticked, or stop
                    }
                } catch {
                    logger.warning("claiming failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                    _ = await wake.next()
                }
            }
            await drain(calls: &calls, wake: &wake)
        }
    }

    /// After stop: let calls under way finish, then cancel those that outlast the drain time.
    private func drain(calls: inout DiscardingTaskGroup, wake: inout AsyncStream<Void>.Iterator) async {
        guard let deadline = callsDeadline else { return }
        // Wake at the deadline even if no call finishes by then (a hung judge).
        let alarm = Task {
            try await Task.sleep(until: deadline)
            self.claimerWakeContinuation.yield()
        }
        defer { alarm.cancel() }
        while state.withLock({ $0.calling > 0 }) && ContinuousClock.now < deadline {
            _ = await wake.next()
        }
        let left = state.withLock { $0.calling }
        if left > 0 {
            logger.info("cancelling calls that outlasted the drain time", metadata: ["jobs": "\(left)"])
            // Each call gives up at once when cancelled (its judge call runs under `withDeadline`).
            calls.cancelAll()
        }
    }

    /// How many jobs of each judge to claim now: no more than the free slots, overall and per judge.
    private func plan(_ contexts: [Int64: RunContext]) -> [WorkQueue.Want] {
        state.withLock { state in
            var free = min(options.concurrency - state.inFlight.count, options.claimBatch)
            var wants: [WorkQueue.Want] = []
            let judges = contexts.values.sorted { $0.run.id < $1.run.id }.flatMap { context in
                context.run.config.judges.filter { context.judges[$0.name] != nil }.map { (context.run.id, $0) }
            }
            guard free > 0, !judges.isEmpty else { return [] }
            // Share the free slots evenly, so that one judge's backlog does not starve the others.
            for (index, (runID, judge)) in judges.enumerated() where free > 0 {
                let key = JudgeKey(runID: runID, judge: judge.name)
                if state.halted.contains(key) { continue }
                let judgeFree = judge.concurrency - state.perJudge[key, default: 0]
                let share = (free + (judges.count - index) - 1) / (judges.count - index)
                let count = min(judgeFree, share)
                if count > 0 {
                    wants.append(.init(runID: runID, judge: judge.name, count: count))
                    free -= count
                }
            }
            return wants
        }
    }

    private func takeHolds() -> [JudgeKey: Double] {
        state.withLock { state in
            let holds = state.holds
            state.holds = [:]
            return holds
        }
    }

    /// Cuts the plan down to the permits the judges' shared rate limits grant now.
    ///
    /// Returns the wants to claim, the permits taken per limited judge (unused ones go back
    /// after the claim), and, when a judge got fewer permits than it wanted, how long until its next one.
    private func applyRateLimits(
        _ wants: [WorkQueue.Want], contexts: [Int64: RunContext], on connection: PostgresConnection
    ) async throws -> (wants: [WorkQueue.Want], permits: [JudgeKey: Int], throttledFor: Double?) {
        var allowed: [WorkQueue.Want] = []
        var permits: [JudgeKey: Int] = [:]
        var throttledFor: Double?
        for want in wants {
            guard let perMinute = contexts[want.runID]?.run.config.judge(named: want.judge)?.requestsPerMinute else {
                allowed.append(want)
                continue
            }
            let granted = try await WorkQueue.takePermits(
                runID: want.runID, judge: want.judge, count: want.count, on: connection)
            permits[JudgeKey(runID: want.runID, judge: want.judge)] = granted
            if granted < want.count {
                throttledFor = min(throttledFor ?? .infinity, 60 / Double(perMinute))
            }
            if granted > 0 {
                allowed.append(.init(runID: want.runID, judge: want.judge, count: granted))
            }
        }
        return (allowed, permits, throttledFor)
    }

    private func call(_ job: ClaimedJob, context: RunContext) async -> JobOutcome {
        var logger = logger
        logger[metadataKey: JuryMetadata.job] = "\(job.id)"
        logger[metadataKey: JuryMetadata.judge] = "\(job.judge)"
        guard let judge = context.judges[job.judge], let config = context.run.config.judge(named: job.judge) else {
            return .returned(job, error: "this worker has no judge \(job.judge)")
        }
        let request = context.renderer.render(id: job.externalID, payload: job.payload)
        let started = ContinuousClock.now
        do {
            // One deadline for the whole call, head and body, whatever the judge's client does.
            let answer = try await withDeadline(.seconds(config.timeoutSeconds)) { try await judge.classify(request) }
            guard context.run.config.labels.contains(answer.label) else {
                throw JudgeError(.badAnswer, "judge \(job.judge) answered a label outside the taxonomy")
            }
            logger.trace("vote", metadata: ["label": "\(answer.label)"])
            return .vote(job, answer, latencyMilliseconds: Int((ContinuousClock.now - started).inMilliseconds))
        } catch {
            if Task.isCancelled || error is CancellationError {
                return .returned(job, error: "the worker stopped before the call finished")
            }
            let error =
                error is DeadlineExceeded
                ? JudgeError(.timeout, "judge \(job.judge): no complete answer within \(config.timeoutSeconds)s")
                : error
            let decision = context.policy.decide(error, history: job.history)
            let key = JudgeKey(runID: job.runID, judge: job.judge)
            if decision.haltsJudge { halt(key, error: error) }
            if let seconds = decision.holdSeconds, config.requestsPerMinute != nil {
                state.withLock { $0.holds[key] = max($0.holds[key] ?? 0, seconds) }
            }
            if let asked = decision.cappedRetryAfter {
                reportCappedRetryAfter(key, asked: asked, policy: context.policy)
            }
            logger.debug(
                "judge call failed",
                metadata: [
                    JuryMetadata.error: "\(error)", "kind": "\(decision.kind)", "final": "\(decision.final)",
                    "attempt": "\(job.attempts)",
                ])
            return .release(job, error: "\(error)", decision)
        }
    }

    /// Stops calling a judge whose failure no retry can cure, and says so; its jobs go back to
    /// pending with the error, without using up an attempt, for a worker that can call the judge.
    private func halt(_ key: JudgeKey, error: Error) {
        let first = state.withLock { $0.halted.insert(key).inserted }
        if first {
            logger.error(
                "this worker stops calling the judge: retrying cannot cure this; fix it and restart the worker",
                metadata: [JuryMetadata.judge: "\(key.judge)", JuryMetadata.error: "\(error)"])
        }
    }

    /// Says that a provider asked to wait longer than the run allows, at most once a minute per judge.
    private func reportCappedRetryAfter(_ key: JudgeKey, asked: Double, policy: CallPolicy) {
        let due = state.withLock { state in
            let now = ContinuousClock.now
            guard state.capLoggedAt[key].map({ now - $0 > .seconds(60) }) ?? true else { return false }
            state.capLoggedAt[key] = now
            return true
        }
        if due {
            logger.warning(
                "the judge asked to wait longer than the run's retry.max_retry_after_seconds; waiting the cap instead",
                metadata: [
                    JuryMetadata.judge: "\(key.judge)", "retry_after_seconds": "\(asked)",
                    "cap_seconds": "\(policy.maxRetryAfter)",
                ])
        }
    }

    private func submit(_ outcome: JobOutcome) {
        state.withLock { $0.outcomes.append(outcome) }
        recorderWakeContinuation.yield()
    }

    /// Loads the runs this worker serves and builds their judges; keeps what is already built.
    private func loadRuns(on connection: PostgresConnection, previous: [Int64: RunContext]) async throws -> [Int64:
        RunContext]
    {
        var contexts: [Int64: RunContext] = [:]
        for run in try await Runs.active(named: options.run, on: connection) {
            if let known = previous[run.id] {
                contexts[run.id] = known
                continue
            }
            var judges: [String: any Judge] = [:]
            for judge in run.config.judges {
                do {
                    judges[judge.name] = try makeJudge(judge)
                } catch {
                    // Leave this judge's jobs to workers that can call it, instead of failing them.
                    logger.error(
                        "cannot call this judge from this worker; its jobs are left to others",
                        metadata: [
                            JuryMetadata.run: "\(run.name)", JuryMetadata.judge: "\(judge.name)",
                            JuryMetadata.error: "\(error)",
                        ])
                }
            }
            let policy = CallPolicy(config: run.config)
            contexts[run.id] = RunContext(
                run: run, renderer: try PromptRenderer(config: run.config), judges: judges, policy: policy)
            state.withLock { $0.policies[run.id] = policy }
        }
        if options.run != nil, contexts.isEmpty {
            logger.debug("the run is not active; waiting", metadata: [JuryMetadata.run: "\(options.run ?? "")"])
        }
        return contexts
    }

    // MARK: - Recording

    /// Most outcomes recorded in one statement.
    private static let recordBatch = 500

    private func recordOutcomes(on connection: PostgresConnection) async {
        var wake = recorderWake.makeAsyncIterator()
        var failures = 0
        while true {
            let (batch, done) = state.withLock { state in
                let batch = Array(state.outcomes.prefix(Self.recordBatch))
                state.outcomes.removeFirst(batch.count)
                return (batch, state.stopping && state.calling == 0 && state.inFlight.isEmpty && batch.isEmpty)
            }
            if done { return }
            if let deadline = recordDeadline, ContinuousClock.now >= deadline {
                giveUpRecording(putBack: batch)
                return
            }
            guard !batch.isEmpty else {
                if isStopping {
                    // Look again shortly: the record deadline must be noticed even if no outcome comes.
                    try? await Task.sleep(for: .milliseconds(50))
                } else {
                    _ = await wake.next()
                }
                continue
            }
            do {
                // Bounded even if the database stops answering: while stopping, by the drain time.
                let limit = recordDeadline.map { $0 - .now } ?? .seconds(600)
                let recorded = try await withDeadline(max(limit, .milliseconds(1))) {
                    try await self.record(batch, on: connection)
                }
                failures = 0
                let votes = batch.count { if case .vote = $0 { return true } else { return false } }
                if recorded < batch.count {
                    logger.info(
                        "some claims were taken back before their outcome was recorded; another worker redoes those jobs",
                        metadata: ["lost": "\(batch.count - recorded)"])
                }
                state.withLock { state in
                    state.votesRecorded += min(votes, recorded)
                    for outcome in batch { Self.forget(outcome.job, in: &state) }
                }
                claimerWakeContinuation.yield()
            } catch {
                // Data errors were dealt with in `record`: what gets here is the connection, or the
                // database as a whole (a schema that does not match), which no single job is to blame for.
                failures += 1
                logger.warning("recording outcomes failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                state.withLock { $0.outcomes.insert(contentsOf: batch, at: 0) }
                let pause = Duration.milliseconds(min(5000, 100 << min(failures, 6)))
                await sleep(for: pause, unless: { self.recordDeadline.map { ContinuousClock.now >= $0 } ?? false })
            }
        }
    }

    /// Records a batch; an outcome the database refuses (a data error) costs its own job only.
    ///
    /// The batch is split until the outcome at fault is found; the others are recorded, and
    /// that job is released with the error as a wrong answer. Any other failure (the connection,
    /// a schema that does not match) is thrown: it is no job's fault, and the whole batch is retried.
    private func record(_ batch: [JobOutcome], on connection: PostgresConnection) async throws -> Int {
        do {
            return try await WorkQueue.record(batch, owner: id, on: connection)
        } catch let error as PostgresError where error.isDataError {
            guard batch.count == 1 else {
                let half = batch.count / 2
                return try await record(Array(batch[..<half]), on: connection)
                    + record(Array(batch[half...]), on: connection)
            }
            let job = batch[0].job
            logger.error(
                "an outcome could not be stored; its job is released as a wrong answer",
                metadata: [
                    JuryMetadata.job: "\(job.id)", JuryMetadata.judge: "\(job.judge)", JuryMetadata.error: "\(error)",
                ])
            if case .release = batch[0] {
                // Even the release was refused: leave the job to its lease, which expires and is reaped.
                return 0
            }
            let policy = state.withLock { $0.policies[job.runID] }
            let reason = JudgeError(.badAnswer, "the answer could not be stored: \(error)")
            let decision =
                policy?.decide(reason, history: job.history)
                ?? CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: false)
            return try await record([.release(job, error: reason.description, decision)], on: connection)
        }
    }

    /// The drain time is over and outcomes remain: their jobs are left to their leases.
    private func giveUpRecording(putBack batch: [JobOutcome]) {
        let left = state.withLock { state in
            state.outcomes.insert(contentsOf: batch, at: 0)
            let left = state.inFlight.count
            state.unrecorded = left
            state.outcomes.removeAll()
            state.inFlight.removeAll()
            state.perJudge.removeAll()
            return left
        }
        if left > 0 {
            logger.error(
                "cannot record outcomes within the drain time; their jobs will be redone after their leases expire",
                metadata: ["jobs": "\(left)"])
        }
        claimerWakeContinuation.yield()
    }

    private static func forget(_ job: ClaimedJob, in state: inout State) {
        guard state.inFlight.removeValue(forKey: job.id) != nil else { return }
        state.perJudge[JudgeKey(runID: job.runID, judge: job.judge), default: 1] -= 1
    }

    // MARK: - Leases, notifications, ticks

    private func keepLeases(on connection: PostgresConnection) async {
        let interval = Duration.seconds(max(options.leaseSeconds / 3, 0.2))
        // Leases matter until the last job is recorded, even while stopping.
        let done = { self.isStopping && self.state.withLock { $0.inFlight.isEmpty } }
        while !done() {
            let held = state.withLock { $0.inFlight.values.map { (id: $0.id, claim: $0.claim) } }
            do {
                let renewed = try await WorkQueue.renewLeases(
                    held, owner: id, leaseSeconds: options.leaseSeconds, on: connection)
                if renewed.count < held.count {
                    logger.debug(
                        "leases not renewed (being recorded, or taken back)",
                        metadata: ["jobs": "\(held.count - renewed.count)"])
                }
                try await Heartbeats.beat(id, inFlight: held.count, on: connection)
            } catch {
                logger.warning("renewing leases failed", metadata: [JuryMetadata.error: "\(error)"])
            }
            await sleep(for: interval, unless: done)
        }
    }

    /// Sleeps in short steps so that the end of the worker is noticed at once, not at the end of the sleep.
    private func sleep(for duration: Duration, unless done: () -> Bool) async {
        let deadline = ContinuousClock.now + duration
        while !done(), ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(100), deadline - .now))
        }
    }

    /// Wakes the claimer on notifications, and between waits takes back expired leases: on a
    /// connection of its own, so that a reap held up by locks never delays renewals or claims.
    private func listenAndReap(on connection: PostgresConnection) async {
        let reapInterval = Duration.seconds(min(max(options.leaseSeconds / 3, 0.2), 10))
        var lastReap = ContinuousClock.now - reapInterval
        while !isStopping {
            if ContinuousClock.now - lastReap >= reapInterval {
                lastReap = .now
                do {
                    try await WorkQueue.reapExpiredLeases(on: connection)
                } catch {
                    logger.debug("reaping expired leases failed", metadata: [JuryMetadata.error: "\(error)"])
                }
            }
            do {
                let notifications = try await connection.waitForNotifications(timeout: .milliseconds(200))
                if !notifications.isEmpty { claimerWakeContinuation.yield() }
            } catch {
                logger.debug("listening failed; reconnecting", metadata: [JuryMetadata.error: "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func tick() async {
        while !isStopping {
            await sleep(for: .seconds(options.idlePollSeconds), unless: { self.isStopping })
            claimerWakeContinuation.yield()
        }
    }
}
