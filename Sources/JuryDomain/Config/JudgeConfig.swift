/// One judge of the panel.
public struct JudgeConfig: Codable, Sendable, Equatable {
    /// The judge's name in votes, status and exports; unique within the run.
    public var name: String
    /// `openai` or `openai-compatible` (Chat Completions), `anthropic` (Messages) or `gemini`
    /// (`generateContent`): each is called in its own API, at `baseURL`.
    public var provider: String
    public var model: String
    public var baseURL: String
    /// The environment variable that holds the API key, read by the worker that calls. Never the key itself.
    public var apiKeyEnv: String?
    /// Most calls in flight to this judge from one worker process.
    public var concurrency: Int
    public var timeoutSeconds: Double
    /// The provider's request limit for this judge's account, held across all workers; nil for none.
    public var requestsPerMinute: Int?
    /// The provider's token limit (input and output) for this judge's account; nil for none.
    public var tokensPerMinute: Int?
    /// The account whose limits this judge shares: every run and judge with the same key share
    /// one budget of requests and tokens. Default: the provider and the API key variable.
    public var limitKey: String
    /// What the provider charges, to count each vote's cost; nil counts none.
    public var price: Price?
    /// When the judge is asked: on each example, judges of a higher order are asked only once
    /// every judge of a lower order has answered (or failed), so the cheap ones can go first and
    /// early decision can spare the rest. Default 1: every judge at once.
    public var order: Int
    /// Merged into the provider's request body as they are (`reasoning_effort`, `max_tokens`,
    /// `thinking`, `generationConfig.thinkingConfig`, a `temperature` where the model takes one).
    /// Jury sends no sampling parameter of its own; the keys it owns are refused (`ownedParameters`).
    public var parameters: [String: JSONValue]
    /// Anthropic only: the `anthropic-version` header; nil for the current one.
    public var anthropicVersion: String?
    /// How the label is forced; nil for the provider's current way (`structuredOutput`).
    public var forceLabel: ForceLabel?
    /// Online calls, or the provider's batch API.
    public var mode: JudgeMode
    /// A batch-mode judge's batches; nil for the defaults (`BatchSettings.standard`).
    public var batch: BatchSettings?

    /// The batch settings in force.
    public var batchSettings: BatchSettings { batch ?? .standard }

    /// How a judge is made to answer with one label of the taxonomy.
    public enum ForceLabel: String, Codable, Sendable, CaseIterable {
        /// The provider's structured output: a JSON schema whose `label` is an enum. Works with
        /// thinking on.
        case structuredOutput = "structured_output"
        /// Anthropic only: a tool whose input is the label, required through `tool_choice`, for
        /// models and API versions without structured output. Thinking cannot be on with it.
        case tool
    }

    /// USD per million tokens.
    public struct Price: Codable, Sendable, Equatable {
        public var inputPerMillion: Double
        /// Every output token, thinking and reasoning included: providers bill them as output.
        public var outputPerMillion: Double
        /// Input read from the provider's prompt cache; the input price when left out.
        public var cachedInputPerMillion: Double?
        /// Input written to the prompt cache (Anthropic bills a premium); when left out, 1.25x
        /// the input price for Anthropic and the input price for the others.
        public var cacheWritePerMillion: Double?
        /// What a batch costs against the same calls online: the providers bill batches at half.
        /// Nil for 0.5.
        public var batchDiscount: Double?

        enum CodingKeys: String, CodingKey {
            case inputPerMillion = "input_per_million"
            case outputPerMillion = "output_per_million"
            case cachedInputPerMillion = "cached_input_per_million"
            case cacheWritePerMillion = "cache_write_per_million"
            case batchDiscount = "batch_discount"
        }

        public init(
            inputPerMillion: Double, outputPerMillion: Double, cachedInputPerMillion: Double? = nil,
            cacheWritePerMillion: Double? = nil, batchDiscount: Double? = nil
        ) {
            self.batchDiscount = batchDiscount
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
            self.cachedInputPerMillion = cachedInputPerMillion
            self.cacheWritePerMillion = cacheWritePerMillion
        }

