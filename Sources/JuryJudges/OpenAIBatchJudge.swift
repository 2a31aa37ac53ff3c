public import AsyncHTTPClient
public import Foundation
public import JuryDomain
import NIOCore
import NIOHTTP1

/// A judge behind OpenAI's Batch API: the requests go up as a JSONL file (Files, purpose
/// `batch`), a batch on `/v1/chat/completions` runs them within the completion window, and its
/// output and error files come back as JSONL, read as a stream.
///
/// Each line's body is exactly what the online call sends (`OpenAIFormat`), and each answer is
/// read as an online answer is.
public struct OpenAIBatchJudge: BatchJudge {
    /// The metadata key that carries Jury's token for the batch.
    static let tokenKey = "jury_batch"

    public let config: JudgeConfig
    private let format: OpenAIFormat
    private let api: BatchAPI

    public init(
        config: JudgeConfig, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.config = config
        self.format = OpenAIFormat(parameters: config.parameters)
        self.api = try BatchAPI(config: config, client: client, format: format, environment: environment)
    }

    // MARK: - The batch's life

    public func entry(for request: BatchRequest) throws -> Data {
        Self.line(customID: request.customID, body: try format.body(for: request.request, model: config.model))
    }

    public func submit(_ input: BatchInput, token: String) async throws -> (batchID: String, inputFileID: String?) {
        // The file goes up as a multipart form, streamed from disk.
        let boundary = "jury-\(UUID().uuidString)"
        let form = BatchInputBody(
            input: input,
            prefix: Data(
                ("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                    + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"jury-\(token).jsonl\"\r\n"
                    + "Content-Type: application/jsonl\r\n\r\n").utf8),
            suffix: Data("\r\n--\(boundary)--\r\n".utf8))
        let uploaded = try await api.send(
            .POST, "/files", body: form.body, contentType: "multipart/form-data; boundary=\(boundary)",
            uploading: form.length, what: "uploading")
        guard let fileID = uploaded["id"]?.text else { throw api.answerError("the file upload's answer has no id") }
        let created = try await api.send(
            .POST, "/batches",
            body: .bytes(
                Data(
                    JSONValue.object([
                        "input_file_id": .string(fileID), "endpoint": .string("/v1/chat/completions"),
                        "completion_window": .string(config.batchSettings.completionWindow),
                        "metadata": .object([Self.tokenKey: .string(token)]),
                    ]).jsonText.utf8)),
            contentType: "application/json", what: "creating the batch")
        guard let batchID = created["id"]?.text else { throw api.answerError("the new batch's answer has no id") }
        return (batchID, fileID)
    }

    /// A request's line in the batch's input file: its custom id, and the body the online call sends.
    static func line(customID: String, body: Data) -> Data {
        BatchAPI.entry(
            idKey: "custom_id", id: customID, members: #""method":"POST","url":"/v1/chat/completions","#,
            bodyKey: "body", body: body)
    }

    public func find(token: String, createdAfter: Date, requests: Int) async throws -> [String] {
        var after: String?
        // The newest batches first; a lost submission is among the latest few hundred.
        for _ in 0..<10 {
            let path =
                "/batches?limit=100"
                + (after.map { "&after=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
            let page = try await api.send(.GET, path, what: "listing batches")
            guard case .array(let batches)? = page["data"] else { throw api.answerError("the batch list has no data") }
            if let found = batches.first(where: { $0["metadata", Self.tokenKey]?.text == token }) {
                return found["id"]?.text.map { [$0] } ?? []
            }
            guard page["has_more"] == .bool(true), let last = batches.last?["id"]?.text else { return [] }
            after = last
        }
        return []
    }

    public func status(of batchID: String) async throws -> BatchStatus {
        let batch = try await api.send(.GET, "/batches/\(Self.pathSegment(batchID))", what: "reading the batch")
        guard let state = batch["status"]?.text else { throw api.answerError("the batch has no status") }
        let end: BatchStatus.End? =
            switch state {
            case "completed": .completed
            case "expired": .expired
            case "cancelled": .cancelled
            case "failed": .failed
            default: nil
            }
        var error: String?
        if case .array(let errors)? = batch["errors", "data"] {
            error = errors.prefix(3).compactMap { $0["message"]?.text }.joined(separator: "; ")
        }
        return BatchStatus(
            providerID: batchID, providerState: state, end: end, outputFileID: batch["output_file_id"]?.text,
            errorFileID: batch["error_file_id"]?.text, error: error.map { String($0.prefix(500)) })
    }

    public func cancel(_ batchID: String) async throws {
        _ = try await api.send(.POST, "/batches/\(Self.pathSegment(batchID))/cancel", what: "cancelling the batch")
    }

    public func results(
        of status: BatchStatus, labels: [String], chunk: Int, malformed: (Int, String) -> Void,
        receive: ([BatchResult]) async throws -> Void
    ) async throws {
        for fileID in [status.outputFileID, status.errorFileID].compactMap({ $0 }) {
            try await api.readResults(
                api.base + "/files/\(Self.pathSegment(fileID))/content", file: fileID, chunk: chunk,
                malformed: malformed, read: { result($0, labels: labels) }, receive: receive)
        }
    }

    // MARK: - Reading results

    /// A results line (output or error file) as a result; an error for a line that is not one.
    func result(_ line: Data, labels: [String]) -> Result<BatchResult, JudgeError> {
        func malformed(_ why: String) -> Result<BatchResult, JudgeError> {
            .failure(JudgeError(.badAnswer, why))
        }
        guard let value = try? JSONValue.parseStrict(line) else { return malformed("the line is not valid JSON") }
        guard let customID = value["custom_id"]?.text, !customID.isEmpty else {
            return malformed("the line has no custom_id")
        }
        if let error = value["error"], error != .null {
            // An error of the batch's own (the request never ran), not an answer's status.
            let code = error["code"]?.text ?? ""
            let message = String((error["message"]?.text ?? code).prefix(300))
            if code == "batch_expired" || code == "batch_cancelled" {
                return .success(BatchResult(customID: customID, outcome: .unanswered("\(config.name): \(message)")))
            }
            return .success(
                BatchResult(
                    customID: customID, outcome: .failed(JudgeError(.server, "judge \(config.name): \(message)"))))
        }
        guard let response = value["response"], case .integer(let status)? = response["status_code"],
            let body = response["body"]
        else { return malformed("the line has neither a response nor an error") }
        let bodyData = Data(body.jsonText.utf8)
        guard status == 200 else {
            return .success(
                BatchResult(customID: customID, outcome: .failed(api.requestError(status: Int(status), body: bodyData)))
            )
        }
        return .success(BatchResult(customID: customID, outcome: api.answer(bodyData, labels: labels)))
    }

    /// An id as one URL path segment: ids come from the provider, untrusted.
    static func pathSegment(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? id
    }
}
