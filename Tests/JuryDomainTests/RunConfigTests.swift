import Foundation
import JuryDomain
import JuryTestSupport
import Testing

@Suite("Run configs")
struct RunConfigTests {
    let valid = runYAML(models: ["a", "b", "c", "d"], baseURL: "http://127.0.0.1:8089/v1")

    @Test func theShippedConfigsAreValid() throws {
        for name in ["deploy/demo/run.yaml", "deploy/demo/four-providers.yaml"] {
            let config = try RunConfig.parse(
                yaml: try String(contentsOfFile: repositoryRoot.appendingPathComponent(name).path, encoding: .utf8),
                file: name)
            #expect(config.judges.count == 4)
            #expect(config.rule == .unanimous)
        }
        let providersFile = repositoryRoot.appendingPathComponent("deploy/demo/four-providers.yaml").path
        let providers = try RunConfig.parse(
            yaml: try String(contentsOfFile: providersFile, encoding: .utf8), file: providersFile)
        #expect(providers.judges[0].baseURL == "https://api.openai.com/v1")
        #expect(providers.judges[1].apiKeyEnv == "ANTHROPIC_API_KEY")
    }

    @Test func aValidConfigParses() throws {
        let config = try RunConfig.parse(yaml: valid, file: "run.yaml")
        #expect(config.labels.count == 5)
        #expect(config.maxAttempts == 3)
        #expect(config.rule.votesNeeded(panel: 4) == 4)
    }

