import Foundation
import JuryDomain
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
///     api_key: secret-value   # optional: require this key (401 otherwise)
///     requests_per_minute: 600   # optional: enforced, with the provider's rate-limit headers and 429s
///     tokens_per_minute: 60000   # optional: the same for tokens (input, estimated as bytes / 4, and output)
///     thinking_tokens: 300    # optional: each answer reports this many thinking tokens, as the provider bills them
///     faults:                 # optional: misbehave the way real providers sometimes do
///       error_status: 529     # the status of error_rate's failures (default 500)
///       retry_after: "86400"  # the Retry-After header of 429s (default "1")
///       outage_seconds: 30    # every call fails with outage_status (default 503) for this long
///       stall_rate: 0.05      # 200, half a body, then nothing for stall_seconds (default 600)
///       drop_rate: 0.05       # 200, half a body, then the connection is dropped
///       garbage_rate: 0.05    # an answer that is not JSON
///       content: '{"label":"valid","label":"ambiguous"}'   # this answer text, always
///       rationale: "..."      # this rationale in every answer
///       usage_tokens: 5000000000                           # this prompt token count
///       bad_request_rate: 0.05  # these examples (the same ones every time) are refused with a 400, as
///                             # a prompt too long is
///       refusal_rate: 0.05    # the model declines to label (OpenAI's refusal, Anthropic's stop_reason
///                             # refusal, Gemini's SAFETY finish)
/// batches:                    # optional: the batch APIs (OpenAI's /v1/files and /v1/batches,
///                             # Anthropic's /v1/messages/batches, Gemini's uploads and
///                             # /v1beta/models/M:batchGenerateContent)
///   complete_seconds: 2       # a batch ends this long after it was created (default 2)
///   expire_every: 3           # every third batch expires instead: its second half unanswered
///                             # (Gemini's: none of it, as Gemini keeps no responses then)
///   junk_lines: true          # each output file also holds a line that is not JSON, an answer to a
///                             # custom id never sent, and its first answer again
///   latency_ms: 300           # every call of a batch API (upload, create, poll, list, cancel,
///                             # download) answers this late, as a slow provider would
/// ```
public struct MockJudgeConfig: Codable, Sendable {
    public var judges: [Behaviour]
    public var batches: Batches?

    /// How the mock's batch API behaves.
    public struct Batches: Codable, Sendable {
        public var completeSeconds: Double?
        public var expireEvery: Int?
        public var junkLines: Bool?
        public var latencyMs: Double?

        public init(
            completeSeconds: Double? = nil, expireEvery: Int? = nil, junkLines: Bool? = nil, latencyMs: Double? = nil
        ) {
            self.completeSeconds = completeSeconds
            self.expireEvery = expireEvery
            self.junkLines = junkLines
            self.latencyMs = latencyMs
        }

        enum CodingKeys: String, CodingKey {
            case completeSeconds = "complete_seconds"
            case expireEvery = "expire_every"
            case junkLines = "junk_lines"
            case latencyMs = "latency_ms"
        }
    }

    public struct Behaviour: Codable, Sendable {
        public var model: String
        public var seed: UInt64
        public var accuracy: Double
        public var bias: Bias?
        public var latencyMs: Latency?
        public var errorRate: Double?
        public var rateLimitRate: Double?
        public var apiKey: String?
        public var requestsPerMinute: Double?
        public var tokensPerMinute: Double?
        public var thinkingTokens: Int64?
        public var faults: Faults?

        /// Ways to misbehave, for tests and the chaos script.
        public struct Faults: Codable, Sendable {
            public var errorStatus: Int?
            public var retryAfter: String?
            public var outageSeconds: Double?
            public var outageStatus: Int?
            public var stallRate: Double?
            public var stallSeconds: Double?
            public var dropRate: Double?
            public var garbageRate: Double?
            public var content: String?
            public var rationale: String?
            public var usageTokens: Int64?
            /// Every call answers the provider's error for a used-up credit, spend limit or daily quota.
            public var exhausted: Bool?
            /// Share of answers in which the model declines to label.
            public var refusalRate: Double?
            /// Share of examples the provider refuses with a 400 (too long, say), every time.
            public var badRequestRate: Double?

            enum CodingKeys: String, CodingKey {
                case errorStatus = "error_status"
                case retryAfter = "retry_after"
                case outageSeconds = "outage_seconds"
                case outageStatus = "outage_status"
                case stallRate = "stall_rate"
                case stallSeconds = "stall_seconds"
                case dropRate = "drop_rate"
                case garbageRate = "garbage_rate"
                case content, rationale
                case usageTokens = "usage_tokens"
                case exhausted
                case refusalRate = "refusal_rate"
                case badRequestRate = "bad_request_rate"
            }

            public init(
                errorStatus: Int? = nil, retryAfter: String? = nil, outageSeconds: Double? = nil,
                outageStatus: Int? = nil, stallRate: Double? = nil, stallSeconds: Double? = nil,
                dropRate: Double? = nil, garbageRate: Double? = nil, content: String? = nil,
                rationale: String? = nil, usageTokens: Int64? = nil, exhausted: Bool? = nil,
                refusalRate: Double? = nil, badRequestRate: Double? = nil
            ) {
                self.refusalRate = refusalRate
                self.badRequestRate = badRequestRate
                self.exhausted = exhausted
                self.errorStatus = errorStatus
                self.retryAfter = retryAfter
                self.outageSeconds = outageSeconds
                self.outageStatus = outageStatus
                self.stallRate = stallRate
                self.stallSeconds = stallSeconds
                self.dropRate = dropRate
                self.garbageRate = garbageRate
                self.content = content
                self.rationale = rationale
                self.usageTokens = usageTokens
            }
        }

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
            case requestsPerMinute = "requests_per_minute"
            case tokensPerMinute = "tokens_per_minute"
            case thinkingTokens = "thinking_tokens"
            case faults
        }

        public init(
            model: String, seed: UInt64, accuracy: Double, bias: Bias? = nil, latencyMs: Latency? = nil,
            errorRate: Double? = nil, rateLimitRate: Double? = nil, apiKey: String? = nil,
            requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil, thinkingTokens: Int64? = nil,
            faults: Faults? = nil
        ) {
            self.thinkingTokens = thinkingTokens
            self.faults = faults
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
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

    public init(judges: [Behaviour], batches: Batches? = nil) {
        self.judges = judges
        self.batches = batches
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
            let faults = judge.faults
            let rates = [
                judge.accuracy, judge.errorRate ?? 0, judge.rateLimitRate ?? 0, judge.bias?.weight ?? 0,
                faults?.stallRate ?? 0, faults?.dropRate ?? 0, faults?.garbageRate ?? 0, faults?.refusalRate ?? 0,
                faults?.badRequestRate ?? 0,
            ]
            guard rates.allSatisfy({ (0...1).contains($0) }) else {
                throw JuryError(
                    .invalidConfig, "\(path): judges[\(index)]: accuracy, rates and bias weight must be within 0...1")
            }
        }
        return config
    }
}
