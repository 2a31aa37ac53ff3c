import Foundation

extension RunConfig {
    /// What `jury run update` would change from this config to `new`, one line a field
    /// (`judges[claude].model: claude-sonnet-4-5 -> claude-sonnet-5`); empty when nothing does.
    ///
    /// Throws, naming the field, for a change a live run cannot take: the votes already cast
    /// were made under the taxonomy, the prompt and the panel, and the verdicts under the rule.
    /// Everything else (each judge's model, parameters, endpoint, key variable, limits, price,
    /// timeout, concurrency and order; the budget, retries, description, training templates)
    /// changes no verdict.
    public func changes(to new: RunConfig, file: String) throws -> [String] {
        func refuse(_ field: String, _ why: String) -> JuryError { .invalidConfig(file, field: field, why) }
        let cast = "the votes already cast were made under it; create a new run for a new one"
        guard new.name == name else {
            throw refuse("name", "is '\(new.name)', not '\(name)': run update changes the run it names in place")
        }
        guard new.panel == panel else {
            throw refuse(
                "judges",
                "the panel's names cannot change (\(panel.joined(separator: ", ")) -> "
                    + "\(new.panel.joined(separator: ", "))): votes are kept by judge name; \(cast)")
        }
        for (index, (old, updated)) in zip(taxonomy, new.taxonomy).enumerated()
        where old.label != updated.label || old.description != updated.description || old.kind != updated.kind {
            throw refuse("taxonomy[\(index)]", "cannot change: \(cast)")
        }
        guard new.taxonomy.count == taxonomy.count else { throw refuse("taxonomy", "cannot change: \(cast)") }
        guard new.prompt == prompt else {
            throw refuse("prompt", "cannot change: \(cast) (each vote keeps the hash of the prompt it saw)")
        }
        guard new.consensus == consensus else {
            throw refuse(
                "consensus",
                "cannot change on a live run: the verdicts written followed it; re-decide them all with "
                    + "`jury reduce --rule`")
        }
        // An account's limits outlive the config that set them (other runs may share them), so
        // one left out would silently stay: only a new value can replace it.
        let limits: [(name: String, value: KeyPath<JudgeConfig, Int?>)] = [
            ("requests_per_minute", \.requestsPerMinute), ("tokens_per_minute", \.tokensPerMinute),
        ]
        for (index, (old, updated)) in zip(judges, new.judges).enumerated() {
            for limit in limits where old[keyPath: limit.value] != nil && updated[keyPath: limit.value] == nil {
                throw refuse(
                    "judges[\(index)].\(limit.name)",
                    "cannot be left out on a live run: the account keeps its limit; set a higher one instead")
            }
        }
        return Self.differences(from: try Self.fields(of: self), to: try Self.fields(of: new))
    }

    /// The config as a flat map of dotted paths to JSON text; judges are named, not numbered.
    static func fields(of config: RunConfig) throws -> [String: String] {
        var fields: [String: String] = [:]
        func flatten(_ value: JSONValue, _ path: String) {
            if case .object(let members) = value, !members.isEmpty {
                for (key, member) in members { flatten(member, path.isEmpty ? key : "\(path).\(key)") }
            } else {
                fields[path] = value.jsonText
            }
        }
        guard case .object(var root) = try JSONValue.parse(JSONEncoder().encode(config)) else { return [:] }
        if case .array(let judges)? = root.removeValue(forKey: "judges") {
            for judge in judges { flatten(judge, "judges[\(judge["name"]?.text ?? "?")]") }
        }
        flatten(.object(root), "")
        return fields
    }

    /// One line per path whose value differs, sorted.
    static func differences(from old: [String: String], to new: [String: String]) -> [String] {
        Set(old.keys).union(new.keys).sorted().compactMap { path in
            let before = old[path]
            let after = new[path]
            guard before != after else { return nil }
            return "\(path): \(before ?? "(none)") -> \(after ?? "(none)")"
        }
    }
}
