/// One judge of one run: the unit that claims, concurrency and rate limits are counted by.
public struct JudgeKey: Hashable, Sendable {
    public let runID: Int64
    public let judge: String

    public init(runID: Int64, judge: String) {
        self.runID = runID
        self.judge = judge
    }
}

/// How many jobs a worker claims, of which judge: pure, so that fairness can be tested alone.
public struct ClaimPlanner: Sendable {
    /// A judge the worker can call, with the most calls it may have in flight to it.
    public struct Judge: Sendable, Equatable {
        public let key: JudgeKey
        public let concurrency: Int
        /// The account whose shared limits its calls need permits from; nil for none.
        public let limitKey: String?

        public init(key: JudgeKey, concurrency: Int, limitKey: String? = nil) {
            self.key = key
            self.concurrency = concurrency
            self.limitKey = limitKey
        }
    }

    /// Most calls in flight in the process, all judges together.
    public let concurrency: Int
    /// Most jobs claimed in one statement.
    public let batch: Int

    public init(concurrency: Int, batch: Int) {
        self.concurrency = concurrency
        self.batch = batch
    }

    /// What to claim now: no more than the free slots, overall and per judge, shared evenly
    /// among the judges in the order given, so that one judge's backlog does not starve the others.
    ///
    /// - Parameters:
    ///   - inFlight: jobs held per judge; their sum is what the process holds.
    ///   - halted: judges this worker no longer calls.
    public func plan(judges: [Judge], inFlight: [JudgeKey: Int], halted: Set<JudgeKey> = []) -> [ClaimRequest] {
        let held = inFlight.values.reduce(0, +)
        var free = min(concurrency - held, batch)
        let callable = judges.filter { !halted.contains($0.key) }
        var requests: [ClaimRequest] = []
        for (index, judge) in callable.enumerated() where free > 0 {
            let remaining = callable.count - index
            let share = (free + remaining - 1) / remaining
            let count = min(judge.concurrency - inFlight[judge.key, default: 0], share)
            if count > 0 {
                requests.append(ClaimRequest(runID: judge.key.runID, judge: judge.key.judge, count: count))
                free -= count
            }
        }
        return requests
    }

    /// The plan cut down to the permits the rate-limited judges were granted; judges without a
    /// limit (no entry in `granted`) keep their request.
    public func limit(_ requests: [ClaimRequest], granted: [JudgeKey: Int]) -> [ClaimRequest] {
        requests.compactMap { request in
            guard let permits = granted[JudgeKey(runID: request.runID, judge: request.judge)] else { return request }
            let count = min(permits, request.count)
            return count > 0 ? ClaimRequest(runID: request.runID, judge: request.judge, count: count) : nil
        }
    }

    /// Permits taken but not used by the jobs claimed: to give back, so the budget is not lost.
    public func unusedPermits(granted: [JudgeKey: Int], claimed: [ClaimedJob]) -> [JudgeKey: Int] {
        var unused = granted
        for job in claimed {
            let key = JudgeKey(runID: job.runID, judge: job.judge)
            if let left = unused[key] { unused[key] = left - 1 }
        }
        return unused.filter { $0.value > 0 }
    }
}
