import JuryDomain
import JuryStore
import Logging
import Synchronization

/// Claims jobs as slots and rate limits allow and starts their calls; on stop, drains them.
struct Claimer: Sendable {
    let id: String
    let store: Store
    let options: WorkerOptions
    let ledger: WorkerLedger
    let caller: JudgeCaller
    let makeJudge: JudgeFactory
    let logger: Logger

    func run() async {
        let planner = ClaimPlanner(concurrency: options.concurrency, batch: options.claimBatch)
        let permits = Permits(store: store, ledger: ledger, planner: planner)
        var contexts: [Int64: RunContext] = [:]
        var contextsLoadedAt = ContinuousClock.now - .seconds(3600)
        // Whether the last wait ended with a notification: then the next one is short, since
        // the notification may stand for jobs released just after it (see `Channel`).
        var followsNotification = false
        await withDiscardingTaskGroup { calls in
            while !ledger.isStopping {
                let idleWait = Channel.idleWait(
                    followsNotification: followsNotification, idlePoll: .seconds(options.idlePollSeconds))
                followsNotification = false
                do {
                    try await returnUntrackedJobsAfterAFailure()
                    for (key, reason) in ledger.takeBreakersToOpen() {
                        try await store.openBreaker(runID: key.runID, judge: key.judge, reason: reason, owner: id)
                    }
                    if ContinuousClock.now - contextsLoadedAt > .seconds(5) {
                        contexts = try await loadRuns(previous: contexts)
                        try await applyFleetStops(&contexts)
                        contextsLoadedAt = .now
                    }
                    try await permits.flush()
                    let judges = Self.judges(of: contexts)
                    let (inFlight, halted) = ledger.state.withLock { ($0.perJudge, $0.halted) }
                    let planned = planner.plan(
                        judges: judges, inFlight: inFlight, halted: halted.union(heldJudges(contexts)))
                    let (requests, taken, throttledFor) = try await permits.take(planned, judges: judges)
                    let requested = requests.reduce(0) { $0 + $1.count }
                    var claimed: [ClaimedJob] = []
                    if requested > 0 {
                        claimed = try await store.claim(requests, owner: id, leaseSeconds: options.leaseSeconds)
                        ledger.track(claimed)
                        RuntimeMetrics.claimed(claimed.count)
                        // An example's judges are claimed together and sent the same prompt: it is
                        // rendered, and its hash computed, once for all of them.
                        var prompts: [Int64: RenderedPrompt] = [:]
                        for job in claimed {
                            guard let context = contexts[job.runID] else {
                                ledger.submit(.returned(job, error: "run not loaded"))
                                continue
                            }
                            let prompt = prompts[job.exampleID] ?? RenderedPrompt(job, renderer: context.renderer)
                            prompts[job.exampleID] = prompt
                            ledger.callStarted()
                            calls.addTask {
                                ledger.callEnded(with: await caller.call(job, prompt: prompt, context: context))
                            }
                        }
                    }
                    // Only after the jobs are tracked: a failure here must not strand them.
                    try await permits.settle(taken, claimed: claimed)
                    if let throttledFor {
                        // A judge is at its rate limit: come back when its next permit is due.
                        followsNotification = await idle(min(.seconds(throttledFor), idleWait))
                    } else if requested == 0 || claimed.count < requested {
                        // Until a slot frees, work is announced, the poll interval passes, or a stop.
                        followsNotification = await idle(idleWait)
                    }
                } catch {
                    logger.warning("claiming failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                    ledger.databaseFailed()
                    await ledger.claimerWakeup.wait(timeout: .seconds(options.idlePollSeconds))
                }
            }
            await drain(&calls)
        }
    }

    /// After a statement failed anywhere in the worker, gives back the jobs the database says
    /// it holds but the ledger does not track: those of a claim that committed unheard, and
    /// those whose recorded outcome the database lost. Nobody else would: this worker is alive.
    /// Running here, in the task that claims, no claim is between its commit and its tracking.
    private func returnUntrackedJobsAfterAFailure() async throws {
        let tracked: [Int64]? = ledger.state.withLock { state in
            guard state.mayHoldUntracked else { return nil }
            state.mayHoldUntracked = false
            return Array(state.inFlight.keys)
        }
        guard let tracked else { return }
        do {
            let returned = try await store.returnUntrackedJobs(owner: id, tracked: tracked)
            if returned > 0 {
                logger.warning(
                    "gave back jobs the database says this worker holds but it had no call for",
                    metadata: ["jobs": "\(returned)"])
            }
        } catch {
            ledger.databaseFailed()
            throw error
        }
    }

    /// Waits until the claimer's wakeup is raised (a slot freed, a stop), `timeout` passes, or,
    /// listening, jobs are announced: then it sleeps on its connection's socket, and a raise
    /// interrupts that sleep. (The connection is the claimer's own: nothing else waits behind it.)
    /// Returns whether jobs were announced.
    private func idle(_ timeout: Duration) async -> Bool {
        guard options.listens else {
            await ledger.claimerWakeup.wait(timeout: timeout)
            return false
        }
        if ledger.claimerWakeup.consume() { return false }
        do {
            let notified = try await store.waitForNotifications(timeout: timeout)
            _ = ledger.claimerWakeup.consume()
            return !notified.isEmpty
        } catch {
            // The connection failed: the next claim resets it; meanwhile wait on the signal alone.
            await ledger.claimerWakeup.wait(timeout: timeout)
            return false
        }
    }

    /// After stop: let calls under way finish, then cancel those that outlast the drain time.
    private func drain(_ calls: inout DiscardingTaskGroup) async {
        // The deadline is read again after each wake-up: a cancellation during the drain ends it.
        while ledger.state.withLock({ $0.calling > 0 }), let deadline = ledger.callsDeadline,
            ContinuousClock.now < deadline
        {
            await ledger.claimerWakeup.wait(timeout: deadline - .now)
        }
        let left = ledger.state.withLock { $0.calling }
        if left > 0 {
            logger.info("cancelling the calls still in flight", metadata: ["jobs": "\(left)"])
            // Each call gives up at once when cancelled (its judge call runs under `withDeadline`).
            calls.cancelAll()
        }
    }

    /// Leaves out what is stopped for every worker: judges whose breaker is open, runs over budget.
    private func applyFleetStops(_ contexts: inout [Int64: RunContext]) async throws {
        let stops = try await store.fleetStops()
        ledger.setOpenBreakers(stops.breakers)
        ledger.setHeldAccounts(stops.heldAccounts)
        let newlyOver = ledger.setOverBudget(stops.overBudget)
        for runID in stops.overBudget {
            guard let context = contexts.removeValue(forKey: runID), newlyOver.contains(runID) else { continue }
            logger.warning(
                "the run spent its budget_usd; its jobs are no longer claimed",
                metadata: [
                    JuryMetadata.run: "\(context.run.name)", "budget_usd": "\(context.run.config.budgetUSD ?? 0)",
                ])
        }
    }

    /// Judges whose account is held after a 429: not claimed for until the hold ends. (Judges
    /// with limits of their own also find the hold when they take permits.)
    private func heldJudges(_ contexts: [Int64: RunContext]) -> Set<JudgeKey> {
        var held: Set<JudgeKey> = []
        for context in contexts.values {
            for judge in context.run.config.judges where ledger.isHeld(judge.limitKey) {
                held.insert(JudgeKey(runID: context.run.id, judge: judge.name))
            }
        }
        return held
    }

    /// The judges this worker can call, run by run, in a stable order. Only judges with limits
    /// of their own take permits: the others cost no statement per claim.
    private static func judges(of contexts: [Int64: RunContext]) -> [ClaimPlanner.Judge] {
        contexts.values.sorted { $0.run.id < $1.run.id }.flatMap { context in
            // Batch-mode judges' jobs go to provider batches (`BatchDriver`), never online.
            context.run.config.judges.filter { context.judges[$0.name] != nil && $0.mode == .online }.map { judge in
                ClaimPlanner.Judge(
                    key: JudgeKey(runID: context.run.id, judge: judge.name), concurrency: judge.concurrency,
                    limitKey: judge.requestsPerMinute != nil || judge.tokensPerMinute != nil ? judge.limitKey : nil)
            }
        }
    }

    /// Loads the runs this worker serves and builds their judges; keeps what is already built.
    private func loadRuns(previous: [Int64: RunContext]) async throws -> [Int64: RunContext] {
        var contexts: [Int64: RunContext] = [:]
        for run in try await store.activeRuns(named: options.run) {
            if let known = previous[run.id] {
                if known.run.config == run.config {
                    contexts[run.id] = known
                    continue
                }
                // `jury run update`: calls under way finish with the judges they started with.
                logger.info(
                    "the run's config changed; its judges are set up again", metadata: [JuryMetadata.run: "\(run.name)"]
                )
                caller.settingsChanged(runID: run.id)
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
            for judge in run.config.judges { RuntimeMetrics.declare(run: run.name, judge: judge.name) }
            let policy = CallPolicy(config: run.config)
            contexts[run.id] = RunContext(
                run: run, renderer: try PromptRenderer(config: run.config), judges: judges, policy: policy)
            ledger.state.withLock { state in
                state.policies[run.id] = policy
                state.runNames[run.id] = run.name
            }
        }
        if options.run != nil, contexts.isEmpty {
            logger.debug("the run is not active; waiting", metadata: [JuryMetadata.run: "\(options.run ?? "")"])
        }
        return contexts
    }
}
