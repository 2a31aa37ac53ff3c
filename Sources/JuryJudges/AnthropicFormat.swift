public import Foundation
public import JuryDomain

/// Anthropic Messages, natively, at the current API version unless the judge pins another.
///
/// The label is forced by structured output (`output_config.format`, a JSON schema), which
/// works with thinking on; or, for models and versions without it, by a tool whose input schema
/// holds the enum, required through `tool_choice`. (Anthropic's OpenAI compatibility layer
/// ignores `response_format`, so it would not force the label at all.) The system prompt, the
/// part every example shares, is marked for prompt caching. The current version takes no
/// sampling parameter at all, so Jury sends none; `max_tokens`, which the API requires, is
/// 1024 unless the judge's parameters say otherwise (thinking needs more).
public struct AnthropicFormat: ProviderFormat {
    /// The API version Jury speaks unless a judge pins another: the official SDK's default.
    public static let currentVersion = "2026-10-21"
    static let toolName = "record_label"
    static let defaultMaxTokens: Int64 = 1024

    let version: String
    let forceLabel: JudgeConfig.ForceLabel
    let parameters: [String: JSONValue]

    public init(
        version: String? = nil, forceLabel: JudgeConfig.ForceLabel? = nil, parameters: [String: JSONValue] = [:]
    ) {
        self.version = version ?? Self.currentVersion
        self.forceLabel = forceLabel ?? .structuredOutput
        self.parameters = parameters
    }

    public func endpoint(baseURL: String, model: String) -> String {
        baseURL.withoutTrailingSlash + "/messages"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        [("anthropic-version", version)] + (apiKey.map { [("x-api-key", $0)] } ?? [])
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        var body: [String: JSONValue] = [
            "model": .string(model),
            "max_tokens": .integer(Self.defaultMaxTokens),
            "system": .array([
                .object([
                    "type": .string("text"), "text": .string(request.system),
                    "cache_control": .object(["type": .string("ephemeral")]),
                ])
            ]),
            "messages": .array([.object(["role": .string("user"), "content": .string(request.user)])]),
        ]
        switch forceLabel {
        case .structuredOutput:
            body["output_config"] = .object([
                "format": .object([
                    "type": .string("json_schema"),
                    "schema": LabelSchema.json(labels: request.labels, closed: true),
                ])
            ])
        case .tool:
            body["tools"] = .array([
                .object([
                    "name": .string(Self.toolName),
                    "description": .string("Record the one label of the taxonomy that fits, and why."),
                    "input_schema": LabelSchema.json(labels: request.labels),
                ])
            ])
            body["tool_choice"] = .object(["type": .string("tool"), "name": .string(Self.toolName)])
        }
        return try encode(.object(body), parameters: parameters)
    }

    public func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        let response = try strictResponse(body, fail: fail)
        guard case .array(let blocks)? = response["content"] else {
            throw fail("the response is not a message")
        }
        let stopReason = response["stop_reason"]?.text
        if stopReason == "refusal" {
            let said = blocks.compactMap { $0["type"]?.text == "text" ? $0["text"]?.text : nil }.joined()
            throw JudgeError(
                .refused, "judge \(judge) declined to label (stop_reason refusal)", answer: said.isEmpty ? raw : said)
        }
        // Thinking and redacted thinking come first; text may stand before the tool call.
        let reader = AnswerReader(labels: labels, judge: judge)
        let texts = blocks.compactMap { $0["type"]?.text == "text" ? $0["text"]?.text : nil }
        let answer: (label: String, rationale: String?)
        if let tool = blocks.first(where: { $0["type"]?.text == "tool_use" && $0["name"]?.text == Self.toolName }) {
            guard case .object(let input)? = tool["input"] else { throw fail("the tool call has no input object") }
            answer = try reader.read(fields: input, answer: JSONValue.object(input).jsonText)
        } else if !texts.isEmpty {
            // Structured output answers in text; so may a model that ignored the tool.
            answer = try reader.read(text: texts.joined())
        } else if stopReason == "max_tokens" {
            throw fail("the answer was cut off at max_tokens before the label (raise parameters.max_tokens)")
        } else {
            throw fail("the message has neither the label's JSON nor the tool call")
        }
        let usage = response["usage"]
        let count = { (key: String) in usage?[key].flatMap(Self.tokens) }
        let fresh = count("input_tokens")
        let cacheRead = count("cache_read_input_tokens")
        let cacheWrite = count("cache_creation_input_tokens")
        // Anthropic counts cached input apart; Jury's prompt tokens are all the input. Its
        // output_tokens already hold the thinking.
        let input = fresh.map { $0 &+ (cacheRead ?? 0) &+ (cacheWrite ?? 0) }
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale, promptTokens: input,
            completionTokens: count("output_tokens"), cachedTokens: cacheRead, cacheWriteTokens: cacheWrite,
            thinkingTokens: usage?["output_tokens_details", "thinking_tokens"].flatMap(Self.tokens),
            modelVersion: response["model"]?.text)
    }

    public func errorDetail(_ body: Data) -> (message: String?, exhausted: Bool, retryAfter: Double?) {
        let error = try? JSONValue.parse(body)
        let message = error?["error", "message"]?.text
        // A used-up credit balance or spend limit is a 400 that no retry cures.
        let lowered = message?.lowercased() ?? ""
        let exhausted = lowered.contains("credit balance") || lowered.contains("spend limit")
        return (message, exhausted, nil)
    }

    static func tokens(_ value: JSONValue) -> Int? {
        switch value {
        case .integer(let count): return Int(max(0, count))
        case .number(let count) where count.isFinite: return count >= 9.2e18 ? Int.max : Int(max(0, count.rounded()))
        default: return nil
        }
    }
}
