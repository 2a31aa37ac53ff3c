/// What a judge is asked: the rendered prompt and the labels it must choose from.
public struct JudgeRequest: Sendable {
    public let system: String
    public let user: String
    public let labels: [String]

    public init(system: String, user: String, labels: [String]) {
        self.system = system
        self.user = user
        self.labels = labels
    }

    /// A fingerprint of what every judge is sent (messages and labels), stored with each vote:
    /// two votes of one example with different hashes saw different prompts. 64-bit FNV-1a,
    /// as 16 hex digits; an identifier, not a security measure.
    public var promptHash: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in [system, user] + labels {
            for byte in part.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
            hash = (hash ^ 0xff) &* 0x0000_0100_0000_01b3  // a separator no UTF-8 text contains
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// A judge's answer: one label of the taxonomy, and why, with what the provider reported.
public struct JudgeAnswer: Sendable, Equatable {
    public let label: String
    public let rationale: String?
    /// Input tokens, all of them (read from and written to the prompt cache included).
    public let promptTokens: Int?
    /// Output tokens as billed: thinking and reasoning included, whichever way the provider counts them.
    public let completionTokens: Int?
    /// Input tokens read from the provider's prompt cache.
    public let cachedTokens: Int?
    /// Input tokens written to the provider's prompt cache (billed at a premium by Anthropic).
    public let cacheWriteTokens: Int?
    /// The part of the output the model spent thinking (reasoning tokens, thoughts).
    public let thinkingTokens: Int?
    /// The model version the provider says answered (e.g. `gpt-4o-2024-08-06`).
    public let modelVersion: String?
    /// What the provider's headers said of the account's remaining budget.
    public var rateLimit: RateLimitObservation?

    public init(
        label: String, rationale: String?, promptTokens: Int? = nil, completionTokens: Int? = nil,
        cachedTokens: Int? = nil, cacheWriteTokens: Int? = nil, thinkingTokens: Int? = nil,
        modelVersion: String? = nil, rateLimit: RateLimitObservation? = nil
    ) {
        self.cacheWriteTokens = cacheWriteTokens
        self.thinkingTokens = thinkingTokens
        self.rateLimit = rateLimit
        self.label = label
        self.rationale = rationale
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
        self.modelVersion = modelVersion
    }
}

/// Something that labels examples: a model behind an HTTP API, or an in-process stand-in.
public protocol Judge: Sendable {
    /// Labels one example. Throws `JudgeError` when the call fails; the worker decides on retries.
    func classify(_ request: JudgeRequest) async throws -> JudgeAnswer
}
