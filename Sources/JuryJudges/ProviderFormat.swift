public import Foundation
public import JuryDomain

/// What differs from one provider's API to another: where to send, how to ask with the label
/// forced, how to read the answer, and what an error body says.
public protocol ProviderFormat: Sendable {
    /// The URL to POST to.
    func endpoint(baseURL: String, model: String) -> String
    /// The headers that carry the key (and the API version, where one is needed).
    func headers(apiKey: String?) -> [(String, String)]
    /// The request body: the prompt, with the label forced to one of `request.labels`, and the
    /// judge's parameters.
    func body(for request: JudgeRequest, model: String) throws -> Data
    /// Reads a 200 response: every byte of it is untrusted.
    func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer
    /// What an error response says: its message, and whether it means that no retry can help
    /// until someone acts (a spend limit, a daily quota).
    func errorDetail(_ body: Data) -> (message: String?, exhausted: Bool, retryAfter: Double?)
}

extension ProviderFormat {
    /// The body Jury builds, with the judge's `parameters` laid over it (validation at `run
    /// create` keeps them off the keys Jury owns), as JSON.
    func encode(_ body: JSONValue, parameters: [String: JSONValue]) throws -> Data {
        let merged = parameters.isEmpty ? body : body.merging(.object(parameters))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(merged)
    }
}

/// A 200 response's body, held to strict JSON before anything reads it: the decoders would let
/// a key given twice pass, and keep either value. `fail` names the judge and keeps the body.
func strictResponse(_ body: Data, fail: (String) -> JudgeError) throws -> JSONValue {
    do { return try JSONValue.parseStrict(body) } catch { throw fail("the response is not valid JSON: \(error)") }
}

/// A token count as a provider reports it: any JSON number, kept within 0...Int64.max; anything
/// else reads as missing rather than failing the whole answer.
struct TokenCount: Decodable, Sendable {
    let count: Int?

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let whole = try? container.decode(Int64.self) {
            count = Int(max(0, whole))
        } else if let number = try? container.decode(Double.self), number.isFinite {
            count = number >= 9.2e18 ? Int.max : Int(max(0, number.rounded()))
        } else {
            count = nil
        }
    }
}

/// The label's schema, as every provider's structured output takes it: an object of a `label`
/// from the taxonomy and a `rationale`, both required.
enum LabelSchema {
    /// `typeNames` maps JSON Schema's type names to the provider's (Gemini's OpenAPI schema
    /// writes them in capitals); `closed` adds `additionalProperties: false`, which strict
    /// structured outputs require.
    static func json(labels: [String], typeNames: (String) -> String = { $0 }, closed: Bool = false) -> JSONValue {
        var schema: [String: JSONValue] = [
            "type": .string(typeNames("object")),
            "properties": .object([
                "label": .object([
                    "type": .string(typeNames("string")), "enum": .array(labels.map(JSONValue.string)),
                    "description": .string("One label of the taxonomy."),
                ]),
                "rationale": .object([
                    "type": .string(typeNames("string")), "description": .string("One sentence: why."),
                ]),
            ]),
            "required": .array([.string("label"), .string("rationale")]),
        ]
        if closed { schema["additionalProperties"] = .bool(false) }
        return .object(schema)
    }
}

extension String {
    /// The base URL without a trailing slash.
    var withoutTrailingSlash: String { hasSuffix("/") ? String(dropLast()) : self }
}
