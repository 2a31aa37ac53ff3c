import Foundation
import Mustache
import Yams

/// A run as its YAML file describes it: what to label, with which judges, under which rule.
///
/// It is stored in `runs.config` as JSON so that every process on every machine sees the same run.
public struct RunConfig: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var taxonomy: [Label]
    public var judges: [JudgeConfig]
    public var prompt: Prompt
    public var consensus: ConsensusRule
    /// Wrong answers per job (unparseable, outside the taxonomy, a refused request) before it fails for good.
    public var maxAttempts: Int
    public var retry: RetryPolicy
    /// Most the run may spend, in USD, by its judges' prices; workers stop claiming its jobs after.
    public var budgetUSD: Double?

    public struct Label: Codable, Sendable, Equatable {
        public var label: String
        public var description: String
        /// What the label means for the request: `accept` (carry it out), `refuse`, or `clarify`
        /// (ask the user for what is missing or ambiguous). Default: the first label accepts, the others refuse.
        public var kind: Kind?
        /// Mustache template of the reply a fine-tuned model should give (`jury export --format chat`);
        /// sees the example's fields. Refusing and clarifying labels need one to be exported as chat.
        public var reply: String?

        public enum Kind: String, Codable, Sendable, CaseIterable {
            case accept, refuse, clarify
        }

        public init(label: String, description: String, kind: Kind? = nil, reply: String? = nil) {
            self.label = label
            self.description = description
            self.kind = kind
            self.reply = reply
        }
    }

    /// How `jury export --format chat` writes an example as a fine-tuning conversation.
    public struct Training: Codable, Sendable, Equatable {
        /// Mustache template of the system message; none when left out.
        public var system: String?
        /// Mustache template of the user's message; sees the example's fields.
        public var user: String
        /// Mustache template of the reply for labels that accept (the production answer, say);
        /// without it, accepted examples are left out of a chat export (logs already hold them).
        public var assistant: String?
    }

    /// How `jury export --format chat` builds conversations; nil: chat export is not configured.
    public var training: Training?

    public struct Prompt: Codable, Sendable, Equatable {
        /// Mustache template of the system message; sees `taxonomy` (label, description) and `labels`.
        public var system: String
        /// Mustache template of the user message; sees the example's fields, `id`, and the above.
        public var user: String
    }

    /// How failed calls are retried. Failures that waiting cures (429, 5xx, timeouts, dropped
    /// connections) retry with capped exponential backoff until `giveUpAfterSeconds` have passed
    /// since the first of them; they do not use up `max_attempts`, which counts wrong answers.
    public struct RetryPolicy: Codable, Sendable, Equatable {
        public var baseDelaySeconds: Double
        public var maxDelaySeconds: Double
        /// How long a job keeps retrying an outage before it fails for good.
        public var giveUpAfterSeconds: Double
        /// The longest Retry-After honoured; a provider asking for more waits this long, and it is reported.
        public var maxRetryAfterSeconds: Double

        enum CodingKeys: String, CodingKey {
            case baseDelaySeconds = "base_delay_seconds"
            case maxDelaySeconds = "max_delay_seconds"
            case giveUpAfterSeconds = "give_up_after_seconds"
            case maxRetryAfterSeconds = "max_retry_after_seconds"
        }

        public init(
            baseDelaySeconds: Double, maxDelaySeconds: Double, giveUpAfterSeconds: Double = 6 * 3600,
            maxRetryAfterSeconds: Double = 600
        ) {
            self.baseDelaySeconds = baseDelaySeconds
            self.maxDelaySeconds = maxDelaySeconds
            self.giveUpAfterSeconds = giveUpAfterSeconds
            self.maxRetryAfterSeconds = maxRetryAfterSeconds
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let standard = RetryPolicy.standard
            baseDelaySeconds =
                try container.decodeIfPresent(Double.self, forKey: .baseDelaySeconds) ?? standard.baseDelaySeconds
            maxDelaySeconds =
                try container.decodeIfPresent(Double.self, forKey: .maxDelaySeconds) ?? standard.maxDelaySeconds
            giveUpAfterSeconds =
                try container.decodeIfPresent(Double.self, forKey: .giveUpAfterSeconds) ?? standard.giveUpAfterSeconds
            maxRetryAfterSeconds =
                try container.decodeIfPresent(Double.self, forKey: .maxRetryAfterSeconds)
                ?? standard.maxRetryAfterSeconds
        }

        public static let standard = RetryPolicy(baseDelaySeconds: 1, maxDelaySeconds: 60)
    }

    enum CodingKeys: String, CodingKey {
        case name, description, taxonomy, judges, prompt, consensus, training
        case maxAttempts = "max_attempts"
        case retry
        case budgetUSD = "budget_usd"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        taxonomy = try container.decode([Label].self, forKey: .taxonomy)
        judges = try container.decode([JudgeConfig].self, forKey: .judges)
        prompt = try container.decode(Prompt.self, forKey: .prompt)
        consensus = try container.decodeIfPresent(ConsensusRule.self, forKey: .consensus) ?? .unanimous
        training = try container.decodeIfPresent(Training.self, forKey: .training)
        maxAttempts = try container.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? Defaults.maxAttempts
        retry = try container.decodeIfPresent(RetryPolicy.self, forKey: .retry) ?? .standard
        budgetUSD = try container.decodeIfPresent(Double.self, forKey: .budgetUSD)
    }

    /// The values a config gets for what it leaves out: defined here only.
    public enum Defaults {
        public static let maxAttempts = 5
        public static let judgeConcurrency = 64
        public static let judgeTimeoutSeconds: Double = 120
    }

    public var labels: [String] { taxonomy.map(\.label) }

    /// The judge of the panel with this name.
    public func judge(named name: String) -> JudgeConfig? {
        judges.first { $0.name == name }
    }

    /// The consensus rule this run applies.
    public var rule: ConsensusRule { consensus }

    /// The judges' names, in the config's order: the panel.
    public var panel: [String] { judges.map(\.name) }

    /// What each label means for the request; the first label accepts unless told otherwise.
    public func kind(of label: String) -> Label.Kind? {
        guard let index = taxonomy.firstIndex(where: { $0.label == label }) else { return nil }
        return taxonomy[index].kind ?? (index == 0 ? .accept : .refuse)
    }

    /// The labels whose kind is `accept`.
    public var acceptingLabels: Set<String> { Set(labels.filter { kind(of: $0) == .accept }) }
}

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

    /// USD per million tokens.
    public struct Price: Codable, Sendable, Equatable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double
        /// Input read from the provider's prompt cache; the input price when left out.
        public var cachedInputPerMillion: Double?

        enum CodingKeys: String, CodingKey {
            case inputPerMillion = "input_per_million"
            case outputPerMillion = "output_per_million"
            case cachedInputPerMillion = "cached_input_per_million"
        }

        public init(inputPerMillion: Double, outputPerMillion: Double, cachedInputPerMillion: Double? = nil) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
            self.cachedInputPerMillion = cachedInputPerMillion
        }

        /// What an answer cost, from the tokens it reports; nil when it reports none.
        public func cost(of answer: JudgeAnswer) -> Double? {
            guard answer.promptTokens != nil || answer.completionTokens != nil else { return nil }
            let cached = Double(answer.cachedTokens ?? 0)
            let fresh = max(0, Double(answer.promptTokens ?? 0) - cached)
            let output = Double(answer.completionTokens ?? 0)
            return
                (fresh * inputPerMillion + cached * (cachedInputPerMillion ?? inputPerMillion)
                + output * outputPerMillion) / 1_000_000
        }
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
        case price, order
    }

    public init(
        name: String, provider: String, model: String, baseURL: String, apiKeyEnv: String? = nil,
        concurrency: Int = RunConfig.Defaults.judgeConcurrency,
        timeoutSeconds: Double = RunConfig.Defaults.judgeTimeoutSeconds, requestsPerMinute: Int? = nil,
        tokensPerMinute: Int? = nil, limitKey: String? = nil, order: Int = 1
    ) {
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
    }

    /// Where each provider serves the Chat Completions format, and the usual name of its key.
    static let providerDefaults: [String: (baseURL: String, apiKeyEnv: String)] = [
        "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
        "anthropic": ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
        "gemini": ("https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
    ]
    static let providers = ["openai", "anthropic", "gemini", "openai-compatible"]
}