        /// What an answer cost as the provider bills it, from the tokens it reports; nil when it
        /// reports none. `cacheWritePremium` applies when `cacheWritePerMillion` is left out.
        public func cost(of answer: JudgeAnswer, cacheWritePremium: Double = 1) -> Double? {
            guard answer.promptTokens != nil || answer.completionTokens != nil else { return nil }
            let cached = Double(answer.cachedTokens ?? 0)
            let written = Double(answer.cacheWriteTokens ?? 0)
            let fresh = max(0, Double(answer.promptTokens ?? 0) - cached - written)
            let output = Double(answer.completionTokens ?? 0)
            return
                (fresh * inputPerMillion + cached * (cachedInputPerMillion ?? inputPerMillion)
                + written * (cacheWritePerMillion ?? inputPerMillion * cacheWritePremium)
                + output * outputPerMillion) / 1_000_000
        }
    }

    /// What an answer cost under this judge's price, online or through a batch; nil without a price.
    public func cost(of answer: JudgeAnswer, batched: Bool = false) -> Double? {
        let online = price?.cost(of: answer, cacheWritePremium: provider == "anthropic" ? 1.25 : 1)
        guard batched else { return online }
        return online.map { $0 * (price?.batchDiscount ?? 0.5) }
    }

    enum CodingKeys: String, CodingKey {
        case name, provider, model
        case baseURL = "base_url"
        case apiKeyEnv = "api_key_env"
        case concurrency
        case timeoutSeconds = "timeout_seconds"
        case requestsPerMinute = "requests_per_minute"
        case tokensPerMinute = "tokens_per_minute"
        case limitKey = "limit_key"
        case price, order, parameters
        case anthropicVersion = "anthropic_version"
        case forceLabel = "force_label"
        case mode, batch
    }

    public init(
        name: String, provider: String, model: String, baseURL: String, apiKeyEnv: String? = nil,
        concurrency: Int = RunConfig.Defaults.judgeConcurrency,
        timeoutSeconds: Double = RunConfig.Defaults.judgeTimeoutSeconds, requestsPerMinute: Int? = nil,
        tokensPerMinute: Int? = nil, limitKey: String? = nil, order: Int = 1, parameters: [String: JSONValue] = [:],
        anthropicVersion: String? = nil, forceLabel: ForceLabel? = nil, mode: JudgeMode = .online,
        batch: BatchSettings? = nil
    ) {
        self.mode = mode
        self.batch = batch
        self.order = order
        self.name = name
        self.provider = provider
        self.model = model
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.concurrency = concurrency
        self.timeoutSeconds = timeoutSeconds
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.limitKey = limitKey ?? Self.defaultLimitKey(provider: provider, apiKeyEnv: apiKeyEnv, baseURL: baseURL)
        self.parameters = parameters
        self.anthropicVersion = anthropicVersion
        self.forceLabel = forceLabel
    }

    /// One budget per provider and key; a server without a key is its own account.
    static func defaultLimitKey(provider: String, apiKeyEnv: String?, baseURL: String) -> String {
        "\(provider):\(apiKeyEnv ?? baseURL)"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        provider = try container.decode(String.self, forKey: .provider)
        model = try container.decode(String.self, forKey: .model)
        let defaults = JudgeConfig.providerDefaults[provider]
        baseURL = try container.decodeIfPresent(String.self, forKey: .baseURL) ?? defaults?.baseURL ?? ""
        apiKeyEnv = try container.decodeIfPresent(String.self, forKey: .apiKeyEnv) ?? defaults?.apiKeyEnv
        concurrency =
            try container.decodeIfPresent(Int.self, forKey: .concurrency) ?? RunConfig.Defaults.judgeConcurrency
        timeoutSeconds =
            try container.decodeIfPresent(Double.self, forKey: .timeoutSeconds)
            ?? RunConfig.Defaults.judgeTimeoutSeconds
        requestsPerMinute = try container.decodeIfPresent(Int.self, forKey: .requestsPerMinute)
        tokensPerMinute = try container.decodeIfPresent(Int.self, forKey: .tokensPerMinute)
        limitKey =
            try container.decodeIfPresent(String.self, forKey: .limitKey)
            ?? Self.defaultLimitKey(provider: provider, apiKeyEnv: apiKeyEnv, baseURL: baseURL)
        price = try container.decodeIfPresent(Price.self, forKey: .price)
        order = try container.decodeIfPresent(Int.self, forKey: .order) ?? 1
        parameters = try container.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
        anthropicVersion = try container.decodeIfPresent(String.self, forKey: .anthropicVersion)
        forceLabel = try container.decodeIfPresent(ForceLabel.self, forKey: .forceLabel)
        mode = try container.decodeIfPresent(JudgeMode.self, forKey: .mode) ?? .online
        batch = try container.decodeIfPresent(BatchSettings.self, forKey: .batch)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(provider, forKey: .provider)
        try container.encode(model, forKey: .model)
        try container.encode(baseURL, forKey: .baseURL)
        try container.encodeIfPresent(apiKeyEnv, forKey: .apiKeyEnv)
        try container.encode(concurrency, forKey: .concurrency)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encodeIfPresent(requestsPerMinute, forKey: .requestsPerMinute)
        try container.encodeIfPresent(tokensPerMinute, forKey: .tokensPerMinute)
        try container.encode(limitKey, forKey: .limitKey)
        try container.encodeIfPresent(price, forKey: .price)
        try container.encode(order, forKey: .order)
        // Left out when empty, so that configs stored before parameters existed read the same.
        if !parameters.isEmpty { try container.encode(parameters, forKey: .parameters) }
        try container.encodeIfPresent(anthropicVersion, forKey: .anthropicVersion)
        try container.encodeIfPresent(forceLabel, forKey: .forceLabel)
        // Online is left out, so that configs stored before batch mode existed read the same.
        if mode != .online { try container.encode(mode, forKey: .mode) }
        try container.encodeIfPresent(batch, forKey: .batch)
    }

