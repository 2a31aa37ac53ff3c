import Foundation
import Synchronization

/// The limits a mock judge enforces, as a provider does: a bucket of requests and one of tokens
/// per model, each holding one second's worth and refilled continuously. A call that finds a
/// bucket short is answered 429; every answer carries the provider's rate-limit headers.
final class MockLimiter: Sendable {
    private struct Bucket {
        let perSecond: Double
        var available: Double
        var updated: ContinuousClock.Instant

        var capacity: Double { max(1, perSecond) }

        mutating func refill(_ now: ContinuousClock.Instant) {
            let elapsed =
                Double((now - updated).components.attoseconds) / 1e18 + Double((now - updated).components.seconds)
            available = min(capacity, available + perSecond * elapsed)
            updated = now
        }

        /// Seconds until `amount` is available.
        func wait(for amount: Double) -> Double { max(0, (min(amount, capacity) - available) / perSecond) }
    }

    /// What the limiter decided, for the headers.
    struct Decision {
        let allowed: Bool
        let retryAfter: Double
        let remainingRequests: Double?
        let requestsReset: Double?
        let remainingTokens: Double?
        let tokensReset: Double?
    }

    private let buckets = Mutex<[String: (requests: Bucket?, tokens: Bucket?)]>([:])
    private let rejected = Mutex(0)

    /// Calls answered 429 because a bucket was short.
    var rateLimited: Int { rejected.withLock { $0 } }

    func admit(model: String, requestsPerMinute: Double?, tokensPerMinute: Double?, tokens: Double) -> Decision? {
        guard requestsPerMinute != nil || tokensPerMinute != nil else { return nil }
        let now = ContinuousClock.now
        let decision = buckets.withLock { all -> Decision in
            var entry =
                all[model] ?? (
                    requestsPerMinute.map { Bucket(perSecond: $0 / 60, available: max(1, $0 / 60), updated: now) },
                    tokensPerMinute.map { Bucket(perSecond: $0 / 60, available: max(1, $0 / 60), updated: now) }
                )
            entry.requests?.refill(now)
            entry.tokens?.refill(now)
            let requestsShort = (entry.requests?.available ?? 1) < 1
            let tokensShort = entry.tokens.map { $0.available < min(tokens, $0.capacity) } ?? false
            let allowed = !requestsShort && !tokensShort
            if allowed {
                entry.requests?.available -= 1
                entry.tokens?.available -= tokens
            }
            all[model] = entry
            let retryAfter = max(entry.requests?.wait(for: 1) ?? 0, entry.tokens?.wait(for: tokens) ?? 0)
            return Decision(
                allowed: allowed, retryAfter: retryAfter,
                remainingRequests: entry.requests.map { max(0, $0.available.rounded(.down)) },
                requestsReset: entry.requests.map { $0.wait(for: $0.capacity) },
                remainingTokens: entry.tokens.map { max(0, $0.available.rounded(.down)) },
                tokensReset: entry.tokens.map { $0.wait(for: $0.capacity) })
        }
        if !decision.allowed { rejected.withLock { $0 += 1 } }
        return decision
    }
}
