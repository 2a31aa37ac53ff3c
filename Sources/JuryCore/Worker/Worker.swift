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
    /// Most jobs claimed in one statement.
    public var claimBatch: Int = 500

    public init() {}
}

/// Builds the judge that answers for a judge of a run's panel.
public typealias JudgeFactory = @Sendable (JudgeConfig) throws -> any Judge

/// A worker: claims jobs, calls judges concurrently, records votes, keeps its leases alive.
///
/// `run()` returns after `stop()`: it stops claiming, lets in-flight calls finish for up to
/// `drainSeconds`, cancels and releases the rest, records everything, and marks itself stopped.
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
        var inFlight: [Int64: ClaimedJob] = [:]
        var perJudge: [JudgeKey: Int] = [:]
        var outcomes: [JobOutcome] = []
        var stopping = false
        var votesRecorded = 0
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
        let retry: RetryStrategy
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

    /// Asks the worker to stop; `run()` then drains and returns.
    public func stop() {
        state.withLock { $0.stopping = true }
        claimerWakeContinuation.yield()
        recorderWakeContinuation.yield()
    }

    /// Votes this worker has recorded so far.
    public var votesRecorded: Int { state.withLock { $0.votesRecorded } }

    public func run() async throws {
        let claimConnection = try await PostgresConnection.connect(
            conninfo, applicationName: "jury worker", logger: logger)
        let recordConnection = try await PostgresConnection.connect(
            conninfo, applicationName: "jury worker", logger: logger)
        let leaseConnection = try await PostgresConnection.connect(
            conninfo, applicationName: "jury worker", logger: logger)
        let listenConnection = try await PostgresConnection.connect(
            conninfo, applicationName: "jury worker", logger: logger)
        try await listenConnection.listen(WorkQueue.jobsChannel)
        try await Heartbeats.register(id, role: "worker", on: leaseConnection)
        logger.info("worker started", metadata: ["concurrency": "\(options.concurrency)"])

        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen(on: listenConnection) }
            group.addTask { await self.keepLeases(on: leaseConnection) }
            group.addTask { await self.recordOutcomes(on: recordConnection) }
            group.addTask { await self.tick() }
            await self.claimAndCall(on: claimConnection)
            // Everything claimed has been recorded (or could not be): let the helpers end.
            self.stop()
        }
        await Heartbeats.stopped(id, on: leaseConnection)
        logger.info("worker stopped", metadata: ["votes": "\(votesRecorded)"])
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
                                submit(
                                    .release(job, error: "run not loaded", delaySeconds: 0, final: false, refund: true))
                                continue
                            }
                            calls.addTask { self.submit(await self.call(job, context: context)) }
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

    /// After stop: wait for in-flight calls, then cancel the ones that outlast the drain time.
    private func drain(calls: inout DiscardingTaskGroup, wake: inout AsyncStream<Void>.Iterator) async {
        let deadline = ContinuousClock.now + .seconds(options.drainSeconds)
        // Wake at the deadlines even if no call finishes by then (a hung judge).
        let alarms = Task {
            for instant in [deadline, deadline + .seconds(10)] {
                try await Task.sleep(until: instant)
                self.claimerWakeContinuation.yield()
            }
        }
        defer { alarms.cancel() }
        while state.withLock({ !$0.inFlight.isEmpty }) && ContinuousClock.now < deadline {
            _ = await wake.next()
        }
        let left = state.withLock { $0.inFlight.count }
        if left > 0 {
            logger.info("cancelling calls that outlasted the drain time", metadata: ["jobs": "\(left)"])
            calls.cancelAll()
            while state.withLock({ !$0.inFlight.isEmpty }) && ContinuousClock.now < deadline + .seconds(10) {
                _ = await wake.next()
            }
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
        guard let judge = context.judges[job.judge] else {
            return .release(
                job, error: "this worker has no judge \(job.judge)", delaySeconds: 0, final: false, refund: true)
        }
        let request = context.renderer.render(id: job.externalID, payload: job.payload)
        let started = ContinuousClock.now
        do {
            let answer = try await judge.classify(request)
            guard context.run.config.labels.contains(answer.label) else {
                throw JudgeError(.badAnswer, "judge \(job.judge) answered a label outside the taxonomy")
            }
            logger.trace("vote", metadata: ["label": "\(answer.label)"])
            return .vote(job, answer, latencyMilliseconds: Int((ContinuousClock.now - started).inMilliseconds))
        } catch {
            if Task.isCancelled || error is CancellationError {
                return .release(
                    job, error: "the worker stopped before the call finished", delaySeconds: 0, final: false,
                    refund: true)
            }
            if let error = error as? JudgeError, error.code == .unauthorized || error.code == .notFound {
                return halt(job, error: error)
            }
            if let error = error as? JudgeError, error.code == .rateLimited,
                context.run.config.judge(named: job.judge)?.requestsPerMinute != nil
            {
                let key = JudgeKey(runID: job.runID, judge: job.judge)
                let seconds = error.retryAfter ?? 1
                state.withLock { $0.holds[key] = max($0.holds[key] ?? 0, seconds) }
            }
            let retry = context.retry.shouldRetry(attempt: job.attempts, error: error)
            let delay = retry ? context.retry.backoff(attempt: job.attempts, error: error) : 0
            logger.debug(
                "judge call failed",
                metadata: [JuryMetadata.error: "\(error)", "retry": "\(retry)", "attempt": "\(job.attempts)"])
            return .release(job, error: Self.errorText(error), delaySeconds: delay, final: !retry, refund: false)
        }
    }

    /// Stops calling a judge whose failure no retry can cure, and says so; the job goes back to
    /// pending with the error, without using up an attempt, for a worker that can call the judge.
    private func halt(_ job: ClaimedJob, error: JudgeError) -> JobOutcome {
        let first = state.withLock { $0.halted.insert(JudgeKey(runID: job.runID, judge: job.judge)).inserted }
        if first {
            logger.error(
                "this worker stops calling the judge: retrying cannot cure this; fix it and restart the worker",
                metadata: [JuryMetadata.judge: "\(job.judge)", JuryMetadata.error: "\(error)"])
        }
        return .release(job, error: Self.errorText(error), delaySeconds: 60, final: false, refund: true)
    }

    /// What a job's `last_error` keeps of a failed call.
    private static func errorText(_ error: Error) -> String {
        String(String(describing: error).prefix(500))
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
            contexts[run.id] = RunContext(
                run: run, renderer: try PromptRenderer(config: run.config), judges: judges,
                retry: RetryStrategy(config: run.config))
        }
        if options.run != nil, contexts.isEmpty {
            logger.debug("the run is not active; waiting", metadata: [JuryMetadata.run: "\(options.run ?? "")"])
        }
        return contexts
    }

    // MARK: - Recording

    private func recordOutcomes(on connection: PostgresConnection) async {
        var wake = recorderWake.makeAsyncIterator()
        while true {
            let (batch, done) = state.withLock { state in
                let batch = state.outcomes
                state.outcomes = []
                return (batch, state.stopping && state.inFlight.isEmpty && batch.isEmpty)
            }
            if done { return }
            guard !batch.isEmpty else {
                _ = await wake.next()
                continue
            }
            do {
                let recorded = try await WorkQueue.record(batch, owner: id, on: connection)
                let votes = batch.count { if case .vote = $0 { return true } else { return false } }
                if recorded < batch.count {
                    logger.info(
                        "some leases were lost before their outcome was recorded; another worker redoes those jobs",
                        metadata: ["lost": "\(batch.count - recorded)"])
                }
                state.withLock { state in
                    state.votesRecorded += min(votes, recorded)
                    for outcome in batch {
                        let job = outcome.job
                        state.inFlight.removeValue(forKey: job.id)
                        state.perJudge[JudgeKey(runID: job.runID, judge: job.judge), default: 1] -= 1
                    }
                }
                claimerWakeContinuation.yield()
            } catch {
                logger.warning("recording outcomes failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                state.withLock { $0.outcomes.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: .milliseconds(500))
                if isStopping, (try? await connection.query("SELECT 1")) == nil {
                    // The database is gone while stopping: the leases will expire and others redo the jobs.
                    logger.error(
                        "cannot record outcomes while stopping; their jobs will be redone after their leases expire")
                    state.withLock {
                        $0.inFlight.removeAll()
                        $0.outcomes.removeAll()
                    }
                    claimerWakeContinuation.yield()
                    return
                }
            }
        }
    }

    // MARK: - Leases, notifications, ticks

    private func keepLeases(on connection: PostgresConnection) async {
        let interval = Duration.seconds(max(options.leaseSeconds / 3, 0.2))
        while !isStopping || state.withLock({ !$0.inFlight.isEmpty }) {
            let held = state.withLock { Array($0.inFlight.keys) }
            do {
                let renewed = try await WorkQueue.renewLeases(
                    held, owner: id, leaseSeconds: options.leaseSeconds, on: connection)
                if renewed.count < held.count {
                    logger.debug(
                        "leases not renewed (being recorded, or lost)",
                        metadata: ["jobs": "\(held.count - renewed.count)"])
                }
                try await Heartbeats.beat(id, inFlight: held.count, on: connection)
                try await WorkQueue.reapExpiredLeases(on: connection)
            } catch {
                logger.warning("renewing leases failed", metadata: [JuryMetadata.error: "\(error)"])
            }
            // Leases matter until the last job is recorded, even while stopping.
            await sleep(for: interval, unless: { self.isStopping && self.state.withLock { $0.inFlight.isEmpty } })
        }
    }

    /// Sleeps in short steps so that the end of the worker is noticed at once, not at the end of the sleep.
    private func sleep(for duration: Duration, unless done: () -> Bool) async {
        let deadline = ContinuousClock.now + duration
        while !done(), ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(100), deadline - .now))
        }
    }

    private func listen(on connection: PostgresConnection) async {
        while !isStopping {
            do {
                let notifications = try await connection.waitForNotifications(timeout: .milliseconds(500))
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
