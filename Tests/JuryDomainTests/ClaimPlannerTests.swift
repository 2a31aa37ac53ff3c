import JuryDomain
import Testing

@Suite("Claim planner")
struct ClaimPlannerTests {
    private func judge(_ name: String, run: Int64 = 1, concurrency: Int = 64, account: String? = nil)
        -> ClaimPlanner.Judge
    {
        ClaimPlanner.Judge(key: JudgeKey(runID: run, judge: name), concurrency: concurrency, limitKey: account)
    }

    private func counts(_ requests: [ClaimRequest]) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: requests.map { ($0.judge, $0.count) })
    }

    @Test func freeSlotsAreSharedEvenlyAmongJudges() {
        let planner = ClaimPlanner(concurrency: 100, batch: 500)
        let plan = planner.plan(judges: ["a", "b", "c", "d"].map { judge($0) }, inFlight: [:])
        #expect(counts(plan) == ["a": 25, "b": 25, "c": 25, "d": 25])
    }

    @Test func aJudgeAtItsConcurrencyLeavesItsShareToTheOthers() {
        let planner = ClaimPlanner(concurrency: 100, batch: 500)
        let judges = [judge("slow", concurrency: 10), judge("fast", concurrency: 200)]
        let plan = planner.plan(judges: judges, inFlight: [JudgeKey(runID: 1, judge: "slow"): 10])
        #expect(counts(plan) == ["fast": 90])
    }

    @Test func heldJobsAndTheBatchBoundTheClaim() {
        let planner = ClaimPlanner(concurrency: 100, batch: 30)
        #expect(counts(planner.plan(judges: [judge("a")], inFlight: [:])) == ["a": 30])
        let full = [JudgeKey(runID: 1, judge: "a"): 100]
        #expect(planner.plan(judges: [judge("a"), judge("b")], inFlight: full).isEmpty)
    }

    @Test func haltedJudgesAreNotClaimedAndTheirShareGoesToTheOthers() {
        let planner = ClaimPlanner(concurrency: 10, batch: 500)
        let plan = planner.plan(
            judges: [judge("bad"), judge("good")], inFlight: [:], halted: [JudgeKey(runID: 1, judge: "bad")])
        #expect(counts(plan) == ["good": 10])
    }

    @Test func judgesOfSeveralRunsAreKeptApart() {
        let planner = ClaimPlanner(concurrency: 4, batch: 500)
        let plan = planner.plan(judges: [judge("a", run: 1), judge("a", run: 2)], inFlight: [:])
        #expect(plan == [ClaimRequest(runID: 1, judge: "a", count: 2), ClaimRequest(runID: 2, judge: "a", count: 2)])
    }

    @Test func permitsCutTheRateLimitedJudgesOnly() {
        let planner = ClaimPlanner(concurrency: 100, batch: 500)
        let judges = [judge("limited", account: "openai:KEY"), judge("free")]
        let plan = planner.plan(judges: judges, inFlight: [:])
        let limited = JudgeKey(runID: 1, judge: "limited")
        #expect(counts(planner.limit(plan, granted: [limited: 3])) == ["limited": 3, "free": 50])
        #expect(counts(planner.limit(plan, granted: [limited: 0])) == ["free": 50])
        #expect(counts(planner.limit(plan, granted: [limited: 80])) == ["limited": 50, "free": 50])
    }

    @Test func unusedPermitsAreGivenBack() {
        let planner = ClaimPlanner(concurrency: 100, batch: 500)
        let key = JudgeKey(runID: 1, judge: "limited")
        let job = ClaimedJob(
            id: 1, runID: 1, exampleID: 1, judge: "limited", attempts: 1, claim: 1, transientFailures: 0,
            retryingSeconds: nil, externalID: "x", payload: .object([:]))
        #expect(planner.unusedPermits(granted: [key: 3], claimed: [job]) == [key: 2])
        #expect(planner.unusedPermits(granted: [key: 1], claimed: [job]).isEmpty)
    }
}
