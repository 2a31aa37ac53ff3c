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
            case "gemini": return try GeminiBatchJudge(config: config, client: client, environment: environment)
            default:
                throw JudgeError(
                    .badRequest, "judge \(config.name): batch mode is not available for \(config.provider)")
            }
        }
    }

    /// What a batch-mode judge puts in its batch for `request`, under `customID`: OpenAI's or
    /// Gemini's input file line, or Anthropic's request item. Nil for a judge that is not in batch mode.
    public static func preview(config: JudgeConfig, request: JudgeRequest, customID: String) throws -> Data? {
        guard config.mode == .batch else { return nil }
        let body = try HTTPJudge.format(for: config).body(for: request, model: config.model)
        switch config.provider {
        case "openai": return OpenAIBatchJudge.line(customID: customID, body: body)
        case "anthropic": return AnthropicBatchJudge.item(customID: customID, params: body)
        case "gemini": return GeminiBatchJudge.line(key: customID, request: body)
        default: return nil
        }
    }
}