    /// Where each provider serves its API, and the usual name of its key.
    static let providerDefaults: [String: (baseURL: String, apiKeyEnv: String)] = [
        "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
        "anthropic": ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
        "gemini": ("https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
    ]
    static let providers = ["openai", "anthropic", "gemini", "openai-compatible"]

    /// The request keys Jury writes itself for each provider, as paths (`output_config.format`):
    /// the messages, the system prompt, the schema that forces the label, tools and streaming.
    /// A judge's `parameters` may not set them. Gemini's REST API also reads snake_case names,
    /// so both spellings are Jury's.
    public static func ownedParameters(provider: String) -> [String] {
        switch provider {
        case "anthropic":
            return ["model", "messages", "system", "tools", "tool_choice", "stream", "output_config.format"]
        case "gemini":
            return [
                "model", "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
                "cachedContent", "cached_content",
            ]
                + ["generationConfig", "generation_config"].flatMap { config in
                    [
                        "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema",
                        "responseMimeType", "response_mime_type", "candidateCount", "candidate_count",
                    ].map { "\(config).\($0)" }
                }
        default:
            return [
                "model", "messages", "response_format", "tools", "tool_choice", "functions", "function_call", "stream",
                "stream_options", "n",
            ]
        }
    }

    /// The first key of `parameters` that Jury owns, as a dotted path; nil when there is none.
    public var ownedParameter: String? {
        Self.ownedParameters(provider: provider).first { path in
            var value: JSONValue? = .object(parameters)
            for key in path.split(separator: ".") { value = value?[String(key)] }
            return value != nil
        }
    }
}

extension JudgeConfig {
    /// Checks what shapes the judge's request: its parameters, API version and way of forcing the label.
    func validateRequestSettings(field: String, fail: (String, String) -> JuryError) throws {
        if let owned = ownedParameter {
            throw fail(
                "\(field).parameters.\(owned)",
                "is set by Jury (the messages, the system prompt, the schema that forces the label, tools and streaming are Jury's); remove it"
            )
        }
        if provider == "gemini", parameters["generation_config"] != nil {
            throw fail(
                "\(field).parameters.generation_config",
                "write generationConfig, as Jury does: the two spellings would be sent side by side")
        }
        if let version = anthropicVersion {
            guard provider == "anthropic" else {
                throw fail("\(field).anthropic_version", "is for provider anthropic only")
            }
            guard (try? /[0-9]{4}-[0-9]{2}-[0-9]{2}/.wholeMatch(in: version)) != nil else {
                throw fail("\(field).anthropic_version", "'\(version)' is not an API version such as 2023-06-01")
            }
        }
        if forceLabel == .tool {
            guard provider == "anthropic" else {
                throw fail("\(field).force_label", "tool is for provider anthropic only; the others use structured_output")
            }
            if let thinking = parameters["thinking"]?["type"]?.text, thinking != "disabled" {
                throw fail(
                    "\(field).force_label",
                    "tool forces a tool call, which Anthropic refuses with thinking on (parameters.thinking.type: \(thinking)); use structured_output"
                )
            }
        }
    }
}
