import Foundation
public import JuryDomain
public import JuryStore

/// People's labels from a review, one JSON object per line: `{"id": "...", "label": "..."}`.
/// A line of `jury export --review` is read as well: with its `human_label` filled in it is a
/// label; left `null`, as exported, it is an example nobody reviewed yet, and is passed over.
public enum LabelFile {
    public struct Contents: Sendable {
        public var labels: [ReviewLabel]
        /// Lines whose `human_label` is still null.
        public var unreviewed: Int
    }

    /// Reads and checks every line first, so that one bad line imports nothing: each must be an
    /// object with a string `id` and a label of `config`'s taxonomy, and no id may come twice.
    public static func read(path: String, config: RunConfig) throws -> [ReviewLabel] {
        try contents(path: path, config: config).labels
    }

    public static func contents(path: String, config: RunConfig) throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JuryError(.io, "cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw JuryError(.invalidInput, "\(path): not UTF-8 text")
        }
        let labels = Set(config.labels)
        var seen: [String: Int] = [:]
        var result: [ReviewLabel] = []
        var unreviewed = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            guard let value = try? JSONValue.parse(Data(line.utf8)), case .object(let fields) = value else {
                throw bad(path, number, "not a JSON object")
            }
            guard case .string(let id)? = fields["id"], !id.isEmpty else {
                throw bad(path, number, "needs \"id\", a non-empty string (the example's id in the corpus)")
            }
            var given: [String] = []
            for key in ["label", "human_label"] {
                switch fields[key] {
                case .string(let label)?: given.append(label)
                case nil, .null?: break
                default: throw bad(path, number, "\"\(key)\" must be a string")
                }
            }
            if given.isEmpty, fields["label"] == nil, fields["human_label"] == .null {
                unreviewed += 1
                continue
            }
            guard let label = given.first else {
                throw bad(path, number, "needs \"label\" (or \"human_label\"): the label people gave")
            }
            if given.count == 2, given[0] != given[1] {
                throw bad(
                    path, number, "\"label\" '\(given[0])' and \"human_label\" '\(given[1])' differ; give one")
            }
            guard labels.contains(label) else {
                throw bad(
                    path, number,
                    "label '\(label)' is not in the run's taxonomy (\(config.labels.joined(separator: ", ")))")
            }
            if let earlier = seen[id] {
                throw bad(path, number, "id '\(id)' was labelled already on line \(earlier)")
            }
            seen[id] = number
            result.append(ReviewLabel(externalID: id, label: label, line: number))
        }
        guard !result.isEmpty else {
            throw JuryError(
                .invalidInput,
                "\(path): no labels in it\(unreviewed > 0 ? " (\(unreviewed) lines still have \"human_label\": null)" : "")"
            )
        }
        return Contents(labels: result, unreviewed: unreviewed)
    }

    private static func bad(_ path: String, _ line: Int, _ reason: String) -> JuryError {
        JuryError(.invalidInput, "\(path):\(line): \(reason); nothing was imported")
    }
}
