import JuryDomain
import JuryStore

/// Takes permits from the accounts' shared limits before a claim, gives back what the claim did
/// not use, and passes on what the calls taught: 429 holds, the providers' remaining budgets,
/// and the tokens calls really used.
struct Permits: Sendable {
    let store: Store
    let ledger: WorkerLedger
    let planner: ClaimPlanner

    /// What was taken for one judge, to give back what the claim did not use.
    struct Taken {
        let limitKey: String
        let count: Int
        let tokensEach: Double
    }

    /// Sends the holds, observations and token corrections gathered since the last claim.
    func flush() async throws {
        let news = ledger.takeAccountNews()
        for (key, seconds) in news.holds { try await store.holdAccount(limitKey: key, seconds: seconds) }
        for (key, observation) in news.observations { try await store.observeAccount(limitKey: key, observation) }
        for (key, tokens) in news.corrections {
            try await store.adjustPermits(limitKey: key, requests: 0, tokens: tokens)
        }
    }

    /// The plan cut to the permits granted, what was taken, and, when an account granted fewer
    /// than asked, how long until its next permit (with jitter, so that workers do not wake together).
    func take(_ planned: [ClaimRequest], judges: [ClaimPlanner.Judge]) async throws -> (
        requests: [ClaimRequest], taken: [JudgeKey: Taken], throttledFor: Double?
    ) {
        var granted: [JudgeKey: Int] = [:]
        var taken: [JudgeKey: Taken] = [:]
        var throttledFor: Double?
        for request in planned {
            let key = JudgeKey(runID: request.runID, judge: request.judge)
            guard let limitKey = judges.first(where: { $0.key == key })?.limitKey else { continue }
            let each = ledger.tokenEstimate(key)
            let permits = try await store.takePermits(limitKey: limitKey, count: request.count, tokensEach: each)
            granted[key] = permits.granted
            taken[key] = Taken(limitKey: limitKey, count: permits.granted, tokensEach: each)
            if permits.granted < request.count {
                throttledFor = min(throttledFor ?? .infinity, permits.waitSeconds * Double.random(in: 1...1.2))
            }
        }
        return (planner.limit(planned, granted: granted), taken, throttledFor)
    }

    /// Gives back the permits the claim did not use, and notes the tokens taken for each job.
    func settle(_ taken: [JudgeKey: Taken], claimed: [ClaimedJob]) async throws {
        for (key, permits) in taken {
            let jobs = claimed.filter { $0.runID == key.runID && $0.judge == key.judge }
            ledger.tokensTaken(jobs, limitKey: permits.limitKey, each: permits.tokensEach)
        }
        for (key, unused) in planner.unusedPermits(granted: taken.mapValues(\.count), claimed: claimed) {
            guard let permits = taken[key] else { continue }
            try await store.adjustPermits(
                limitKey: permits.limitKey, requests: Double(unused), tokens: Double(unused) * permits.tokensEach)
        }
    }
}
