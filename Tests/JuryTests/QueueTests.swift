import Foundation
import JuryCore
import Testing

/// The queue's transitions, straight through WorkQueue against PostgreSQL.
@Suite("Queue")
struct QueueTests {
    private func setUp(_ url: String, examples: Int = 3) async throws -> (PostgresConnection, StoredRun) {
        let connection = try await connect(url)
        let run = try await createRun(runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1"), on: connection)
        _ = try await Enqueuer(connection: connection, logger: TestDatabase.logger)
            .enqueue(file: try writeCorpus(count: examples), run: run.name)
        return (connection, run)
    }

    @Test func aLateOutcomeOfAnEarlierClaimTouchesNothing() async throws {
        try await TestDatabase.withFresh { url in
            let (connection, run) = try await setUp(url, examples: 1)
            let want = [WorkQueue.Want(runID: run.id, judge: "j1", count: 1)]
            let first = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)
            #expect(first.count == 1 && first[0].claim == 1)
            // The lease runs out (the worker stalled) and the job is claimed again, by the same process even.
            try await connection.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
            #expect(try await WorkQueue.reapExpiredLeases(on: connection) == 1)
            let second = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)
            #expect(second.count == 1 && second[0].claim == 2)

            let answer = JudgeAnswer(label: "valid", rationale: "late")
            #expect(
                try await WorkQueue.renewLeases(
                    [(first[0].id, first[0].claim)], owner: "w", leaseSeconds: 60, on: connection
                ).isEmpty)
            #expect(
                try await WorkQueue.record(
                    [.vote(first[0], answer, latencyMilliseconds: 1)], owner: "w", on: connection) == 0)
            #expect(try await WorkQueue.record([.returned(first[0], error: "late")], owner: "w", on: connection) == 0)
            #expect(try await connection.count("SELECT count(*) FROM votes") == 0)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 1)

            let current = JudgeAnswer(label: "ambiguous", rationale: "current")
            #expect(
                try await WorkQueue.record(
                    [.vote(second[0], current, latencyMilliseconds: 1)], owner: "w", on: connection) == 1)
            #expect(try await connection.query("SELECT rationale FROM votes")[0]["rationale"] == "current")
        }
    }

    @Test func pausedRunsAndExamplesNoLongerVotingAreNotClaimed() async throws {
        try await TestDatabase.withFresh { url in
            let (connection, run) = try await setUp(url)
            let want = [WorkQueue.Want(runID: run.id, judge: "j1", count: 10)]
            try await Operations.setState("paused", run: run.name, on: connection)
            #expect(try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection).isEmpty)
            try await Operations.setState("active", run: run.name, on: connection)
            try await connection.query("UPDATE examples SET state = 'decided' WHERE external_id = 'ex-0'")
            let claimed = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)
            #expect(Set(claimed.map(\.externalID)) == ["ex-1", "ex-2"])
            try await Operations.setState("cancelled", run: run.name, on: connection)
            try await connection.query("UPDATE jobs SET state = 'pending'")
            #expect(try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection).isEmpty)
        }
    }

    @Test func outagesRefundAttemptsAndWrongAnswersCountThem() async throws {
        try await TestDatabase.withFresh { url in
            let (connection, run) = try await setUp(url, examples: 1)
            let want = [WorkQueue.Want(runID: run.id, judge: "j1", count: 1)]
            let policy = CallPolicy(config: run.config)
            var job = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)[0]
            let outage = policy.decide(JudgeError(.server, "HTTP 503"), history: job.history, random: 0)
            try await WorkQueue.record([.release(job, error: "HTTP 503", outage)], owner: "w", on: connection)
            job = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)[0]
            #expect(job.attempts == 1 && job.transientFailures == 1 && job.retryingSeconds != nil)
            let wrong = policy.decide(JudgeError(.badAnswer, "not JSON"), history: job.history, random: 0)
            #expect(wrong.kind == .answer && !wrong.final)
            try await WorkQueue.record([.release(job, error: "not JSON", wrong)], owner: "w", on: connection)
            job = try await WorkQueue.claim(want, owner: "w", leaseSeconds: 60, on: connection)[0]
            #expect(job.attempts == 2 && job.transientFailures == 0 && job.retryingSeconds == nil && job.claim == 3)
        }
    }

    @Test func theCallPolicyDecides() {
        let policy = CallPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 8, giveUpAfter: 100, maxRetryAfter: 60)
        let fresh = CallPolicy.History(attempts: 1)
        // Outages: backoff grows with the streak, capped; no attempt used; final once past give-up.
        #expect(policy.decide(JudgeError(.server, "503"), history: fresh, random: 1).delaySeconds == 1)
        let long = CallPolicy.History(attempts: 1, transientFailures: 9, retryingSeconds: 50)
        #expect(policy.decide(JudgeError(.timeout, "t"), history: long, random: 1).delaySeconds == 8)
        #expect(policy.decide(JudgeError(.network, "n"), history: long, random: 0.5).kind == .transient)
        let over = CallPolicy.History(attempts: 1, transientFailures: 40, retryingSeconds: 101)
        #expect(policy.decide(JudgeError(.network, "n"), history: over, random: 0).final)
        // Retry-After: honoured up to the cap, which is reported; a 429 holds the judge.
        let day = policy.decide(JudgeError(.rateLimited, "429", retryAfter: 86400), history: fresh, random: 0)
        #expect(day.delaySeconds == 60 && day.cappedRetryAfter == 86400 && day.holdSeconds == 60)
        let short = policy.decide(JudgeError(.rateLimited, "429", retryAfter: 2), history: fresh, random: 0)
        #expect(short.delaySeconds == 2 && short.cappedRetryAfter == nil)
        // Wrong answers count; the third is final.
        #expect(!policy.decide(JudgeError(.badAnswer, "x"), history: .init(attempts: 2), random: 0).final)
        #expect(policy.decide(JudgeError(.badRequest, "400"), history: .init(attempts: 3), random: 0).final)
        // A bad key halts the judge and refunds.
        let halt = policy.decide(JudgeError(.unauthorized, "401"), history: fresh, random: 0)
        #expect(halt.haltsJudge && halt.kind == .returned && !halt.final)
    }
}
