public import Foundation

/// What a provider said of the account's remaining budget, read from its response headers:
/// OpenAI's `x-ratelimit-*` (resets as durations like `6m0s` or `12ms`) and Anthropic's
/// `anthropic-ratelimit-*` (resets as RFC 3339 times). The shared limiter follows it.
public struct RateLimitObservation: Sendable, Equatable {
    public var remainingRequests: Double?
    public var requestsResetSeconds: Double?
    public var remainingTokens: Double?
    public var tokensResetSeconds: Double?

    public init(
        remainingRequests: Double? = nil, requestsResetSeconds: Double? = nil, remainingTokens: Double? = nil,
        tokensResetSeconds: Double? = nil
    ) {
        self.remainingRequests = remainingRequests
        self.requestsResetSeconds = requestsResetSeconds
        self.remainingTokens = remainingTokens
        self.tokensResetSeconds = tokensResetSeconds
    }

    /// The observation in these headers (names in lower case), or nil when they say nothing.
    public static func parse(_ header: (String) -> String?, now: Date = Date()) -> RateLimitObservation? {
        var observation = RateLimitObservation()
        if let remaining = header("x-ratelimit-remaining-requests").flatMap(Double.init) {
            observation.remainingRequests = remaining
            observation.requestsResetSeconds = header("x-ratelimit-reset-requests").flatMap(duration)
        }
        if let remaining = header("x-ratelimit-remaining-tokens").flatMap(Double.init) {
            observation.remainingTokens = remaining
            observation.tokensResetSeconds = header("x-ratelimit-reset-tokens").flatMap(duration)
        }
        func until(_ name: String) -> Double? {
            header(name).flatMap { try? Date($0, strategy: .iso8601) }.map { max(0, $0.timeIntervalSince(now)) }
        }
        if let remaining = header("anthropic-ratelimit-requests-remaining").flatMap(Double.init) {
            observation.remainingRequests = remaining
            observation.requestsResetSeconds = until("anthropic-ratelimit-requests-reset")
        }
        if let remaining = header("anthropic-ratelimit-tokens-remaining").flatMap(Double.init) {
            observation.remainingTokens = remaining
            observation.tokensResetSeconds = until("anthropic-ratelimit-tokens-reset")
        }
        return observation == RateLimitObservation() ? nil : observation
    }

    /// A Go-style duration as OpenAI writes it: `6m0s`, `12ms`, `1.5s`, `1h2m3s`.
    public static func duration(_ text: String) -> Double? {
        var total = 0.0
        var number = ""
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        while let character = rest.first {
            if character.isNumber || character == "." {
                number.append(character)
                rest = rest.dropFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            let unit: Double
            if rest.hasPrefix("ms") {
                unit = 0.001
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix("h") {
                unit = 3600
                rest = rest.dropFirst()
            } else if rest.hasPrefix("m") {
                unit = 60
                rest = rest.dropFirst()
            } else if rest.hasPrefix("s") {
                unit = 1
                rest = rest.dropFirst()
            } else {
                return nil
            }
            total += value * unit
        }
        return number.isEmpty ? total : nil
    }
}
