public import Foundation
public import JuryDomain

/// Gemini `generateContent`, natively: the label is forced with `responseSchema` (an enum) and
/// a JSON response type.
public struct GeminiFormat: ProviderFormat {
    public init() {}

    public func endpoint(baseURL: String, model: String) -> String {
        let escaped = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? model
        return baseURL.withoutTrailingSlash + "/models/\(escaped):generateContent"
    }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("x-goog-api-key", $0)] } ?? []
    }

    public func body(for request: JudgeRequest, model: String) throws -> Data {
        try JSONEncoder().encode(
            GenerateRequest(
                systemInstruction: .init(role: nil, parts: [.init(text: request.system)]),
                contents: [.init(role: "user", parts: [.init(text: request.user)])],
                generationConfig: .init(
                    temperature: 0, responseMimeType: "application/json",
                    responseSchema: LabelSchema(labels: request.labels, typeNames: { $0.uppercased() }))))
    }

    public func parseAnswer(_ body: Data, labels: [String], judge: String) throws -> JudgeAnswer {
        let raw = String(decoding: body, as: UTF8.self)
        func fail(_ reason: String) -> JudgeError { JudgeError(.badAnswer, "judge \(judge): \(reason)", answer: raw) }
        let response = try strictResponse(body, fail: fail)
        guard case .array(let candidates)? = response["candidates"], let candidate = candidates.first else {
            let blocked = response["promptFeedback", "blockReason"]?.text.map { " (blocked: \($0))" } ?? ""
            throw fail("the response has no candidate\(blocked)")
        }
        guard case .array(let parts)? = candidate["content", "parts"] else {
            let reason = candidate["finishReason"]?.text.map { " (finish reason: \($0))" } ?? ""
            throw fail("the candidate has no content\(reason)")
        }
        let text = parts.compactMap { $0["text"]?.text }.joined()
        let answer = try AnswerReader(labels: labels, judge: judge).read(text: text)
        let usage = response["usageMetadata"]
        let count = { (key: String) in usage?[key].flatMap(AnthropicFormat.tokens) }
        return JudgeAnswer(
            label: answer.label, rationale: answer.rationale, promptTokens: count("promptTokenCount"),
            completionTokens: count("candidatesTokenCount"), cachedTokens: count("cachedContentTokenCount"),
            modelVersion: response["modelVersion"]?.text)
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

// MARK: - Wire format

private struct GenerateRequest: Encodable {
    struct Part: Encodable { let text: String }
    struct Content: Encodable {
        let role: String?
        let parts: [Part]
    }
    struct GenerationConfig: Encodable {
        let temperature: Double
        let responseMimeType: String
        let responseSchema: LabelSchema
    }
    let systemInstruction: Content
    let contents: [Content]
    let generationConfig: GenerationConfig
}