    @Test(arguments: [
        ("judges:", "judges:\n  - { name: x }\nignored:", "run.yaml: ignored: unknown key"),
        ("max_attempts: 3", "max_attempt: 3", "max_attempt: unknown key"),
        ("rule: unanimous", "rule: plurality", "consensus.rule: 'plurality' is not one of"),
        ("rule: unanimous", "rule: weighted", "consensus.weights: are missing for rule: weighted"),
        ("rule: unanimous", "rule: unanimous\n  min_votes: 9", "consensus.min_votes: 9 is outside 1...4"),
        ("rule: unanimous", "rule: dawid-skene\n  threshold: 1.5", "consensus.threshold: 1.5 must be between 0 and 1"),
        ("rule: unanimous", "rule: quorum\n  quorum: 2", "consensus.quorum: 2 must be more than half"),
        ("model: b,", "model: b, api_key: sk-123,", "judges[1].api_key: API keys never go in the config"),
        ("- { label: wrong_skill,", "- { label: valid,", "taxonomy[3].label: 'valid' appears twice"),
        ("name: j2,", "name: j1,", "judges[1].name: 'j1' appears twice"),
        (
            "provider: openai-compatible, model: c", "provider: openia, model: c",
            "judges[2].provider: 'openia' is not one of"
        ),
        (
            "base_url: \"http://127.0.0.1:8089/v1\" }\n  - { name: j4", "base_url: \"ftp://x\" }\n  - { name: j4",
            "judges[2].base_url"
        ),
        ("user: \"Request: {{request}}\"", "user: \"{{#open}}\"", "prompt.user: is not a valid Mustache template"),
        ("max_attempts: 3", "max_attempts: many", "max_attempts: expected a whole number"),
        ("max_attempts: 3", "max_attempts: 3\nbudget_usd: 0", "budget_usd: must be more than 0"),
        (
            "model: b,", "model: b, price: { input_per_million: -1, output_per_million: 2 },",
            "judges[1].price.input_per_million: must be a price in USD"
        ),
        (
            "model: b,", "model: b, price: { input_per_million: 1, output: 2 },",
            "judges[1].price.output: unknown key"
        ),
        (
            "model: b,", "model: b, parameters: { messages: [] },",
            "judges[1].parameters.messages: is set by Jury"
        ),
        (
            "model: b,", "model: b, parameters: { response_format: { type: text } },",
            "judges[1].parameters.response_format: is set by Jury"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: anthropic, model: b, parameters: { output_config: { format: { type: json_schema } } },",
            "judges[1].parameters.output_config.format: is set by Jury"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: gemini, model: b, parameters: { generationConfig: { responseSchema: {} } },",
            "judges[1].parameters.generationConfig.responseSchema: is set by Jury"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: gemini, model: b, parameters: { generation_config: { temperature: 0 } },",
            "judges[1].parameters.generation_config: write generationConfig"
        ),
        ("model: b,", "model: b, parameters: 3,", "judges[1].parameters: expected a mapping"),
        ("model: b,", "model: b, force_label: tool,", "judges[1].force_label: tool is for provider anthropic only"),
        (
            "provider: openai-compatible, model: b,",
            "provider: anthropic, model: b, force_label: tool, parameters: { thinking: { type: adaptive } },",
            "judges[1].force_label: tool forces a tool call"
        ),
        ("model: b,", "model: b, force_label: json,", "judges[1].force_label"),
        (
            "model: b,", "model: b, anthropic_version: 2026-10-21,",
            "judges[1].anthropic_version: is for provider anthropic"
        ),
        (
            "model: b,",
            "model: b, price: { input_per_million: 1, output_per_million: 2, cache_write_per_million: -3 },",
            "judges[1].price.cache_write_per_million: must be a price in USD"
        ),
        ("model: b,", "model: b, mode: batch,", "judges[1].mode: batch is for provider openai"),
        ("model: b,", "model: b, mode: later,", "judges[1].mode"),
        ("model: b,", "model: b, batch: { max_requests: 10 },", "judges[1].batch: is for mode: batch"),
        (
            "provider: openai-compatible, model: b,",
            "provider: openai, model: b, mode: batch, batch: { max_requests: 0 },",
            "judges[1].batch.max_requests: 0 is outside 1...50000"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: openai, model: b, mode: batch, batch: { window: 24h },",
            "judges[1].batch.window: unknown key"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: openai, model: b, mode: batch, batch: { completion_window: 1h },",
            "judges[1].batch.completion_window: '1h' is not one the providers take"
        ),
        (
            "provider: openai-compatible, model: b,",
            "provider: openai, model: b, mode: batch, price: { input_per_million: 1, output_per_million: 2, batch_discount: 0 },",
            "judges[1].price.batch_discount: must be above 0 and at most 1"
        ),
    ])
    func invalidConfigsNameTheField(replacing: String, with replacement: String, message: String) throws {
        let yaml = valid.replacingOccurrences(of: replacing, with: replacement)
        #expect(yaml != valid, "the test's replacement did not apply")
        let error = #expect(throws: JuryError.self) { try RunConfig.parse(yaml: yaml, file: "run.yaml") }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }

    @Test func missingSectionsAreNamed() {
        let error = #expect(throws: JuryError.self) {
            try RunConfig.parse(yaml: "name: x\ntaxonomy: []\n", file: "run.yaml")
        }
        #expect(error?.message.contains("judges: is missing") == true, "\(error?.message ?? "")")
    }

    @Test func promptsRenderExampleFieldsAndTheTaxonomyWithoutEscaping() throws {
        let config = try RunConfig.parse(yaml: valid, file: "run.yaml")
        let request = try PromptRenderer(config: config).render(
            id: "1", payload: .object(["request": .string("Customers <from> \"Paris\" & Lyon")]))
        #expect(request.user == "Request: Customers <from> \"Paris\" & Lyon")
        #expect(request.system.contains("needs_more_context"))
        #expect(request.labels == config.labels)
    }

