import Foundation
import JuryDomain
import Synchronization

/// OpenAI's Batch API, as the mock judge serves it: files uploaded with purpose `batch`,
/// batches created on them, run after `complete_seconds` by the same judges as online calls,
/// and their output and error files in OpenAI's line formats.
///
/// A batch ends when it is first read after its time: every line is answered then, each as an
/// online call would be (errors, refusals and bad requests included), without latency. Every
/// `expire_every`-th batch expires instead, with only its first half answered. With `junk_lines`,
/// each output file ends with a line that is not JSON, an answer to a custom id never sent and
/// its first answer again, as a faulty provider might write.
final class MockBatches: Sendable {
    struct Batch {
        let id: String
        let inputFileID: String
        let metadata: JSONValue
        let createdAt: Int64
        let created: ContinuousClock.Instant
        let credential: String?
        let expires: Bool
        var status = "validating"
        var outputFileID: String?
        var errorFileID: String?
        var total = 0
        var completed = 0
        var failed = 0
    }

    private struct State {
        var files: [String: Data] = [:]
        var batches: [String: Batch] = [:]
        /// Newest last.
        var order: [String] = []
        var next = 0
        var requests = 0

        mutating func newID(_ prefix: String) -> String {
            next += 1
            return "\(prefix)_mock\(String(format: "%08d", next))"
        }
    }

    private let state = Mutex(State())
    private let settings: MockJudgeConfig.Batches

    init(settings: MockJudgeConfig.Batches) {
        self.settings = settings
    }

    /// Batches created, and requests answered in them.
    var counts: (batches: Int, requests: Int) { state.withLock { ($0.batches.count, $0.requests) } }

    /// The answer to one request: what the server would reply to it online.
    typealias Responder =
        @Sendable (_ body: Data, _ credential: String?, _ version: String?) async -> (
            status: Int, body: JSONValue
        )

    // MARK: - Files

