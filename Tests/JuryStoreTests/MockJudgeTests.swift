import Foundation
import JuryDomain
import JuryJudges
import JuryMockJudge
import JuryTestSupport
import Testing

@Suite("Mock judge")
struct MockJudgeTests {
    @Test func answersDeterministicallyPerJudgeAndRejectsUnknownModels() async throws {
        try await withMockJudges([mockJudge("det", seed: 99, accuracy: 0.7)]) { baseURL, _ in
            let config = JudgeConfig(name: "det", provider: "openai-compatible", model: "det", baseURL: baseURL)
            let judge = try HTTPJudge(config: config, client: testHTTPClient)
            let labels = ["valid", "needs_more_context", "missing_capability", "wrong_skill", "ambiguous"]
            for text in ["Customers from Paris", "Write an email", "Find my best customers", "Customers aged 30"] {
                let request = JudgeRequest(system: "s", user: "Request: \(text)", labels: labels)
                let first = try await judge.classify(request)
                let second = try await judge.classify(request)
                #expect(first.label == second.label)
                #expect(labels.contains(first.label))
            }
            let unknown = JudgeConfig(
                name: "x", provider: "openai-compatible", model: "no-such-model", baseURL: baseURL)
            let error = await #expect(throws: JudgeError.self) {
                try await HTTPJudge(config: unknown, client: testHTTPClient)
                    .classify(JudgeRequest(system: "s", user: "u", labels: labels))
            }
            #expect(error?.code == .notFound)
            let policy = CallPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 10, giveUpAfter: 60, maxRetryAfter: 60)
            #expect(policy.decide(error!, history: .init(attempts: 1)).haltsJudge)
        }
    }

    @Test func theRulesReadTheDemoVocabulary() {
        let labels = ["valid", "needs_more_context", "missing_capability", "wrong_skill", "ambiguous"]
        #expect(
            MockClassifier.classify("Write an email to customers", labels: labels, fallback: "valid") == "wrong_skill")
        #expect(
            MockClassifier.classify("Customers by household income", labels: labels, fallback: "valid")
                == "missing_capability")
        #expect(MockClassifier.classify("Customers from Paris", labels: labels, fallback: "valid") == "ambiguous")
        #expect(
            MockClassifier.classify("Find my best customers", labels: labels, fallback: "valid") == "needs_more_context"
        )
        #expect(MockClassifier.classify("Customers who spent over $500", labels: labels, fallback: "valid") == "valid")
    }
}