    @Test func aBatchJudgeKeepsItsSettingsAndPaysTheBatchPrice() throws {
        let yaml = valid.replacingOccurrences(
            of: "provider: openai-compatible, model: b,",
            with: "provider: openai, model: b, mode: batch, batch: { max_requests: 100 }, "
                + "price: { input_per_million: 2, output_per_million: 8 },")
        let config = try RunConfig.parse(yaml: yaml, file: "run.yaml")
        let judge = try #require(config.judge(named: "j2"))
        #expect(judge.mode == JudgeMode.batch)
        #expect(judge.batchSettings == BatchSettings(maxRequests: 100, gatherSeconds: 300, completionWindow: "24h"))
        let stored = try JSONDecoder().decode(RunConfig.self, from: JSONEncoder().encode(config))
        #expect(stored == config)
        let answer = JudgeAnswer(label: "valid", rationale: nil, promptTokens: 1_000_000, completionTokens: 1_000_000)
        #expect(judge.cost(of: answer) == 10)
        #expect(judge.cost(of: answer, batched: true) == 5)
        // Online judges store no mode: configs written before batch mode read the same.
        #expect(!String(decoding: try JSONEncoder().encode(config.judges[0]), as: UTF8.self).contains(#""mode""#))
    }
}

@Suite("Prices")
struct PriceTests {
    @Test func aVoteCostsItsFreshCachedAndOutputTokensAtTheirPrices() {
        let price = JudgeConfig.Price(inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3)
        let answer = JudgeAnswer(
            label: "valid", rationale: nil, promptTokens: 1_000_000, completionTokens: 100_000, cachedTokens: 400_000)
        // 600k fresh at $3, 400k cached at $0.30, 100k output at $15.
        #expect(abs((price.cost(of: answer) ?? 0) - (1.8 + 0.12 + 1.5)) < 1e-9)
        let uncachedPrice = JudgeConfig.Price(inputPerMillion: 3, outputPerMillion: 15)
        #expect(abs((uncachedPrice.cost(of: answer) ?? 0) - (3 + 1.5)) < 1e-9)
        #expect(price.cost(of: JudgeAnswer(label: "valid", rationale: nil)) == nil)
    }
}

extension PriceTests {
    @Test func thinkingIsOutputAndCacheWritesCostTheirPremium() throws {
        // Anthropic: 1M input of which 200k read from the cache and 100k written to it; 50k
        // output of which 40k thinking (already inside the output, as Anthropic counts it).
        let answer = JudgeAnswer(
            label: "valid", rationale: nil, promptTokens: 1_000_000, completionTokens: 50_000,
            cachedTokens: 200_000, cacheWriteTokens: 100_000, thinkingTokens: 40_000)
        let price = JudgeConfig.Price(inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3)
        var judge = JudgeConfig(name: "c", provider: "anthropic", model: "m", baseURL: "http://x")
        judge.price = price
        // 700k fresh at $3, 200k read at $0.30, 100k written at 1.25 x $3, 50k output at $15.
        #expect(abs((judge.cost(of: answer) ?? 0) - (2.1 + 0.06 + 0.375 + 0.75)) < 1e-9)
        judge.price?.cacheWritePerMillion = 6
        #expect(abs((judge.cost(of: answer) ?? 0) - (2.1 + 0.06 + 0.6 + 0.75)) < 1e-9)
        // Other providers bill a cache write as input unless a price says otherwise.
        var other = JudgeConfig(name: "o", provider: "openai", model: "m", baseURL: "http://x")
        other.price = price
        #expect(abs((other.cost(of: answer) ?? 0) - (2.1 + 0.06 + 0.3 + 0.75)) < 1e-9)
    }

    @Test func parametersSurviveTheStoredConfig() throws {
        let yaml = runYAML(models: ["a"], baseURL: "http://127.0.0.1:1/v1", providers: ["anthropic"])
            .replacingOccurrences(
                of: "model: a,",
                with:
                    "model: a, anthropic_version: 2023-06-01, force_label: tool, parameters: { max_tokens: 4000, metadata: { user_id: u } },"
            )
        let config = try RunConfig.parse(yaml: yaml, file: "run.yaml")
        let stored = try JSONDecoder().decode(RunConfig.self, from: try JSONEncoder().encode(config))
        #expect(stored == config)
        #expect(stored.judges[0].parameters["max_tokens"] == 4000)
        #expect(stored.judges[0].forceLabel == .tool && stored.judges[0].anthropicVersion == "2023-06-01")
    }
}
