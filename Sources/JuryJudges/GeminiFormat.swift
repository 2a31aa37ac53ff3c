public import Foundation
public import JuryDomain

/// Gemini `generateContent`, natively: the label is forced with `responseSchema` (an enum) and
/// a JSON response type. Jury sends no sampling parameter; a judge's `parameters` add what the
/// model takes (`generationConfig.thinkingConfig`, `generationConfig.maxOutputTokens`, ...).
/// Thinking tokens (`thoughtsTokenCount`) are billed as output and counted so.
public struct GeminiFormat: ProviderFormat {
    let parameters: [String: JSONValue]

    public init(parameters: [String: JSONValue] = [:]) {
        self.parameters = parameters
    }

    public func endpoint(baseURL: String, model: String) -> String {
        let escaped = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? model
        return baseURL.withoutTrailingSlash + "/models/\(escaped):generateContent"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("x-goog-api-key", $0)] } ?? []
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        let body: JSONValue = .object([
            "systemInstruction": .object(["parts": .array([.object(["text": .string(request.system)])])]),
            "contents": .array([
                .object(["role": .string("user"), "parts": .array([.object(["text": .string(request.user)])])])
            ]),
            "generationConfig": .object([
                "responseMimeType": .string("application/json"),
                "responseSchema": LabelSchema.json(labels: request.labels, typeNames: { $0.uppercased() }),
            ]),
        ])
        return try encode(body, parameters: parameters)
    }

    public func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        let response = try strictResponse(body, fail: fail)
        guard case .array(let candidates)? = response["candidates"], let candidate = candidates.first else {
            if let blocked = response["promptFeedback", "blockReason"]?.text {
                throw JudgeError(.refused, "judge \(judge) declined to label: the prompt was blocked (\(blocked))", answer: raw)
            }
            throw fail("the response has no candidate")
        }
        guard case .array(let parts)? = candidate["content", "parts"] else {
            if let reason = candidate["finishReason"]?.text { throw Self.stopped(reason, judge: judge, raw: raw, fail: fail) }
            throw fail("the candidate has no content")
        }
        // Thought summaries (includeThoughts) are parts marked `thought`: read past them.
        let text = parts.compactMap { $0["thought"] == .bool(true) ? nil : $0["text"]?.text }.joined()
        if text.isEmpty, let reason = candidate["finishReason"]?.text, reason != "STOP" {
            throw Self.stopped(reason, judge: judge, raw: raw, fail: fail)
        }
        let answer = try AnswerReader(labels: labels, judge: judge).read(text: text)
        let usage = response["usageMetadata"]
        let count = { (key: String) in usage?[key].flatMap(AnthropicFormat.tokens) }
        let candidatesTokens = count("candidatesTokenCount")
        let thoughts = count("thoughtsTokenCount")
        // Gemini counts thinking apart from the answer; both are billed as output.
        let output = candidatesTokens.map { $0 &+ (thoughts ?? 0) } ?? thoughts
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale, promptTokens: count("promptTokenCount"),
            completionTokens: output, cachedTokens: count("cachedContentTokenCount"), thinkingTokens: thoughts,
            modelVersion: response["modelVersion"]?.text)
    }

    /// A candidate that ended without an answer: a safety or policy stop is a refusal, running
    /// out of output tokens or anything else an unreadable answer.
    static func stopped(_ reason: String, judge: String, raw: String, fail: (String) -> JudgeError) -> JudgeError {
        switch reason {
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
            return JudgeError(.refused, "judge \(judge) declined to label (finish reason \(reason))", answer: raw)
        case "MAX_TOKENS":
            return fail(
                "the answer was cut off at the output cap before the label (raise generationConfig.maxOutputTokens, or lower the thinking budget)"
            )
        default:
            return fail("the candidate has no answer (finish reason: \(reason))")
        }
    }

    public func errorDetail(_ body: Data) -> (message: String?, exhausted: Bool, retryAfter: Double?) {
        let error = try? JSONValue.parse(body)
        var exhausted = false
        var retryAfter: Double?
        if case .array(let details)? = error?["error", "details"] {
            for detail in details {
                // RetryInfo says when to come back, as a duration such as "20s" or "1.5s".
                if let delay = detail["retryDelay"]?.text, delay.hasSuffix("s") {
                    retryAfter = Double(delay.dropLast())
                }
                // A per-day quota is not cured by waiting seconds: the judge stops until someone acts.
                if case .array(let violations)? = detail["violations"],
                    violations.contains(where: { $0["quotaId"]?.text?.contains("PerDay") == true })
                {
                    exhausted = true
                }
            }
        }
        return (error?["error", "message"]?.text, exhausted, retryAfter)
    }
}
