public import AsyncHTTPClient
public import Foundation
public import JuryDomain

/// The batch APIs Jury speaks, by provider.
public enum BatchJudges {
    /// Batch judges of real runs, over `client`, with keys from `environment`.
    public static func factory(
        client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> @Sendable (JudgeConfig) throws -> any BatchJudge {
        { config in
            switch config.provider {
            case "openai": return try OpenAIBatchJudge(config: config, client: client, environment: environment)
            case "anthropic": return try AnthropicBatchJudge(config: config, client: client, environment: environment)
            default:
                throw JudgeError(
                    .badRequest, "judge \(config.name): batch mode is not available for \(config.provider)")
            }
        }
    }
}