    /// POST /v1/files: a multipart form with `purpose` and `file`.
    func upload(body: Data, contentType: String?) -> (Int, JSONValue) {
        guard let boundary = contentType?.components(separatedBy: "boundary=").dropFirst().first,
            !boundary.isEmpty
        else { return Self.invalid("the upload must be multipart/form-data with a boundary") }
        let parts = Self.formParts(body, boundary: boundary.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
        guard parts["purpose"].map({ String(decoding: $0, as: UTF8.self) }) == "batch" else {
            return Self.invalid("purpose must be 'batch'")
        }
        guard let file = parts["file"], !file.isEmpty else { return Self.invalid("the form has no file") }
        let id = state.withLock { state in
            let id = state.newID("file")
            state.files[id] = file
            return id
        }
        return (
            200,
            .object([
                "id": .string(id), "object": "file", "bytes": .integer(Int64(file.count)),
                "created_at": .integer(Self.now()), "filename": "batch.jsonl", "purpose": "batch",
            ])
        )
    }

    /// GET /v1/files/{id}/content.
    func content(of fileID: String) -> Data? {
        state.withLock { $0.files[fileID] }
    }

    // MARK: - Batches

    /// POST /v1/batches.
    func create(body: Data, credential: String?) -> (Int, JSONValue) {
        guard let request = try? JSONValue.parseStrict(body) else { return Self.invalid("the body is not JSON") }
        guard request["endpoint"]?.text == "/v1/chat/completions" else {
            return Self.invalid("endpoint must be /v1/chat/completions")
        }
        guard request["completion_window"]?.text == "24h" else { return Self.invalid("completion_window must be 24h") }
        guard let fileID = request["input_file_id"]?.text else { return Self.invalid("input_file_id is required") }
        return state.withLock { state in
            guard state.files[fileID] != nil else {
                return (404, Self.errorBody("No such File object: \(fileID)", type: "invalid_request_error"))
            }
            let id = state.newID("batch")
            let expires = settings.expireEvery.map { $0 > 0 && (state.batches.count + 1) % $0 == 0 } ?? false
            let batch = Batch(
                id: id, inputFileID: fileID, metadata: request["metadata"] ?? .null, createdAt: Self.now(),
                created: .now, credential: credential, expires: expires)
            state.batches[id] = batch
            state.order.append(id)
            return (200, Self.object(batch))
        }
    }

    /// GET /v1/batches/{id}: ends the batch first when its time has come.
    func retrieve(_ id: String, respond: Responder) async -> (Int, JSONValue) {
        await finishIfDue(id, respond: respond)
        return state.withLock { state in
            guard let batch = state.batches[id] else {
                return (404, Self.errorBody("No batch found with id '\(id)'.", type: "invalid_request_error"))
            }
            return (200, Self.object(batch))
        }
    }

    /// GET /v1/batches: newest first, `limit` a page, after the id `after`.
    func list(limit: Int, after: String?) -> (Int, JSONValue) {
        state.withLock { state in
            var newest = Array(state.order.reversed())
            if let after, let index = newest.firstIndex(of: after) { newest = Array(newest[(index + 1)...]) }
            let page = newest.prefix(max(1, min(limit, 100)))
            let data = page.compactMap { state.batches[$0] }.map(Self.object)
            return (
                200,
                .object([
                    "object": "list", "data": .array(data), "first_id": page.first.map(JSONValue.string) ?? .null,
                    "last_id": page.last.map(JSONValue.string) ?? .null, "has_more": .bool(newest.count > page.count),
                ])
            )
        }
    }

    /// POST /v1/batches/{id}/cancel: a batch not yet ended is cancelled, with nothing answered.
    func cancel(_ id: String) -> (Int, JSONValue) {
        state.withLock { state in
            guard var batch = state.batches[id] else {
                return (404, Self.errorBody("No batch found with id '\(id)'.", type: "invalid_request_error"))
            }
            if ["validating", "in_progress"].contains(batch.status) { batch.status = "cancelled" }
            state.batches[id] = batch
            return (200, Self.object(batch))
        }
    }

    private func finishIfDue(_ id: String, respond: Responder) async {
        let claimed: (Batch, Data)? = state.withLock { state in
            guard var batch = state.batches[id], ["validating", "in_progress"].contains(batch.status) else {
                return nil
            }
            guard ContinuousClock.now - batch.created >= .seconds(settings.completeSeconds ?? 2) else {
                batch.status = "in_progress"
                state.batches[id] = batch
                return nil
            }
            batch.status = "finalizing"
            state.batches[id] = batch
            return (batch, state.files[batch.inputFileID] ?? Data())
        }
        guard let (batch, input) = claimed else { return }
        var output = Data()
        var errors = Data()
        var completed = 0
        var failed = 0
        let lines = input.split(separator: UInt8(ascii: "\n")).filter { !$0.isEmpty }
        for (index, line) in lines.enumerated() {
            let request = try? JSONValue.parseStrict(line)
            let customID = request?["custom_id"] ?? .null
            let requestID = "batch_req_\(batch.id)_\(index)"
            if batch.expires, index >= lines.count / 2 {
                errors.append(
                    Self.line([
                        "id": .string(requestID), "custom_id": customID, "response": .null,
                        "error": .object([
                            "code": "batch_expired",
                            "message": "This request could not be executed before the completion window expired.",
                        ]),
                    ]))
                failed += 1
                continue
            }
            guard let body = request?["body"] else {
                errors.append(
                    Self.line([
                        "id": .string(requestID), "custom_id": customID, "response": .null,
                        "error": .object(["code": "invalid_request", "message": "The line has no body."]),
                    ]))
                failed += 1
                continue
            }
            let reply = await respond(Data(body.jsonText.utf8), batch.credential, nil)
            let result = Self.line([
                "id": .string(requestID), "custom_id": customID,
                "response": .object([
                    "status_code": .integer(Int64(reply.status)), "request_id": .string("req_\(batch.id)_\(index)"),
                    "body": reply.body,
                ]),
                "error": .null,
            ])
            if reply.status == 200 {
                output.append(result)
                completed += 1
            } else {
                errors.append(result)
                failed += 1
            }
        }
        if settings.junkLines == true, let first = output.split(separator: UInt8(ascii: "\n")).first {
            let stranger = Data(first).replacing(
                Data("\"custom_id\":\"".utf8), with: Data("\"custom_id\":\"job-999999999-claim-1\",\"was\":\"".utf8))
            output.append(contentsOf: "this line is not JSON\n".utf8)
            output.append(stranger + Data("\n".utf8))
            output.append(Data(first) + Data("\n".utf8))
        }
        state.withLock { state in
            guard var stored = state.batches[id] else { return }
            stored.total = lines.count
            stored.completed = completed
            stored.failed = failed
            if !output.isEmpty {
                let fileID = state.newID("file")
                state.files[fileID] = output
                stored.outputFileID = fileID
            }
            if !errors.isEmpty {
                let fileID = state.newID("file")
                state.files[fileID] = errors
                stored.errorFileID = fileID
            }
            stored.status = batch.expires ? "expired" : "completed"
            state.batches[id] = stored
            state.requests += completed + failed
        }
    }

    // MARK: - The wire format

    private static func object(_ batch: Batch) -> JSONValue {
        .object([
            "id": .string(batch.id), "object": "batch", "endpoint": "/v1/chat/completions", "errors": .null,
            "input_file_id": .string(batch.inputFileID), "completion_window": "24h", "status": .string(batch.status),
            "output_file_id": batch.outputFileID.map(JSONValue.string) ?? .null,
            "error_file_id": batch.errorFileID.map(JSONValue.string) ?? .null,
            "created_at": .integer(batch.createdAt), "expires_at": .integer(batch.createdAt + 86_400),
            "request_counts": .object([
                "total": .integer(Int64(batch.total)), "completed": .integer(Int64(batch.completed)),
                "failed": .integer(Int64(batch.failed)),
            ]),
            "metadata": batch.metadata,
        ])
    }

    private static func line(_ members: [String: JSONValue]) -> Data {
        Data((JSONValue.object(members).jsonText + "\n").utf8)
    }

    private static func invalid(_ message: String) -> (Int, JSONValue) {
        (400, errorBody(message, type: "invalid_request_error"))
    }

    private static func errorBody(_ message: String, type: String) -> JSONValue {
        .object(["error": .object(["message": .string(message), "type": .string(type), "param": .null, "code": .null])])
    }

    private static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// The parts of a multipart form, by name.
    static func formParts(_ body: Data, boundary: String) -> [String: Data] {
        let delimiter = Data("--\(boundary)".utf8)
        var parts: [String: Data] = [:]
        var rest = body[...]
        while let start = rest.range(of: delimiter) {
            rest = rest[start.upperBound...]
            guard let next = rest.range(of: delimiter) else { break }
            let part = rest[rest.startIndex..<next.lowerBound]
            if let split = part.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: part[part.startIndex..<split.lowerBound], as: UTF8.self)
                var content = part[split.upperBound...]
                if content.suffix(2) == Data("\r\n".utf8) { content = content.dropLast(2) }
                if let name = head.firstMatch(of: /name="([^"]*)"/)?.1 { parts[String(name)] = Data(content) }
            }
            rest = rest[next.lowerBound...]
        }
        return parts
    }
}
