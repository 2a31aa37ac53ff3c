/// How a judge's calls are made: one HTTP call per job, or gathered into the provider's batch API.
public enum JudgeMode: String, Codable, Sendable, CaseIterable {
    /// One call per job, answered in seconds, at the online price and rate limits.
    case online
    /// Jobs gathered into provider batches, answered within the completion window at the batch
    /// price, under the provider's batch limits instead of the account's online rate limit.
    case batch
}

/// A batch-mode judge's batches: how large, how long jobs wait to fill one, and how long the
/// provider has to answer it.
public struct BatchSettings: Codable, Sendable, Equatable {
    /// The most requests in one batch. OpenAI takes up to 50,000 per batch, Anthropic 100,000.
    public var maxRequests: Int
    /// A batch is sent once it is full, or once its oldest job has waited this long.
    public var gatherSeconds: Double
    /// How long the provider has to answer: `24h`, the only window OpenAI offers and the one
    /// after which Anthropic and Gemini expire a batch.
    public var completionWindow: String

    public static let standard = BatchSettings(maxRequests: 5_000, gatherSeconds: 300, completionWindow: "24h")
    /// The windows the providers accept.
    public static let completionWindows = ["24h"]

    public init(maxRequests: Int, gatherSeconds: Double, completionWindow: String) {
        self.maxRequests = maxRequests
        self.gatherSeconds = gatherSeconds
        self.completionWindow = completionWindow
    }

    /// The completion window in seconds.
    public var windowSeconds: Double {
        guard completionWindow.hasSuffix("h"), let hours = Double(completionWindow.dropLast()) else { return 86_400 }
        return hours * 3600
    }

    enum CodingKeys: String, CodingKey {
        case maxRequests = "max_requests"
        case gatherSeconds = "gather_seconds"
        case completionWindow = "completion_window"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let standard = Self.standard
        maxRequests = try container.decodeIfPresent(Int.self, forKey: .maxRequests) ?? standard.maxRequests
        gatherSeconds = try container.decodeIfPresent(Double.self, forKey: .gatherSeconds) ?? standard.gatherSeconds
        completionWindow =
            try container.decodeIfPresent(String.self, forKey: .completionWindow) ?? standard.completionWindow
    }
}

extension JudgeConfig {
    /// The output a request is assumed to use when its parameters set no cap.
    public static let assumedOutputTokens = 1024

    /// What a request may cost at most, as far as can be told before it is sent: its text at
    /// four bytes a token, and the output cap its parameters set (`max_completion_tokens`,
    /// `max_tokens`, `generationConfig.maxOutputTokens`) or `assumedOutputTokens`. Nil without a price.
    public func estimatedCost(of request: JudgeRequest, batched: Bool) -> Double? {
        let input = (request.system.utf8.count + request.user.utf8.count) / 4 + 16
        let cap = [
            parameters["max_completion_tokens"], parameters["max_tokens"],
            parameters["generationConfig"]?["maxOutputTokens"],
        ]
        .compactMap { $0?.text.flatMap(Int.init) }.first
        let answer = JudgeAnswer(
            label: "", rationale: nil, promptTokens: input, completionTokens: cap ?? Self.assumedOutputTokens)
        return cost(of: answer, batched: batched)
    }

    /// The providers whose batch API Jury speaks.
    public static let batchProviders = ["openai", "anthropic", "gemini"]

    /// Checks a batch-mode judge's settings.
    func validateBatchSettings(field: String, fail: (String, String) -> JuryError) throws {
        guard mode == .batch else {
            if batch != nil { throw fail("\(field).batch", "is for mode: batch; this judge is online") }
            return
        }
        guard Self.batchProviders.contains(provider) else {
            throw fail(
                "\(field).mode",
                "batch is for provider \(Self.batchProviders.joined(separator: ", ")) in this version of Jury; "
                    + "\(provider)'s judges run online")
        }
        let settings = batchSettings
        guard (1...50_000).contains(settings.maxRequests) else {
            throw fail("\(field).batch.max_requests", "\(settings.maxRequests) is outside 1...50000")
        }
        guard settings.gatherSeconds >= 0, settings.gatherSeconds <= 86_400 else {
            throw fail("\(field).batch.gather_seconds", "must be between 0 and 86400")
        }
        guard BatchSettings.completionWindows.contains(settings.completionWindow) else {
            throw fail(
                "\(field).batch.completion_window",
                "'\(settings.completionWindow)' is not one the providers take (\(BatchSettings.completionWindows.joined(separator: ", ")))"
            )
        }
        if let discount = price?.batchDiscount, !(discount > 0 && discount <= 1) {
            throw fail("\(field).price.batch_discount", "must be above 0 and at most 1 (0.5: half the online price)")
        }
    }
}
