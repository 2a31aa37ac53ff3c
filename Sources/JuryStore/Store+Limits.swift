public import JuryDomain
import JuryPostgres

/// The accounts' rate limits, shared by every worker through PostgreSQL.
extension Store {
    /// Takes permits for up to `count` calls of about `tokensEach` tokens on an account; returns
    /// how many it got and, when fewer, the seconds until the next is due.
    public func takePermits(limitKey: String, count: Int, tokensEach: Double) async throws -> (
        granted: Int, waitSeconds: Double
    ) {
        let row = try await connection.query(
            prepared: "SELECT granted, wait_seconds FROM jury_take_permits(\(limitKey), \(count), \(tokensEach))")[0]
        return (try row.decode("granted"), try row.decode("wait_seconds"))
    }

    /// Gives back requests not used and tokens not spent (negative: spent beyond the estimate).
    public func adjustPermits(limitKey: String, requests: Double, tokens: Double) async throws {
        try await connection.query(prepared: "SELECT jury_adjust_permits(\(limitKey), \(requests), \(tokens))")
    }

    /// Stops every worker from calling on this account for `seconds`, after the provider answered 429.
    public func holdAccount(limitKey: String, seconds: Double) async throws {
        try await connection.query("SELECT jury_hold_account(\(limitKey), \(seconds))")
    }

    /// Follows what the provider's headers said is left on the account.
    public func observeAccount(limitKey: String, _ observation: RateLimitObservation) async throws {
        try await connection.query(
            """
            SELECT jury_observe_account(\(limitKey), \(observation.remainingRequests),
                \(observation.requestsResetSeconds), \(observation.remainingTokens), \(observation.tokensResetSeconds))
            """)
    }
}
