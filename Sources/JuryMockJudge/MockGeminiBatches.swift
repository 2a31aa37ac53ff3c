import Foundation
import JuryDomain
import Synchronization

/// Gemini's Batch Mode, as the mock judge serves it: a JSONL file uploaded through the Files
/// API's resumable protocol, a batch made on it with `models/{model}:batchGenerateContent`,
/// `BATCH_STATE_RUNNING` until `complete_seconds` have passed, then `BATCH_STATE_SUCCEEDED` with
/// a responses file whose lines carry each request's key and its response or error.
///
/// Every `expire_every`-th batch expires instead, with no responses (Gemini keeps none of an
/// expired batch); a cancelled batch ends with none either. `junk_lines` adds a line that is not
/// JSON, a response to a key never sent, and the first response again.
final class MockGeminiBatches: Sendable {
    struct Batch {
        let id: String
        let model: String
        let displayName: String
        let inputFile: String
        let createTime: Date
        let created: ContinuousClock.Instant
        let credential: String?
        let expires: Bool
        var state = "BATCH_STATE_PENDING"
        var updateTime: Date
        var endTime: Date?
        var responsesFile: String?
        var requests = 0
        var succeeded = 0
        var failed = 0
    }

    /// An upload under way: its declared length and the bytes received so far.
    private struct Upload {
        let displayName: String?
        let length: Int?
        var received = Data()
    }

    private struct State {
        var files: [String: Data] = [:]
        var uploads: [String: Upload] = [:]
        var batches: [String: Batch] = [:]
        var order: [String] = []
        var next = 0
        var requests = 0

        mutating func newID(_ prefix: String) -> String {
            next += 1
            return "\(prefix)mock\(String(format: "%08d", next))"
        }
    }

    private let state = Mutex(State())
    private let settings: MockJudgeConfig.Batches

    init(settings: MockJudgeConfig.Batches) {
        self.settings = settings
    }

    var counts: (batches: Int, requests: Int) { state.withLock { ($0.batches.count, $0.requests) } }

    /// The answer to one request of a batch on `model`: what the server would reply to it online.
    typealias Responder =
        @Sendable (_ body: Data, _ credential: String?, _ model: String) async -> (status: Int, body: JSONValue)

    /// A reply with the headers of Google's upload protocol.
    struct UploadReply {
        let status: Int
        let body: JSONValue?
        let headers: [String: String]

        init(status: Int, body: JSONValue?, headers: [String: String]) {
            self.status = status
            self.body = body
            self.headers = headers
        }

        /// A refusal, with Google's error body.
        init(refusing kind: MockWireFormat.ErrorKind, _ message: String, headers: [String: String] = [:]) {
            (status, body) = MockGeminiBatches.error(kind, message)
            self.headers = headers
        }
    }

    // MARK: - Files

    /// POST /upload/v1beta/files, `X-Goog-Upload-Command: start`: opens an upload and answers
    /// with its URL, on the host the call came through.
    func startUpload(body: Data, command: String?, protocol uploadProtocol: String?, length: String?, host: String)
        -> UploadReply
    {
        guard uploadProtocol == "resumable", command == "start" else {
            return UploadReply(
                refusing: .badRequest,
                "the mock takes resumable uploads (X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start)")
        }
        let metadata = body.isEmpty ? JSONValue.object([:]) : (try? JSONValue.parseStrict(body))
        guard let metadata else {
            return UploadReply(refusing: .badRequest, "the body is not JSON")
        }
        let id = state.withLock { state in
            let id = state.newID("upload")
            state.uploads[id] = Upload(
                displayName: metadata["file", "displayName"]?.text, length: length.flatMap { Int($0) })
            return id
        }
        return UploadReply(
            status: 200, body: nil,
            headers: [
                "x-goog-upload-url": "http://\(host)/upload/v1beta/files?upload_id=\(id)&upload_protocol=resumable",
                "x-goog-upload-status": "active",
            ])
    }

