public import AsyncHTTPClient
public import Foundation
public import JuryDomain
import NIOCore
import NIOHTTP1

/// A judge behind Gemini's Batch Mode: the requests go up as a JSONL file (the Files API's
/// resumable upload), a batch is made on it with `models/{model}:batchGenerateContent`, polled
/// at `batches/{id}` to a final state, and its responses file is read back as a stream, each
/// line named by its request's key.
///
/// The batch's display name carries Jury's token, so a submission whose answer was lost is
/// found again by listing the account's batches.
public struct GeminiBatchJudge: BatchJudge {
    public let config: JudgeConfig
    private let format: GeminiFormat
    private let api: BatchAPI

    public init(
        config: JudgeConfig, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.config = config
        self.format = GeminiFormat(parameters: config.parameters)
        self.api = try BatchAPI(config: config, client: client, format: format, environment: environment)
    }

    /// The batch's display name: Jury's token, by which a lost submission is found again.
    static func displayName(token: String) -> String { "jury-\(token)" }

    // MARK: - The batch's life

    public func entry(for request: BatchRequest) throws -> Data {
        Self.line(key: request.customID, request: try format.body(for: request.request, model: config.model))
    }

    public func submit(_ input: BatchInput, token: String) async throws -> (batchID: String, inputFileID: String?) {
        let fileName = try await upload(BatchInputBody(input: input), displayName: Self.displayName(token: token))
        let model = config.model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? config.model
        let batch: JSONValue = .object([
            "batch": .object([
                "displayName": .string(Self.displayName(token: token)),
                "inputConfig": .object(["fileName": .string(fileName)]),
            ])
        ])
        let created = try await api.send(
            .POST, "/models/\(model):batchGenerateContent", body: .bytes(Data(batch.jsonText.utf8)),
            what: "creating the batch")
        guard let name = created["name"]?.text, Self.isName(name, in: "batches") else {
            throw api.answerError("the new batch's answer has no batch name")
        }
        return (name, fileName)
    }

    /// Uploads `file` with the Files API's resumable protocol: a start call that answers with
    /// the upload URL, then the bytes, streamed, in one `upload, finalize` call. Returns the
    /// file's name (`files/...`).
    private func upload(_ file: BatchInputBody, displayName: String) async throws -> String {
        let metadata: JSONValue = .object([
            "file": .object(["displayName": .string(displayName), "mimeType": "application/jsonl"])
        ])
        let (headers, _) = try await api.call(
            .POST, Self.uploadURL(base: api.base), body: .bytes(Data(metadata.jsonText.utf8)),
            extraHeaders: [
                ("X-Goog-Upload-Protocol", "resumable"), ("X-Goog-Upload-Command", "start"),
                ("X-Goog-Upload-Header-Content-Length", "\(file.length)"),
                ("X-Goog-Upload-Header-Content-Type", "application/jsonl"),
            ], what: "starting the upload")
        // The key goes with the bytes: only to the API's own host.
        guard let uploadURL = headers.first(name: "x-goog-upload-url"), api.isOnAPIHost(uploadURL) else {
            throw api.answerError("the upload was not given an upload URL on \(api.base)")
        }
        let (_, body) = try await api.call(
            .POST, uploadURL, body: file.body, contentType: "application/jsonl",
            extraHeaders: [("X-Goog-Upload-Command", "upload, finalize"), ("X-Goog-Upload-Offset", "0")],
            uploading: file.length, what: "uploading")
        guard let uploaded = try? JSONValue.parseStrict(body), let name = uploaded["file", "name"]?.text,
            Self.isName(name, in: "files")
        else { throw api.answerError("the finished upload's answer names no file") }
        return name
    }

    /// The Files API's upload endpoint for an API at `base`: `https://host/v1beta` uploads to
    /// `https://host/upload/v1beta/files`.
    static func uploadURL(base: String) -> String {
        guard let slash = base.lastIndex(of: "/"), base[..<slash].contains("://"),
            base[base.index(after: slash)...].first == "v"
        else { return base + "/upload/files" }
        return base[..<slash] + "/upload" + base[slash...] + "/files"
    }

    /// A request's line in the batch's input file: its key, and the body the online call sends.
    static func line(key: String, request: Data) -> Data {
        BatchAPI.entry(idKey: "key", id: key, bodyKey: "request", body: request)
    }

