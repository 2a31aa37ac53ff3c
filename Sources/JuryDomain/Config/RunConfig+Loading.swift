import Foundation
import Mustache
import Yams

extension RunConfig {
    /// Parses and validates a run's YAML text; `file` names it in errors.
    public static func parse(yaml text: String, file: String) throws -> RunConfig {
        let tree: Any?
        do {
            tree = try Yams.load(yaml: text)
        } catch {
            throw JuryError(.invalidConfig, "\(file): not valid YAML: \(error)")
        }
        guard let root = tree as? [String: Any] else {
            throw JuryError(.invalidConfig, "\(file): expected a mapping with name, taxonomy, judges, prompt")
        }
        try rejectUnknownKeys(root, file: file)
        var config: RunConfig
        do {
            config = try YAMLDecoder().decode(RunConfig.self, from: text)
        } catch let error as DecodingError {
            throw describe(error, file: file)
        }
        // Parameters go to the provider as they were written: typed from YAML's own reading
        // (the decoder would read the number 4000 as the string "4000").
        for (index, judge) in ((root["judges"] as? [Any]) ?? []).enumerated() where index < config.judges.count {
            guard let parameters = (judge as? [String: Any])?["parameters"] else { continue }
            let field = "judges[\(index)].parameters"
            guard case .object(let fields) = try JSONValue(yaml: parameters, field: field, file: file) else {
                throw JuryError.invalidConfig(file, field: field, "expected a mapping")
            }
            config.judges[index].parameters = fields
        }
        try config.validate(file: file)
        return config
    }

