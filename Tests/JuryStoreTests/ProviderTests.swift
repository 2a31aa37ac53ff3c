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

    @Test func eachProviderForcesTheLabelInItsOwnWayAndSendsNoSamplingParameter() throws {
        let request = JudgeRequest(system: "S", user: "U", labels: ["a", "b"])
        let openAI = String(decoding: try OpenAIFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(openAI.contains(#""response_format""#) && openAI.contains(#""strict":true"#))
        #expect(openAI.contains(#""enum":["a","b"]"#))
        let anthropic = String(decoding: try AnthropicFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(anthropic.contains(#""output_config":{"format":{"schema":"#))
        #expect(anthropic.contains(#""additionalProperties":false"#) && !anthropic.contains("tool_choice"))
        #expect(anthropic.contains(#""cache_control":{"type":"ephemeral"}"#) && anthropic.contains(#""max_tokens":1024"#))
        let byTool = String(
            decoding: try AnthropicFormat(forceLabel: .tool).body(for: request, model: "m"), as: UTF8.self)
        #expect(byTool.contains(#""tool_choice":{"#) && byTool.contains(#""name":"record_label""#))
        #expect(!byTool.contains("output_config"))
        let gemini = String(decoding: try GeminiFormat().body(for: request, model: "m"), as: UTF8.self)
        #expect(gemini.contains(#""responseSchema""#) && gemini.contains(#""type":"STRING""#))
        for body in [openAI, anthropic, byTool, gemini] {
            for sampling in ["temperature", "top_p", "top_k", "topP", "topK"] { #expect(!body.contains(sampling)) }
        }
        #expect(
            GeminiFormat().endpoint(baseURL: "https://x/v1beta/", model: "gemini-2.5-pro")
                == "https://x/v1beta/models/gemini-2.5-pro:generateContent")
        #expect(AnthropicFormat().headers(apiKey: nil).first?.1 == AnthropicFormat.currentVersion)
        #expect(AnthropicFormat(version: "2023-06-01").headers(apiKey: nil).first?.1 == "2023-06-01")
    }

    @Test func parametersAreLaidOverTheBodyJuryBuilds() throws {
        let request = JudgeRequest(system: "S", user: "U", labels: ["a", "b"])
        func body(_ format: some ProviderFormat) throws -> JSONValue {
            try JSONValue.parse(try format.body(for: request, model: "m"))
        }
        let openAI = try body(
            OpenAIFormat(parameters: ["reasoning_effort": "low", "max_completion_tokens": 4000, "seed": 7]))
        #expect(openAI["reasoning_effort"] == "low" && openAI["max_completion_tokens"] == .integer(4000))
        #expect(openAI["response_format", "type"] == "json_schema")
        let anthropic = try body(
            AnthropicFormat(parameters: [
                "max_tokens": 16000, "thinking": ["type": "enabled", "budget_tokens": 8000],
                "output_config": ["effort": "medium"],
            ]))
        // The effort sits beside the format Jury forces the label with; max_tokens replaces Jury's default.
        #expect(anthropic["output_config", "effort"] == "medium" && anthropic["output_config", "format", "type"] != nil)
        #expect(anthropic["max_tokens"] == .integer(16000) && anthropic["thinking", "budget_tokens"] == .integer(8000))
        let gemini = try body(
            GeminiFormat(parameters: ["generationConfig": ["thinkingConfig": ["thinkingBudget": 512], "maxOutputTokens": 900]]))
        #expect(gemini["generationConfig", "thinkingConfig", "thinkingBudget"] == .integer(512))
        #expect(gemini["generationConfig", "maxOutputTokens"] == .integer(900))
        #expect(gemini["generationConfig", "responseSchema", "type"] == "OBJECT")
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

extension ProviderTests {
    /// Mock judges that behave as today's models do: a generation-5 Claude, an OpenAI reasoning
    /// model and a Gemini that thinks, each reporting 300 thinking tokens.
    static let thinkers = [
        MockJudgeConfig.Behaviour(model: "claude-opus-5", seed: 11, accuracy: 1, apiKey: key, thinkingTokens: 300),
        MockJudgeConfig.Behaviour(model: "gpt-5-mini", seed: 12, accuracy: 1, apiKey: key, thinkingTokens: 300),
        MockJudgeConfig.Behaviour(model: "gemini-2.5-pro", seed: 13, accuracy: 1, apiKey: key, thinkingTokens: 300),
        MockJudgeConfig.Behaviour(
            model: "shy", seed: 14, accuracy: 1, apiKey: key, faults: .init(refusalRate: 1)),
    ]

    func judge(
        _ provider: String, _ model: String, baseURL: String, parameters: [String: JSONValue],
        anthropicVersion: String? = nil, forceLabel: JudgeConfig.ForceLabel? = nil
    ) throws -> HTTPJudge {
        let base = provider == "gemini" ? baseURL.replacingOccurrences(of: "/v1", with: "/v1beta") : baseURL
        let config = JudgeConfig(
            name: model, provider: provider, model: model, baseURL: base, apiKeyEnv: "K", parameters: parameters,
            anthropicVersion: anthropicVersion, forceLabel: forceLabel)
        return try HTTPJudge(config: config, client: testHTTPClient, environment: ["K": Self.key])
    }

    @Test func todaysModelsAnswerWhatJurySendsAndRefuseSamplingParameters() async throws {
        try await withMockJudges(Self.thinkers) { baseURL, _ in
            // As Jury sends them: no sampling parameter, the label forced the current way.
            for (provider, model) in [("anthropic", "claude-opus-5"), ("openai", "gpt-5-mini"), ("gemini", "gemini-2.5-pro")] {
                let answer = try await classify(try judge(provider, model, baseURL: baseURL, parameters: [:]))
                #expect(answer.thinkingTokens == 300, "\(provider)")
                // Thinking is billed as output, whichever way the provider counts it.
                #expect(answer.completionTokens == 316, "\(provider)")
            }
            // A temperature, even on the old API version, for a generation-5 Claude: refused, and said why.
            let old = await failure(
                try judge("anthropic", "claude-opus-5", baseURL: baseURL, parameters: ["temperature": 0],
                    anthropicVersion: "2023-06-01"))
            #expect(old?.code == .badRequest && old?.message.contains("temperature") == true)
            let reasoning = await failure(
                try judge("openai", "gpt-5-mini", baseURL: baseURL, parameters: ["temperature": 0]))
            #expect(reasoning?.code == .badRequest && reasoning?.message.contains("temperature") == true)
            // What the user set and the model takes goes through.
            let effort = try await classify(
                try judge("openai", "gpt-5-mini", baseURL: baseURL, parameters: ["reasoning_effort": "low", "temperature": 1]))
            #expect(effort.label == "ambiguous")
            let byTool = try await classify(
                try judge("anthropic", "claude-opus-5", baseURL: baseURL, parameters: [:], forceLabel: .tool))
            #expect(byTool.label == "ambiguous" && byTool.thinkingTokens == 300)
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func aModelThatDeclinesIsARefusalNotAnUnreadableAnswer(provider: String) async throws {
        try await withMockJudges(Self.thinkers) { baseURL, _ in
            let refused = await failure(try judge(provider, "shy", baseURL: baseURL, parameters: [:]))
            #expect(refused?.code == .refused, "\(String(describing: refused))")
            #expect(refused?.message.contains("declined to label") == true)
        }
    }
}
