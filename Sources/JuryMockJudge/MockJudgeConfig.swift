import Foundation
import JuryCore
import Yams

/// How each mock judge behaves, by model name: read from a YAML file.
///
/// ```yaml
/// judges:
///   - model: mock-alpha
///     seed: 1
///     accuracy: 0.92          # share of answers that keep the rule-based label
///     bias: { label: needs_more_context, weight: 0.6 }   # where wrong answers go first
///     latency_ms: { median: 40, p95: 120 }
///     error_rate: 0.02        # HTTP 500s
///     rate_limit_rate: 0.01   # HTTP 429 with Retry-After
///     api_key: secret-value   # optional: require this bearer token (401 otherwise)
/// ```
public struct MockJudgeConfig: Codable, Sendable {
    public var judges: [Behaviour]

    public struct Behaviour: Codable, Sendable {
        public var model: String
        public var seed: UInt64
        public var accuracy: Double
        public var bias: Bias?
        public var latencyMs: Latency?
        public var errorRate: Double?
        public var rateLimitRate: Double?
        public var apiKey: String?

        public struct Bias: Codable, Sendable {
            public var label: String
            public var weight: Double

            public init(label: String, weight: Double) {
                self.label = label
                self.weight = weight
            }
        }

        public struct Latency: Codable, Sendable {
            public var median: Double
            public var p95: Double

            public init(median: Double, p95: Double) {
                self.median = median
                self.p95 = p95
            }
        }

        enum CodingKeys: String, CodingKey {
            case model, seed, accuracy, bias
            case latencyMs = "latency_ms"
            case errorRate = "error_rate"
            case rateLimitRate = "rate_limit_rate"
            case apiKey = "api_key"
        }

        public init(
            model: String, seed: UInt64, accuracy: Double, bias: Bias? = nil, latencyMs: Latency? = nil,
            errorRate: Double? = nil, rateLimitRate: Double? = nil, apiKey: String? = nil
        ) {
            self.model = model
            self.seed = seed
            self.accuracy = accuracy
            self.bias = bias
            self.latencyMs = latencyMs
            self.errorRate = errorRate
            self.rateLimitRate = rateLimitRate
            self.apiKey = apiKey
        }
    }

    public init(judges: [Behaviour]) {
        self.judges = judges
    }

    public static func load(path: String) throws -> MockJudgeConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw JuryError(.io, "cannot read the mock judge config \(path)")
        }
        let config: MockJudgeConfig
        do {
            config = try YAMLDecoder().decode(MockJudgeConfig.self, from: text)
        } catch {
            throw JuryError(.invalidConfig, "\(path): \(error)")
        }
        for (index, judge) in config.judges.enumerated() {
            let rates = [judge.accuracy, judge.errorRate ?? 0, judge.rateLimitRate ?? 0, judge.bias?.weight ?? 0]
            guard rates.allSatisfy({ (0...1).contains($0) }) else {
                throw JuryError(
                    .invalidConfig, "\(path): judges[\(index)]: accuracy, rates and bias weight must be within 0...1")
            }
        }
        return config
    }
}
