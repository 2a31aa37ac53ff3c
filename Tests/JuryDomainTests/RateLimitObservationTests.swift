import Foundation
import JuryDomain
import Testing

@Suite("Rate-limit headers")
struct RateLimitObservationTests {
    @Test(arguments: [("6m0s", 360.0), ("12ms", 0.012), ("1.5s", 1.5), ("1h2m3s", 3723.0), ("0s", 0.0)])
    func openAIDurations(text: String, seconds: Double) {
        #expect(abs((RateLimitObservation.duration(text) ?? -1) - seconds) < 1e-9)
    }

    @Test(arguments: ["", "5", "1x", "s", "1.5"])
    func notDurations(text: String) {
        #expect(RateLimitObservation.duration(text) == nil)
    }

    @Test func openAIAndAnthropicHeadersAreRead() {
        let openAI = [
            "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "149000", "x-ratelimit-reset-tokens": "6m0s",
        ]
        #expect(
            RateLimitObservation.parse { openAI[$0] }
                == RateLimitObservation(
                    remainingRequests: 59, requestsResetSeconds: 1, remainingTokens: 149_000, tokensResetSeconds: 360))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let anthropic = [
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": now.addingTimeInterval(20).formatted(.iso8601),
        ]
        let observed = RateLimitObservation.parse({ anthropic[$0] }, now: now)
        #expect(observed?.remainingRequests == 0 && observed?.requestsResetSeconds == 20)
        #expect(RateLimitObservation.parse { _ in nil } == nil)
    }
}
