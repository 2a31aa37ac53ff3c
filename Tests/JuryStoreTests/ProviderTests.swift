import Foundation
import JuryDomain
import JuryJudges
import JuryMockJudge
import JuryTestSupport
import Testing

/// Each provider's own API over real HTTP, against the mock judge speaking it.
@Suite("Providers")
struct ProviderTests {
    static let labels = ["valid", "needs_more_context", "missing_capability", "wrong_skill", "ambiguous"]
    static let key = "sk-provider-test-4417"

    /// The mock judges every provider test uses, one per behaviour.
    static let behaviours = [
        mockJudge("good", seed: 1, apiKey: key),
        mockJudge("limited", seed: 2, rateLimitRate: 1, apiKey: key, faults: .init(retryAfter: "7")),
        mockJudge("failing", seed: 3, errorRate: 1, apiKey: key),
        mockJudge("overloaded", seed: 4, apiKey: key, faults: .init(outageSeconds: 3600, outageStatus: 529)),
        mockJudge("broke", seed: 5, apiKey: key, faults: .init(exhausted: true)),
        mockJudge("chatty", seed: 6, apiKey: key, faults: .init(garbageRate: 1)),
        mockJudge("dropping", seed: 7, apiKey: key, faults: .init(dropRate: 1)),
    ]

    func judge(_ provider: String, _ model: String, baseURL: String, key: String = key) throws -> HTTPJudge {
        let base = provider == "gemini" ? baseURL.replacingOccurrences(of: "/v1", with: "/v1beta") : baseURL
        let config = JudgeConfig(
            name: "\(provider)-\(model)", provider: provider, model: model, baseURL: base, apiKeyEnv: "K")
        return try HTTPJudge(config: config, client: testHTTPClient, environment: ["K": key])
    }

    func classify(_ judge: HTTPJudge) async throws -> JudgeAnswer {
        try await judge.classify(
            JudgeRequest(system: "Label it.", user: "Request: Customers from Paris", labels: Self.labels))
    }

    func failure(_ judge: HTTPJudge) async -> JudgeError? {
        await #expect(throws: JudgeError.self) { try await classify(judge) }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func eachProviderIsAskedInItsOwnFormatAndReadBack(provider: String) async throws {
        try await withMockJudges(Self.behaviours) { baseURL, _ in
            let answer = try await classify(try judge(provider, "good", baseURL: baseURL))
            #expect(answer.label == "ambiguous")  // the mock reads "Paris" as ambiguous, in every format
            #expect(answer.rationale == "mock judge good read the request")
            #expect(answer.promptTokens == 8 && answer.completionTokens == 16 && answer.cachedTokens == 0)
            #expect(answer.modelVersion == "good-mock-2026-11")
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func eachErrorClassIsReadInEachFormat(provider: String) async throws {
        try await withMockJudges(Self.behaviours) { baseURL, _ in
            let limited = await failure(try judge(provider, "limited", baseURL: baseURL))
            #expect(limited?.code == .rateLimited && limited?.retryAfter == 7, "\(String(describing: limited))")
            #expect(await failure(try judge(provider, "failing", baseURL: baseURL))?.code == .server)
            #expect(await failure(try judge(provider, "overloaded", baseURL: baseURL))?.code == .server)
            #expect(await failure(try judge(provider, "broke", baseURL: baseURL))?.code == .quotaExhausted)
            #expect(await failure(try judge(provider, "nobody", baseURL: baseURL))?.code == .notFound)
            #expect(await failure(try judge(provider, "dropping", baseURL: baseURL))?.code == .network)
            let badKey = await failure(try judge(provider, "good", baseURL: baseURL, key: "sk-wrong-9931"))
            #expect(badKey?.code == .unauthorized)
            #expect(badKey?.message.contains("sk-wrong-9931") == false)
            let chatty = await failure(try judge(provider, "chatty", baseURL: baseURL))
            #expect(chatty?.code == .badAnswer)
            #expect(chatty?.answer?.contains("I think this request is fine") == true)
        }
    }

    @Test func retryAfterIsReadFromHeadersAndFromGeminisBody() throws {
        let body = Data(
            #"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}}"#
                .utf8)
        #expect(GeminiFormat().errorDetail(body).retryAfter == 2.5)
        #expect(GeminiFormat().errorDetail(body).exhausted == false)
        let daily = Data(
            #"{"error": {"code": 429, "details": [{"violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]}}"#
                .utf8)
        #expect(GeminiFormat().errorDetail(daily).exhausted)
        let credit = Data(
            #"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low"}}"#
                .utf8)
        #expect(AnthropicFormat().errorDetail(credit).exhausted)
        let quota = Data(
            #"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#
                .utf8)
        #expect(OpenAIFormat().errorDetail(quota).exhausted)
    }

    @Test func eachProviderForcesTheLabelInItsOwnWay() throws {
        let request = JudgeRequest(system: "S", user: "U", labels: ["a", "b"])
        let openAI = String(decoding: try OpenAIFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(openAI.contains(#""response_format""#) && openAI.contains(#""strict":true"#))
        #expect(openAI.contains(#""enum":["a","b"]"#))
        let anthropic = String(decoding: try AnthropicFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(anthropic.contains(#""tool_choice":{"#) && anthropic.contains(#""name":"record_label""#))
        #expect(anthropic.contains(#""cache_control":{"type":"ephemeral"}"#))
        #expect(!anthropic.contains("response_format"))
        let gemini = String(decoding: try GeminiFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(gemini.contains(#""responseSchema""#) && gemini.contains(#""type":"STRING""#))
        #expect(
            GeminiFormat().endpoint(baseURL: "https://x/v1beta/", model: "gemini-2.5-pro")
                == "https://x/v1beta/models/gemini-2.5-pro:generateContent")
    }
}

extension ProviderTests {
    @Test(arguments: ["openai", "anthropic"])
    func enforcedLimitsAnswerWithTheProvidersHeaders(provider: String) async throws {
        let limited = MockJudgeConfig.Behaviour(
            model: "enforced", seed: 9, accuracy: 0.9, apiKey: Self.key, requestsPerMinute: 120)
        try await withMockJudges([limited]) { baseURL, _ in
            let judge = try judge(provider, "enforced", baseURL: baseURL)
            // A bucket of two (one second's worth): two answers that say what is left, then a 429.
            let first = try await classify(judge)
            #expect(first.rateLimit?.remainingRequests == 1, "\(String(describing: first.rateLimit))")
            let second = try await classify(judge)
            #expect(second.rateLimit?.remainingRequests == 0)
            // Anthropic writes its resets to the second, so the wait read can round to 0.
            #expect((second.rateLimit?.requestsResetSeconds ?? -1) >= 0)
            let refused = await failure(judge)
            #expect(refused?.code == .rateLimited)
            #expect((refused?.retryAfter ?? 0) > 0 && (refused?.retryAfter ?? 9) <= 1)
        }
    }
}