    public func find(token: String, createdAfter: Date, requests: Int) async throws -> [String] {
        var pageToken: String?
        for _ in 0..<10 {
            let path =
                "/batches?pageSize=100"
                + (pageToken.map {
                    "&pageToken=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)"
                }
                    ?? "")
            let page = try await api.send(.GET, path, what: "listing batches")
            if case .array(let batches)? = page["operations"],
                let found = batches.first(where: {
                    $0["metadata", "displayName"]?.text == Self.displayName(token: token)
                }),
                let name = found["name"]?.text, Self.isName(name, in: "batches")
            {
                return [name]
            }
            guard let next = page["nextPageToken"]?.text, !next.isEmpty else { return [] }
            pageToken = next
        }
        return []
    }

    public func status(of batchID: String) async throws -> BatchStatus {
        guard Self.isName(batchID, in: "batches") else {
            throw JudgeError(.notFound, "judge \(config.name): '\(batchID.prefix(80))' is not a Gemini batch name")
        }
        let batch = try await api.send(.GET, "/\(batchID)", what: "reading the batch")
        guard let state = batch["metadata", "state"]?.text else { throw api.answerError("the batch has no state") }
        let end: BatchStatus.End? =
            switch state {
            case "BATCH_STATE_SUCCEEDED": .completed
            case "BATCH_STATE_EXPIRED": .expired
            case "BATCH_STATE_CANCELLED": .cancelled
            case "BATCH_STATE_FAILED": .failed
            default: nil
            }
        let responses = batch["metadata", "output", "responsesFile"]?.text ?? batch["response", "responsesFile"]?.text
        return BatchStatus(
            providerID: batchID, providerState: state, end: end, outputFileID: responses,
            error: batch["error", "message"]?.text.map { String($0.prefix(500)) })
    }

    public func cancel(_ batchID: String) async throws {
        guard Self.isName(batchID, in: "batches") else { return }
        _ = try await api.call(.POST, api.base + "/\(batchID):cancel", what: "cancelling the batch")
    }

    public func results(
        of status: BatchStatus, labels: [String], chunk: Int, malformed: (Int, String) -> Void,
        receive: ([BatchResult]) async throws -> Void
    ) async throws {
        guard let file = status.outputFileID else { return }
        guard Self.isName(file, in: "files") else {
            throw api.answerError("the batch's responses file '\(file.prefix(80))' is not a file name")
        }
        try await api.readResults(
            api.base + "/\(file):download?alt=media", file: file, chunk: chunk, malformed: malformed,
            read: { result($0, labels: labels) }, receive: receive)
    }

    // MARK: - Reading results

    /// A responses line as a result; an error for a line that is not one. A line holds the
    /// request's key and either its `response` (a GenerateContentResponse) or its `error` (a status).
    func result(_ line: Data, labels: [String]) -> Result<BatchResult, JudgeError> {
        func malformed(_ why: String) -> Result<BatchResult, JudgeError> { .failure(JudgeError(.badAnswer, why)) }
        guard let value = try? JSONValue.parseStrict(line) else { return malformed("the line is not valid JSON") }
        guard let key = value["key"]?.text, !key.isEmpty else { return malformed("the line has no key") }
        if let error = value["error"], error != .null {
            guard case .integer(let code)? = error["code"], (100...599).contains(code) else {
                return malformed("the line's error has no HTTP code")
            }
            let body = Data(JSONValue.object(["error": error]).jsonText.utf8)
            return .success(
                BatchResult(customID: key, outcome: .failed(api.requestError(status: Int(code), body: body))))
        }
        guard let response = value["response"], response != .null else {
            return malformed("the line has neither a response nor an error")
        }
        return .success(BatchResult(customID: key, outcome: api.answer(Data(response.jsonText.utf8), labels: labels)))
    }

    /// Whether a name the provider gave is `collection/ID` with an ID of letters, digits, `-`
    /// and `_`: it goes into a URL path.
    static func isName(_ name: String, in collection: String) -> Bool {
        guard name.hasPrefix(collection + "/") else { return false }
        let id = name.dropFirst(collection.count + 1)
        return !id.isEmpty && id.count <= 200
            && id.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_".unicodeScalars.contains($0)
            }
    }
}
