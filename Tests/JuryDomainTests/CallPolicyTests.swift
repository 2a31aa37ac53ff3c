import JuryDomain
import Testing

@Suite("Call policy")
struct CallPolicyTests {
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

    @Test func aStoredAnswerThatCannotBeStoredCountsAsAWrongAnswer() {
        let policy = CallPolicy(maxAttempts: 2, baseDelay: 1, maxDelay: 8, giveUpAfter: 100, maxRetryAfter: 60)
        let decision = policy.decide(JudgeError(.badAnswer, "cannot be stored"), history: .init(attempts: 2), random: 0)
        #expect(decision.kind == .answer && decision.final && !decision.haltsJudge)
    }
}
