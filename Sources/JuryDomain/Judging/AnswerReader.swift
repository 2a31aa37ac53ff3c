import Foundation

/// Reads a judge's answer generously and checks it strictly.
///
/// Generously: the JSON object may stand alone, in a Markdown fence, or inside prose; the label
/// may differ from the taxonomy's in case and surrounding spaces. Strictly: the JSON must be
/// valid (no key twice, no trailing comma), hold a string `label`, and that label must be one
/// of the taxonomy. Anything else is a bad answer that keeps what the judge said.
public struct AnswerReader: Sendable {
    public let labels: [String]
    /// The judge's name, for error messages.
    public let judge: String

    public init(labels: [String], judge: String) {
        self.labels = labels
        self.judge = judge
    }

    /// The label and rationale in a model's text answer.
    public func read(text: String) throws -> (label: String, rationale: String?) {
        guard let json = Self.jsonObject(in: text) else {
            throw fail("the answer holds no JSON object", answer: text)
        }
        let value: JSONValue
        do {
            value = try JSONValue.parseStrict(json.utf8)
        } catch {
            throw fail("the answer is not valid JSON (\(error)), so its label is ambiguous", answer: text)
        }
        guard case .object(let fields) = value else { throw fail("the answer is not a JSON object", answer: text) }
        return try read(fields: fields, answer: text)
    }

    /// The label and rationale of an answer that is already structured (a tool's input).
    public func read(fields: [String: JSONValue], answer: String) throws -> (label: String, rationale: String?) {
        guard case .string(let given) = fields["label"] else {
            throw fail("the answer has no string label", answer: answer)
        }
        guard let label = match(given) else {
            throw fail("answered '\(given.prefix(60))', which is not in the taxonomy", answer: answer)
        }
        switch fields["rationale"] {
        case nil, .null: return (label, nil)
        case .string(let text): return (label, text)
        default: throw fail("the answer's rationale is not a string", answer: answer)
        }
    }

    /// The taxonomy's label that `given` names, ignoring case and surrounding white space.
    public func match(_ given: String) -> String? {
        let wanted = given.trimmingCharacters(in: .whitespacesAndNewlines)
        return labels.first { $0 == wanted } ?? labels.first { $0.lowercased() == wanted.lowercased() }
    }

    private func fail(_ reason: String, answer: String) -> JudgeError {
        JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: answer)
    }

    /// The JSON object a text answer holds: the whole text, a fenced block, or the first
    /// balanced `{...}` in prose (braces inside strings do not count).
    static func jsonObject(in text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") && trimmed.hasSuffix("}") { return trimmed }
        let bytes = Array(trimmed.utf8)
        guard let start = bytes.firstIndex(of: UInt8(ascii: "{")) else { return nil }
        var depth = 0
        var inString = false
        var escaped = false
        for index in start..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return String(decoding: bytes[start...index], as: UTF8.self) }
            default: break
            }
        }
        return nil
    }
}