    /// Checks everything a worker would otherwise trip on later, naming the field.
    public func validate(file: String) throws {
        func fail(_ field: String, _ reason: String) -> JuryError { .invalidConfig(file, field: field, reason) }
        let namePattern = /[A-Za-z0-9][A-Za-z0-9._-]*/
        guard (try? namePattern.wholeMatch(in: name)) != nil else {
            throw fail("name", "'\(name)' must be letters, digits, '.', '_' or '-'")
        }
        guard taxonomy.count >= 2 else { throw fail("taxonomy", "needs at least two labels") }
        var seenLabels = Set<String>()
        for (index, entry) in taxonomy.enumerated() {
            guard (try? /[a-z0-9][a-z0-9_-]*/.wholeMatch(in: entry.label)) != nil else {
                throw fail(
                    "taxonomy[\(index)].label", "'\(entry.label)' must be lower-case letters, digits, '_' or '-'")
            }
            guard seenLabels.insert(entry.label).inserted else {
                throw fail("taxonomy[\(index)].label", "'\(entry.label)' appears twice; labels are mutually exclusive")
            }
            guard !entry.description.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw fail("taxonomy[\(index)].description", "is empty; judges need it to tell labels apart")
            }
        }
        guard !judges.isEmpty else { throw fail("judges", "needs at least one judge") }
        var seenJudges = Set<String>()
        for (index, judge) in judges.enumerated() {
            let field = "judges[\(index)]"
            guard (try? namePattern.wholeMatch(in: judge.name)) != nil else {
                throw fail("\(field).name", "'\(judge.name)' must be letters, digits, '.', '_' or '-'")
            }
            guard seenJudges.insert(judge.name).inserted else {
                throw fail("\(field).name", "'\(judge.name)' appears twice")
            }
            guard JudgeConfig.providers.contains(judge.provider) else {
                throw fail(
                    "\(field).provider",
                    "'\(judge.provider)' is not one of \(JudgeConfig.providers.joined(separator: ", "))")
            }
            guard !judge.model.isEmpty else { throw fail("\(field).model", "is empty") }
            guard let url = URL(string: judge.baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme),
                url.host != nil
            else {
                throw fail(
                    "\(field).base_url", "'\(judge.baseURL)' is not an http(s) URL (required for openai-compatible)")
            }
            // The config is stored in the database and shown by status: a credential in the URL would leak.
            // (The message does not repeat the URL, for the same reason.)
            if url.user != nil || url.password != nil {
                throw fail(
                    "\(field).base_url", "holds a user name or password; put the key in the variable api_key_env names")
            }
            let secretWords = ["key", "token", "secret", "password", "sig", "auth"]
            if let items = URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems,
                let item = items.first(where: { item in secretWords.contains { item.name.lowercased().contains($0) } })
            {
                throw fail(
                    "\(field).base_url",
                    "its query parameter '\(item.name)' looks like a credential; put the key in the variable api_key_env names"
                )
            }
            if let variable = judge.apiKeyEnv, (try? /[A-Za-z_][A-Za-z0-9_]*/.wholeMatch(in: variable)) == nil {
                throw fail(
                    "\(field).api_key_env",
                    "must name an environment variable (like OPENAI_API_KEY), never hold the key itself")
            }
            guard (1...10_000).contains(judge.concurrency) else {
                throw fail("\(field).concurrency", "\(judge.concurrency) is outside 1...10000")
            }
            guard judge.timeoutSeconds > 0 else { throw fail("\(field).timeout_seconds", "must be positive") }
            if let limit = judge.requestsPerMinute, limit < 1 {
                throw fail("\(field).requests_per_minute", "must be at least 1 (leave it out for no limit)")
            }
            if let limit = judge.tokensPerMinute, limit < 1 {
                throw fail("\(field).tokens_per_minute", "must be at least 1 (leave it out for no limit)")
            }
            if judge.limitKey.isEmpty { throw fail("\(field).limit_key", "must not be empty") }
            if let price = judge.price {
                for (key, value) in [
                    ("input_per_million", price.inputPerMillion), ("output_per_million", price.outputPerMillion),
                    ("cached_input_per_million", price.cachedInputPerMillion ?? 0),
                    ("cache_write_per_million", price.cacheWritePerMillion ?? 0),
                ] where !(value >= 0 && value < 1e6) {
                    throw fail("\(field).price.\(key)", "must be a price in USD, 0 or more")
                }
            }
            try judge.validateRequestSettings(field: field, fail: fail)
            try judge.validateBatchSettings(field: field, fail: fail)
        }
        for (field, template) in [("prompt.system", prompt.system), ("prompt.user", prompt.user)] {
            do {
                _ = try PromptRenderer.compile(template)
            } catch {
                throw fail(field, "is not a valid Mustache template: \(error)")
            }
        }
        guard !prompt.user.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw fail("prompt.user", "is empty; it is where the example goes")
        }
        if let problem = consensus.problem(panel: panel) {
            throw fail("consensus.\(problem.field)", problem.reason)
        }
        if consensus.kind == .weighted, consensus.weights == nil {
            throw fail(
                "consensus.weights",
                "are missing for rule: weighted; give every judge one, or create the run under another rule and switch with `jury reduce --rule weighted` after `jury calibrate`, which takes the judges' accuracies"
            )
        }
        for (index, entry) in taxonomy.enumerated() {
            if let reply = entry.reply {
                do {
                    _ = try PromptRenderer.compile(reply)
                } catch {
                    throw fail("taxonomy[\(index)].reply", "is not a valid Mustache template: \(error)")
                }
            }
        }
        if acceptingLabels.isEmpty {
            throw fail("taxonomy", "no label has kind: accept; the first label accepts unless another says so")
        }
        for (index, judge) in judges.enumerated() where !(1...100).contains(judge.order) {
            throw fail("judges[\(index)].order", "\(judge.order) is outside 1...100")
        }
        if let training {
            for (field, template) in [
                ("training.system", training.system), ("training.user", training.user),
                ("training.assistant", training.assistant),
            ] {
                guard let template else { continue }
                do {
                    _ = try PromptRenderer.compile(template)
                } catch {
                    throw fail(field, "is not a valid Mustache template: \(error)")
                }
            }
        }
        if let budget = budgetUSD, !(budget > 0) {
            throw fail("budget_usd", "must be more than 0 (leave it out for none)")
        }
        if let review, !(1...5).contains(review.perItem) {
            throw fail("review.per_item", "\(review.perItem) is outside 1...5 (people who label each example)")
        }
        guard (1...100).contains(maxAttempts) else { throw fail("max_attempts", "\(maxAttempts) is outside 1...100") }
        guard retry.baseDelaySeconds > 0 else { throw fail("retry.base_delay_seconds", "must be positive") }
        guard retry.maxDelaySeconds >= retry.baseDelaySeconds else {
            throw fail("retry.max_delay_seconds", "must be at least base_delay_seconds")
        }
        guard retry.giveUpAfterSeconds > 0 else { throw fail("retry.give_up_after_seconds", "must be positive") }
        guard retry.maxRetryAfterSeconds > 0 else { throw fail("retry.max_retry_after_seconds", "must be positive") }
    }

    private static let knownKeys: [String: Set<String>] = [
        "": [
            "name", "description", "taxonomy", "judges", "prompt", "consensus", "max_attempts", "retry", "budget_usd",
            "training", "review",
        ],
        "taxonomy": ["label", "description", "kind", "reply"],
        "training": ["system", "user", "assistant"],
        "judges": [
            "name", "provider", "model", "base_url", "api_key_env", "concurrency", "timeout_seconds",
            "requests_per_minute", "tokens_per_minute", "limit_key", "price", "order", "parameters",
            "anthropic_version", "force_label", "mode", "batch",
        ],
        "price": [
            "input_per_million", "output_per_million", "cached_input_per_million", "cache_write_per_million",
            "batch_discount",
        ],
        "batch": ["max_requests", "gather_seconds", "completion_window"],
        "prompt": ["system", "user"],
        "consensus": ["rule", "quorum", "min_votes", "weights", "threshold", "early_decision"],
        "retry": ["base_delay_seconds", "max_delay_seconds", "give_up_after_seconds", "max_retry_after_seconds"],
        "review": ["per_item"],
    ]

    /// A misspelt key would otherwise be ignored silently and its default used.
    private static func rejectUnknownKeys(_ root: [String: Any], file: String) throws {
        func check(_ mapping: [String: Any], section: String, field: String) throws {
            let known = knownKeys[section] ?? []
            for key in mapping.keys.sorted() where !known.contains(key) {
                if section == "judges", key == "api_key" {
                    throw JuryError.invalidConfig(
                        file, field: "\(field)api_key",
                        "API keys never go in the config (it is stored in the database); use api_key_env")
                }
                throw JuryError.invalidConfig(
                    file, field: field + key, "unknown key; expected one of \(known.sorted().joined(separator: ", "))")
            }
        }
        try check(root, section: "", field: "")
        for section in ["prompt", "consensus", "retry", "training", "review"] {
            if let mapping = root[section] as? [String: Any] {
                try check(mapping, section: section, field: "\(section).")
            }
        }
        for section in ["taxonomy", "judges"] {
            for (index, item) in ((root[section] as? [Any]) ?? []).enumerated() {
                if let mapping = item as? [String: Any] {
                    try check(mapping, section: section, field: "\(section)[\(index)].")
                    for nested in ["price", "batch"] {
                        if let inner = mapping[nested] as? [String: Any] {
                            try check(inner, section: nested, field: "\(section)[\(index)].\(nested).")
                        }
                    }
                }
            }
        }
    }

    private static func describe(_ error: DecodingError, file: String) -> JuryError {
        func path(_ keys: [CodingKey]) -> String {
            keys.reduce("") { text, key in
                if let index = key.intValue { return text + "[\(index)]" }
                return text.isEmpty ? key.stringValue : text + "." + key.stringValue
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .invalidConfig(file, field: path(context.codingPath + [key]), "is missing")
        case .typeMismatch(let type, let context):
            return .invalidConfig(file, field: path(context.codingPath), "expected \(describe(type))")
        case .valueNotFound(let type, let context):
            return .invalidConfig(file, field: path(context.codingPath), "is empty, expected \(describe(type))")
        case .dataCorrupted(let context):
            return .invalidConfig(file, field: path(context.codingPath), context.debugDescription)
        @unknown default:
            return JuryError(.invalidConfig, "\(file): \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "a whole number"
        case is Double.Type: return "a number"
        case is JudgeConfig.ForceLabel.Type: return "one of structured_output, tool"
        case is JudgeMode.Type: return "one of online, batch"
        default:
            let name = "\(type)"
            return name.hasPrefix("Array") ? "a list" : name.hasPrefix("Dictionary") ? "a mapping" : "a mapping"
        }
    }
}

extension JSONValue {
    /// A value as Yams loaded it: strings, numbers, booleans, null, lists and mappings.
    init(yaml value: Any, field: String, file: String) throws {
        switch value {
        case let text as String: self = .string(text)
        case let flag as Bool: self = .bool(flag)
        case let whole as Int: self = .integer(Int64(whole))
        case let number as Double where number.isFinite: self = .number(number)
        case is NSNull: self = .null
        case let list as [Any]:
            self = .array(
                try list.enumerated().map { try JSONValue(yaml: $1, field: "\(field)[\($0)]", file: file) })
        case let mapping as [String: Any]:
            self = .object(
                try mapping.reduce(into: [:]) { fields, entry in
                    fields[entry.key] = try JSONValue(yaml: entry.value, field: "\(field).\(entry.key)", file: file)
                })
        default:
            throw JuryError.invalidConfig(
                file, field: field, "is not a JSON value (a date or an infinite number?); quote it to send it as text")
        }
    }
}
