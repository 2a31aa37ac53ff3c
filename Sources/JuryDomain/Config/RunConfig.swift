import Foundation
import Mustache
import Yams

/// A run as its YAML file describes it: what to label, with which judges, under which rule.
///
/// It is stored in `runs.config` as JSON so that every process on every machine sees the same run.
public struct RunConfig: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var taxonomy: [Label]
    public var judges: [JudgeConfig]
    public var prompt: Prompt
    public var consensus: ConsensusRule
    /// Wrong answers per job (unparseable, outside the taxonomy, a refused request) before it fails for good.
    public var maxAttempts: Int
    public var retry: RetryPolicy
    /// Most the run may spend, in USD, by its judges' prices; workers stop claiming its jobs after.
    public var budgetUSD: Double?

    public struct Label: Codable, Sendable, Equatable {
        public var label: String
        public var description: String
        /// What the label means for the request: `accept` (carry it out), `refuse`, or `clarify`
        /// (ask the user for what is missing or ambiguous). Default: the first label accepts, the others refuse.
        public var kind: Kind?
        /// Mustache template of the reply a fine-tuned model should give (`jury export --format chat`);
        /// sees the example's fields. Refusing and clarifying labels need one to be exported as chat.
        public var reply: String?

        public enum Kind: String, Codable, Sendable, CaseIterable {
            case accept, refuse, clarify
        }

        public init(label: String, description: String, kind: Kind? = nil, reply: String? = nil) {
            self.label = label
            self.description = description
            self.kind = kind
            self.reply = reply
        }
    }

    /// How `jury export --format chat` writes an example as a fine-tuning conversation.
    public struct Training: Codable, Sendable, Equatable {
        /// Mustache template of the system message; none when left out.
        public var system: String?
        /// Mustache template of the user's message; sees the example's fields.
        public var user: String
        /// Mustache template of the reply for labels that accept (the production answer, say);
        /// without it, accepted examples are left out of a chat export (logs already hold them).
        public var assistant: String?
    }

    /// How `jury export --format chat` builds conversations; nil: chat export is not configured.
    public var training: Training?

    /// How people review the disagreements in the web app (`jury serve`).
    public struct Review: Codable, Sendable, Equatable {
        /// People who label each example blind before it is decided: with two or more, the
        /// example is decided when they agree, and goes to an owner to adjudicate when not.
        public var perItem: Int

        public init(perItem: Int) { self.perItem = perItem }

        enum CodingKeys: String, CodingKey {
            case perItem = "per_item"
        }
    }

    /// nil: one person per example.
    public var review: Review?

    /// People who label each example before it is decided.
    public var reviewersPerItem: Int { review?.perItem ?? 1 }

    public struct Prompt: Codable, Sendable, Equatable {
        /// Mustache template of the system message; sees `taxonomy` (label, description) and `labels`.
        public var system: String
        /// Mustache template of the user message; sees the example's fields, `id`, and the above.
        public var user: String
    }

    /// How failed calls are retried. Failures that waiting cures (429, 5xx, timeouts, dropped
    /// connections) retry with capped exponential backoff until `giveUpAfterSeconds` have passed
    /// since the first of them; they do not use up `max_attempts`, which counts wrong answers.
    public struct RetryPolicy: Codable, Sendable, Equatable {
        public var baseDelaySeconds: Double
        public var maxDelaySeconds: Double
        /// How long a job keeps retrying an outage before it fails for good.
        public var giveUpAfterSeconds: Double
        /// The longest Retry-After honoured; a provider asking for more waits this long, and it is reported.
        public var maxRetryAfterSeconds: Double

        enum CodingKeys: String, CodingKey {
            case baseDelaySeconds = "base_delay_seconds"
            case maxDelaySeconds = "max_delay_seconds"
            case giveUpAfterSeconds = "give_up_after_seconds"
            case maxRetryAfterSeconds = "max_retry_after_seconds"
        }

        public init(
            baseDelaySeconds: Double, maxDelaySeconds: Double, giveUpAfterSeconds: Double = 6 * 3600,
            maxRetryAfterSeconds: Double = 600
        ) {
            self.baseDelaySeconds = baseDelaySeconds
            self.maxDelaySeconds = maxDelaySeconds
            self.giveUpAfterSeconds = giveUpAfterSeconds
            self.maxRetryAfterSeconds = maxRetryAfterSeconds
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let standard = RetryPolicy.standard
            baseDelaySeconds =
                try container.decodeIfPresent(Double.self, forKey: .baseDelaySeconds) ?? standard.baseDelaySeconds
            maxDelaySeconds =
                try container.decodeIfPresent(Double.self, forKey: .maxDelaySeconds) ?? standard.maxDelaySeconds
            giveUpAfterSeconds =
                try container.decodeIfPresent(Double.self, forKey: .giveUpAfterSeconds) ?? standard.giveUpAfterSeconds
            maxRetryAfterSeconds =
                try container.decodeIfPresent(Double.self, forKey: .maxRetryAfterSeconds)
                ?? standard.maxRetryAfterSeconds
        }

        public static let standard = RetryPolicy(baseDelaySeconds: 1, maxDelaySeconds: 60)
    }

    enum CodingKeys: String, CodingKey {
        case name, description, taxonomy, judges, prompt, consensus, training, review
        case maxAttempts = "max_attempts"
        case retry
        case budgetUSD = "budget_usd"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        taxonomy = try container.decode([Label].self, forKey: .taxonomy)
        judges = try container.decode([JudgeConfig].self, forKey: .judges)
        prompt = try container.decode(Prompt.self, forKey: .prompt)
        consensus = try container.decodeIfPresent(ConsensusRule.self, forKey: .consensus) ?? .unanimous
        training = try container.decodeIfPresent(Training.self, forKey: .training)
        review = try container.decodeIfPresent(Review.self, forKey: .review)
        maxAttempts = try container.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? Defaults.maxAttempts
        retry = try container.decodeIfPresent(RetryPolicy.self, forKey: .retry) ?? .standard
        budgetUSD = try container.decodeIfPresent(Double.self, forKey: .budgetUSD)
    }

    /// The values a config gets for what it leaves out: defined here only.
    public enum Defaults {
        public static let maxAttempts = 5
        public static let judgeConcurrency = 64
        public static let judgeTimeoutSeconds: Double = 120
    }

    public var labels: [String] { taxonomy.map(\.label) }

    /// The judge of the panel with this name.
    public func judge(named name: String) -> JudgeConfig? {
        judges.first { $0.name == name }
    }

    /// The consensus rule this run applies.
    public var rule: ConsensusRule { consensus }

    /// The judges' names, in the config's order: the panel.
    public var panel: [String] { judges.map(\.name) }

    /// What each label means for the request; the first label accepts unless told otherwise.
    public func kind(of label: String) -> Label.Kind? {
        guard let index = taxonomy.firstIndex(where: { $0.label == label }) else { return nil }
        return taxonomy[index].kind ?? (index == 0 ? .accept : .refuse)
    }

    /// The labels whose kind is `accept`.
    public var acceptingLabels: Set<String> { Set(labels.filter { kind(of: $0) == .accept }) }
}
