/// When and how long to wait before calling a judge again.
///
/// Exponential backoff with full jitter, capped; a provider's Retry-After comes first.
public struct RetryStrategy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int, baseDelay: Double, maxDelay: Double) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public init(config: RunConfig) {
        self.init(
            maxAttempts: config.maxAttempts, baseDelay: config.retry.baseDelaySeconds,
            maxDelay: config.retry.maxDelaySeconds)
    }

    /// Whether a job that failed on its `attempt`-th call (1-based) should be called again.
    public func shouldRetry(attempt: Int, error: Error) -> Bool {
        guard attempt < maxAttempts else { return false }
        if let error = error as? JudgeError { return error.isRetryable }
        return true
    }

    /// Seconds to wait after the `attempt`-th call failed.
    public func backoff(attempt: Int, error: Error? = nil) -> Double {
        let ceiling = min(maxDelay, baseDelay * pow2(attempt - 1))
        let jittered = Double.random(in: 0...ceiling)
        if let retryAfter = (error as? JudgeError)?.retryAfter {
            // Honour the provider, plus a little jitter so that waiting workers do not return together.
            return min(max(retryAfter, 0) + jittered * 0.1, max(maxDelay, retryAfter))
        }
        return jittered
    }

    private func pow2(_ exponent: Int) -> Double {
        Double(1 << min(max(exponent, 0), 30))
    }
}
