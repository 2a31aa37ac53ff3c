public import AsyncHTTPClient
public import Foundation
public import JuryDomain
import NIOCore
import NIOHTTP1

/// A judge behind Anthropic's Message Batches: the requests go in one create call
/// (`/v1/messages/batches`, each `params` exactly the online call's body), the batch is polled
/// until `ended`, and its results are read as a stream from its `results_url`.
///
/// Message Batches carry no metadata, so a batch whose submission was never recorded is looked
/// for among the account's batches created since Jury began to build it, with as many
/// requests; one Jury already knows is passed over (the driver checks). Its answers are fenced
/// by their custom ids all the same: a wrong match records nothing and its jobs go back.
public struct AnthropicBatchJudge: BatchJudge {
    public let config: JudgeConfig
    private let format: AnthropicFormat
    private let api: BatchAPI

    public init(
        config: JudgeConfig, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.config = config
        self.format = AnthropicFormat(
            version: config.anthropicVersion, forceLabel: config.forceLabel, parameters: config.parameters)
        self.api = try BatchAPI(config: config, client: client, format: format, environment: environment)
    }

    public func entry(for request: BatchRequest) throws -> Data {
        Self.item(customID: request.customID, params: try format.body(for: request.request, model: config.model))
    }

    public func submit(_ input: BatchInput, token: String) async throws -> (batchID: String, inputFileID: String?) {
        // One JSON document of every request, streamed from disk: the entries joined by commas.
        let body = BatchInputBody(
            input: input, prefix: Data(#"{"requests":["#.utf8), suffix: Data("]}".utf8), separator: UInt8(ascii: ","))
        let created = try await api.send(
            .POST, "/messages/batches", body: body.body, uploading: body.length, what: "creating the batch")
        guard let id = created["id"]?.text else { throw api.answerError("the new batch's answer has no id") }
        return (id, nil)
    }

    /// A request as the batch lists it: its custom id, and the online call's body as its params.
    static func item(customID: String, params: Data) -> Data {
        BatchAPI.entry(idKey: "custom_id", id: customID, bodyKey: "params", body: params)
    }

    public func find(token: String, createdAfter: Date, requests: Int) async throws -> [String] {
        var found: [String] = []
        var after: String?
        // Newest first: a lost submission is among the latest few hundred.
        for _ in 0..<10 {
            let path =
                "/messages/batches?limit=100" + (after.map { "&after_id=\(OpenAIBatchJudge.pathSegment($0))" } ?? "")
            let page = try await api.send(.GET, path, what: "listing batches")
            guard case .array(let batches)? = page["data"] else { throw api.answerError("the batch list has no data") }
            var older = false
            for batch in batches {
                guard let id = batch["id"]?.text, let created = batch["created_at"]?.text.flatMap(Self.date) else {
                    continue
                }
                // A little slack for the two clocks.
                if created < createdAfter.addingTimeInterval(-300) {
                    older = true
                    continue
                }
                let counts = batch["request_counts"]
                let total = ["processing", "succeeded", "errored", "canceled", "expired"].reduce(0) {
                    $0 + (counts?[$1].flatMap(AnthropicFormat.tokens) ?? 0)
                }
                if total == requests { found.append(id) }
            }
            guard !older, page["has_more"] == .bool(true), let last = page["last_id"]?.text ?? batches.last?["id"]?.text
            else { break }
            after = last
        }
        return found
    }

    public func status(of batchID: String) async throws -> BatchStatus {
        let batch = try await api.send(
            .GET, "/messages/batches/\(OpenAIBatchJudge.pathSegment(batchID))", what: "reading the batch")
        guard let state = batch["processing_status"]?.text else {
            throw api.answerError("the batch has no processing_status")
        }
        var end: BatchStatus.End?
        if state == "ended" {
            let expired = batch["request_counts", "expired"].flatMap(AnthropicFormat.tokens) ?? 0
            end =
                (batch["cancel_initiated_at"] ?? .null) != .null ? .cancelled : expired > 0 ? .expired : .completed
        }
        return BatchStatus(
            providerID: batchID, providerState: state, end: end, outputFileID: batch["results_url"]?.text)
    }

    public func cancel(_ batchID: String) async throws {
        _ = try await api.send(
            .POST, "/messages/batches/\(OpenAIBatchJudge.pathSegment(batchID))/cancel", what: "cancelling the batch")
    }

    public func results(
        of status: BatchStatus, labels: [String], chunk: Int, malformed: (Int, String) -> Void,
        receive: ([BatchResult]) async throws -> Void
    ) async throws {
        guard let url = status.outputFileID else { return }
        // The key goes only where the API is: a results URL elsewhere is refused, not followed.
        guard api.isOnAPIHost(url) else {
            throw JudgeError(
                .server, "judge \(config.name): the batch's results_url is not on \(api.base); it is not followed")
        }
        try await api.readResults(
            url, file: "results of \(status.providerID)", chunk: chunk, malformed: malformed,
            read: { result($0, labels: labels) }, receive: receive)
    }

    /// A results line as a result; an error for a line that is not one.
    func result(_ line: Data, labels: [String]) -> Result<BatchResult, JudgeError> {
        func malformed(_ why: String) -> Result<BatchResult, JudgeError> { .failure(JudgeError(.badAnswer, why)) }
        guard let value = try? JSONValue.parseStrict(line) else { return malformed("the line is not valid JSON") }
        guard let customID = value["custom_id"]?.text, !customID.isEmpty else {
            return malformed("the line has no custom_id")
        }
        guard let result = value["result"], let type = result["type"]?.text else {
            return malformed("the line has no result type")
        }
        switch type {
        case "succeeded":
            guard let message = result["message"] else { return malformed("a succeeded result has no message") }
            return .success(
                BatchResult(customID: customID, outcome: api.answer(Data(message.jsonText.utf8), labels: labels)))
        case "errored":
            // The error is the online call's error body; its type names the status it stands for.
            guard let error = result["error"], let kind = error["error", "type"]?.text ?? error["type"]?.text else {
                return malformed("an errored result has no error type")
            }
            let body = error["error"] != nil ? error : JSONValue.object(["type": "error", "error": error])
            let status = Self.statuses[kind] ?? 400
            return .success(
                BatchResult(
                    customID: customID,
                    outcome: .failed(api.requestError(status: status, body: Data(body.jsonText.utf8)))))
        case "canceled", "expired":
            return .success(
                BatchResult(customID: customID, outcome: .unanswered("judge \(config.name): the request was \(type)")))
        default:
            return malformed("the result type '\(type.prefix(40))' is not one Jury knows")
        }
    }

    /// The HTTP status each of Anthropic's error types is sent with online.
    static let statuses = [
        "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
        "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
        "overloaded_error": 529,
    ]

    /// An RFC 3339 time, as Anthropic writes `created_at`.
    static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