    /// POST to an upload's URL: bytes at `offset`; `finalize` makes the file.
    func continueUpload(_ id: String, body: Data, command: String?, offset: String?) -> UploadReply {
        let commands = Set((command ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        return state.withLock { state in
            guard var upload = state.uploads[id] else {
                return UploadReply(refusing: .notFound, "no upload \(id)")
            }
            guard commands.contains("upload"), Int(offset ?? "") == upload.received.count else {
                return UploadReply(
                    refusing: .badRequest, "expected X-Goog-Upload-Command: upload at offset \(upload.received.count)",
                    headers: ["x-goog-upload-status": "active"])
            }
            upload.received.append(body)
            guard commands.contains("finalize") else {
                state.uploads[id] = upload
                return UploadReply(status: 200, body: nil, headers: ["x-goog-upload-status": "active"])
            }
            state.uploads[id] = nil
            if let length = upload.length, length != upload.received.count {
                return UploadReply(
                    refusing: .badRequest, "the upload declared \(length) bytes and sent \(upload.received.count)",
                    headers: ["x-goog-upload-status": "final"])
            }
            let name = "files/" + state.newID("file")
            state.files[name] = upload.received
            return UploadReply(
                status: 200,
                body: .object(["file": Self.file(name, displayName: upload.displayName, bytes: upload.received.count)]),
                headers: ["x-goog-upload-status": "final"])
        }
    }

    /// GET /v1beta/files/{id}:download?alt=media.
    func content(of name: String) -> Data? {
        state.withLock { $0.files[name] }
    }

    // MARK: - Batches

    /// POST /v1beta/models/{model}:batchGenerateContent, on an uploaded file.
    func create(model: String, body: Data, credential: String?) -> (Int, JSONValue) {
        guard let request = try? JSONValue.parseStrict(body), let batch = request["batch"] else {
            return Self.error(.badRequest, "the body must be a JSON object with a batch")
        }
        guard let fileName = batch["inputConfig", "fileName"]?.text else {
            return Self.error(.badRequest, "batch.inputConfig.fileName is required (the mock takes file input)")
        }
        return state.withLock { state in
            guard state.files[fileName] != nil else { return Self.error(.notFound, "File \(fileName) not found.") }
            let id = "batches/" + state.newID("batch")
            let expires = settings.expireEvery.map { $0 > 0 && (state.batches.count + 1) % $0 == 0 } ?? false
            let made = Batch(
                id: id, model: "models/\(model)", displayName: batch["displayName"]?.text ?? "", inputFile: fileName,
                createTime: Date(), created: .now, credential: credential, expires: expires, updateTime: Date())
            state.batches[id] = made
            state.order.append(id)
            return (200, Self.operation(made))
        }
    }

    /// GET /v1beta/batches/{id}: ends the batch first when its time has come.
    func retrieve(_ id: String, respond: Responder) async -> (Int, JSONValue) {
        await finishIfDue(id, respond: respond)
        return state.withLock { state in
            guard let batch = state.batches[id] else { return Self.error(.notFound, "Batch \(id) not found.") }
            return (200, Self.operation(batch))
        }
    }

    /// GET /v1beta/batches: newest first, `pageSize` a page, from `pageToken`.
    func list(pageSize: Int, pageToken: String?) -> (Int, JSONValue) {
        state.withLock { state in
            let newest = Array(state.order.reversed())
            let start = pageToken.flatMap { Int($0) } ?? 0
            guard start >= 0, start <= newest.count else { return Self.error(.badRequest, "bad pageToken") }
            let page = newest[start..<min(newest.count, start + max(1, min(pageSize, 100)))]
            var answer: [String: JSONValue] = [
                "operations": .array(page.compactMap { state.batches[$0] }.map(Self.operation))
            ]
            if page.endIndex < newest.count { answer["nextPageToken"] = .string("\(page.endIndex)") }
            return (200, .object(answer))
        }
    }

    /// POST /v1beta/batches/{id}:cancel: a batch not yet ended is cancelled, with no responses.
    func cancel(_ id: String) -> (Int, JSONValue) {
        state.withLock { state in
            guard var batch = state.batches[id] else { return Self.error(.notFound, "Batch \(id) not found.") }
            if ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"].contains(batch.state) {
                batch.state = "BATCH_STATE_CANCELLED"
                batch.endTime = Date()
                batch.updateTime = Date()
            }
            state.batches[id] = batch
            return (200, .object([:]))
        }
    }

    private func finishIfDue(_ id: String, respond: Responder) async {
        let claimed: (Batch, Data)? = state.withLock { state in
            guard var batch = state.batches[id], ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"].contains(batch.state)
            else { return nil }
            guard ContinuousClock.now - batch.created >= .seconds(settings.completeSeconds ?? 2) else {
                batch.state = "BATCH_STATE_RUNNING"
                state.batches[id] = batch
                return nil
            }
            if batch.expires {
                batch.state = "BATCH_STATE_EXPIRED"
                batch.endTime = Date()
                state.batches[id] = batch
                return nil
            }
            batch.state = "finalizing"  // the mock's own, while it answers: no one else ends it
            state.batches[id] = batch
            return (batch, state.files[batch.inputFile] ?? Data())
        }
        guard let (batch, input) = claimed else { return }
        let model = String(batch.model.dropFirst("models/".count))
        var responses = Data()
        var succeeded = 0
        var failed = 0
        let lines = input.split(separator: UInt8(ascii: "\n")).filter { !$0.isEmpty }
        for line in lines {
            let item = try? JSONValue.parseStrict(line)
            let key = item?["key"] ?? .null
            guard let request = item?["request"] else {
                responses.append(
                    Self.line(["key": key, "error": Self.error(.badRequest, "the line has no request").body["error"]!]))
                failed += 1
                continue
            }
            let reply = await respond(Data(request.jsonText.utf8), batch.credential, model)
            if reply.status == 200 {
                responses.append(Self.line(["key": key, "response": reply.body]))
                succeeded += 1
            } else {
                responses.append(
                    Self.line([
                        "key": key,
                        "error": reply.body["error"]
                            ?? .object(["code": .integer(Int64(reply.status)), "message": "error"]),
                    ])
                )
                failed += 1
            }
        }
        if settings.junkLines == true, let first = responses.split(separator: UInt8(ascii: "\n")).first {
            let stranger = Data(first).replacing(
                Data("\"key\":".utf8), with: Data("\"key\":\"job-999999999-claim-1\",\"was\":".utf8))
            responses.append(contentsOf: "this line is not JSON\n".utf8)
            responses.append(stranger + Data("\n".utf8))
            responses.append(Data(first) + Data("\n".utf8))
        }
        state.withLock { state in
            guard var stored = state.batches[id] else { return }
            let name = "files/" + state.newID("batch-output")
            state.files[name] = responses
            stored.responsesFile = name
            stored.requests = lines.count
            stored.succeeded = succeeded
            stored.failed = failed
            stored.state = "BATCH_STATE_SUCCEEDED"
            stored.endTime = Date()
            stored.updateTime = Date()
            state.batches[id] = stored
            state.requests += lines.count
        }
    }

    // MARK: - The wire format

    /// A batch as Gemini returns it: a long-running operation whose metadata is the batch.
    private static func operation(_ batch: Batch) -> JSONValue {
        func time(_ date: Date) -> JSONValue { .string(date.formatted(.iso8601)) }
        let state = batch.state == "finalizing" ? "BATCH_STATE_RUNNING" : batch.state
        let done = !["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"].contains(state)
        var metadata: [String: JSONValue] = [
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "name": .string(batch.id), "model": .string(batch.model), "displayName": .string(batch.displayName),
            "inputConfig": .object(["fileName": .string(batch.inputFile)]), "state": .string(state),
            "createTime": time(batch.createTime), "updateTime": time(batch.updateTime),
            "batchStats": .object([
                "requestCount": .string("\(batch.requests)"),
                "successfulRequestCount": .string("\(batch.succeeded)"),
                "failedRequestCount": .string("\(batch.failed)"),
                "pendingRequestCount": .string(done ? "0" : "\(batch.requests)"),
            ]),
        ]
        if let end = batch.endTime { metadata["endTime"] = time(end) }
        var operation: [String: JSONValue] = ["name": .string(batch.id), "metadata": .object(metadata)]
        if let file = batch.responsesFile {
            metadata["output"] = .object(["responsesFile": .string(file)])
            operation["metadata"] = .object(metadata)
            operation["response"] = .object([
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput",
                "responsesFile": .string(file),
            ])
        }
        if done { operation["done"] = true }
        return .object(operation)
    }

    private static func file(_ name: String, displayName: String?, bytes: Int) -> JSONValue {
        let now = JSONValue.string(Date().formatted(.iso8601))
        return .object([
            "name": .string(name), "displayName": displayName.map(JSONValue.string) ?? .null,
            "mimeType": "application/jsonl", "sizeBytes": .string("\(bytes)"), "createTime": now, "updateTime": now,
            "expirationTime": .string(Date().addingTimeInterval(48 * 3600).formatted(.iso8601)),
            "uri": .string("https://generativelanguage.googleapis.com/v1beta/\(name)"), "state": "ACTIVE",
            "source": "UPLOADED",
        ])
    }

    private static func line(_ members: [String: JSONValue]) -> Data {
        Data((JSONValue.object(members).jsonText + "\n").utf8)
    }

    /// An error as Google writes it, the same as the mock's online Gemini errors.
    static func error(_ kind: MockWireFormat.ErrorKind, _ message: String) -> (status: Int, body: JSONValue) {
        MockWireFormat.gemini.error(kind, message: message)
    }
}
