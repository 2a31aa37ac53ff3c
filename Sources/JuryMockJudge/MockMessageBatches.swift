import Foundation
import JuryDomain
import Synchronization

/// Anthropic's Message Batches, as the mock judge serves them: a batch created with its
/// requests inline, `in_progress` until `complete_seconds` have passed, then `ended`, its results
/// (succeeded, errored, expired, canceled per request) at its `results_url`, in Anthropic's line
/// format. Every `expire_every`-th batch ends with its second half expired; a cancelled batch
/// ends with every request canceled. `junk_lines` adds the same junk as to OpenAI's files.
final class MockMessageBatches: Sendable {
    struct Batch {
        let id: String
        /// Each request's custom id and params, as sent.
        let requests: [(customID: JSONValue, params: JSONValue)]
        let createdAt: Date
        let created: ContinuousClock.Instant
        let credential: String?
        let version: String?
        let expires: Bool
        /// Where the results are served, on the host the batch was created through.
        let resultsURL: String
        var status = "in_progress"
        var cancelInitiatedAt: Date?
        var endedAt: Date?
        var results: Data?
        var counts: [String: Int] = [:]
    }

    private struct State {
        var batches: [String: Batch] = [:]
        var order: [String] = []
        var next = 0
        var requests = 0
    }

    private let state = Mutex(State())
    private let settings: MockJudgeConfig.Batches

    init(settings: MockJudgeConfig.Batches) {
        self.settings = settings
    }

    var counts: (batches: Int, requests: Int) { state.withLock { ($0.batches.count, $0.requests) } }

    /// POST /v1/messages/batches.
    func create(body: Data, credential: String?, version: String?, host: String) -> (Int, JSONValue) {
        guard let request = try? JSONValue.parseStrict(body), case .array(let items)? = request["requests"],
            !items.isEmpty
        else { return Self.invalid("requests: Field required, a list of at least one request") }
        var requests: [(JSONValue, JSONValue)] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let customID = item["custom_id"]?.text, let params = item["params"] else {
                return Self.invalid("requests.\(index): custom_id and params are required")
            }
            guard (try? /[a-zA-Z0-9_-]{1,64}/.wholeMatch(in: customID)) != nil else {
                return Self.invalid("requests.\(index).custom_id: must be 1 to 64 letters, digits, '_' or '-'")
            }
            guard seen.insert(customID).inserted else {
                return Self.invalid("requests.\(index).custom_id: '\(customID)' is used twice in this batch")
            }
            requests.append((.string(customID), params))
        }
        return state.withLock { state in
            state.next += 1
            let id = "msgbatch_mock\(String(format: "%08d", state.next))"
            let expires = settings.expireEvery.map { $0 > 0 && (state.batches.count + 1) % $0 == 0 } ?? false
            let batch = Batch(
                id: id, requests: requests, createdAt: Date(), created: .now, credential: credential, version: version,
                expires: expires, resultsURL: "http://\(host)/v1/messages/batches/\(id)/results")
            state.batches[id] = batch
            state.order.append(id)
            return (200, Self.object(batch))
        }
    }

    /// GET /v1/messages/batches/{id}: ends the batch first when its time has come.
    func retrieve(_ id: String, respond: MockBatches.Responder) async -> (Int, JSONValue) {
        await finishIfDue(id, respond: respond)
        return state.withLock { state in
            guard let batch = state.batches[id] else { return Self.notFound(id) }
            return (200, Self.object(batch))
        }
    }

    /// GET /v1/messages/batches: newest first.
    func list(limit: Int, afterID: String?) -> (Int, JSONValue) {
        state.withLock { state in
            var newest = Array(state.order.reversed())
            if let afterID, let index = newest.firstIndex(of: afterID) { newest = Array(newest[(index + 1)...]) }
            let page = newest.prefix(max(1, min(limit, 100)))
            return (
                200,
                .object([
                    "data": .array(page.compactMap { state.batches[$0] }.map(Self.object)),
                    "has_more": .bool(newest.count > page.count),
                    "first_id": page.first.map(JSONValue.string) ?? .null,
                    "last_id": page.last.map(JSONValue.string) ?? .null,
                ])
            )
        }
    }

    /// POST /v1/messages/batches/{id}/cancel: a batch in progress ends with its requests canceled.
    func cancel(_ id: String) -> (Int, JSONValue) {
        state.withLock { state in
            guard var batch = state.batches[id] else { return Self.notFound(id) }
            if batch.status == "in_progress" {
                batch.status = "canceling"
                batch.cancelInitiatedAt = Date()
            }
            state.batches[id] = batch
            return (200, Self.object(batch))
        }
    }

    /// GET /v1/messages/batches/{id}/results: JSON Lines, once the batch has ended.
    func results(of id: String) -> Data? {
        state.withLock { $0.batches[id]?.results }
    }

    private func finishIfDue(_ id: String, respond: MockBatches.Responder) async {
        let claimed: Batch? = state.withLock { state in
            guard var batch = state.batches[id] else { return nil }
            if batch.status == "canceling" {
                var results = Data()
                for request in batch.requests {
                    results.append(Self.line(request.customID, ["type": "canceled"]))
                }
                batch.results = results
                batch.counts = ["canceled": batch.requests.count]
                batch.status = "ended"
                batch.endedAt = Date()
                state.batches[id] = batch
                return nil
            }
            guard batch.status == "in_progress",
                ContinuousClock.now - batch.created >= .seconds(settings.completeSeconds ?? 2)
            else { return nil }
            batch.status = "finalizing"  // the mock's own, while it answers: no one else ends it
            state.batches[id] = batch
            return batch
        }
        guard let batch = claimed else { return }
        var results = Data()
        var counts: [String: Int] = [:]
        for (index, request) in batch.requests.enumerated() {
            if batch.expires, index >= batch.requests.count / 2 {
                results.append(Self.line(request.customID, ["type": "expired"]))
                counts["expired", default: 0] += 1
                continue
            }
            let reply = await respond(Data(request.params.jsonText.utf8), batch.credential, batch.version)
            if reply.status == 200 {
                results.append(Self.line(request.customID, ["type": "succeeded", "message": reply.body]))
                counts["succeeded", default: 0] += 1
            } else {
                results.append(Self.line(request.customID, ["type": "errored", "error": reply.body]))
                counts["errored", default: 0] += 1
            }
        }
        if settings.junkLines == true, let first = batch.requests.first {
            results.append(contentsOf: "this line is not JSON\n".utf8)
            results.append(Self.line(.string("job-999999999-claim-1"), ["type": "expired"]))
            results.append(Self.line(first.customID, ["type": "expired"]))
        }
        state.withLock { state in
            guard var stored = state.batches[id] else { return }
            stored.results = results
            stored.counts = counts
            stored.status = "ended"
            stored.endedAt = Date()
            state.batches[id] = stored
            state.requests += batch.requests.count
        }
    }

    private static func object(_ batch: Batch) -> JSONValue {
        func time(_ date: Date?) -> JSONValue { date.map { .string($0.formatted(.iso8601)) } ?? .null }
        let ended = batch.status == "ended"
        let processing = ended ? 0 : batch.requests.count
        return .object([
            "id": .string(batch.id), "type": "message_batch",
            "processing_status": .string(batch.status == "finalizing" ? "in_progress" : batch.status),
            "request_counts": .object([
                "processing": .integer(Int64(processing)),
                "succeeded": .integer(Int64(batch.counts["succeeded"] ?? 0)),
                "errored": .integer(Int64(batch.counts["errored"] ?? 0)),
                "canceled": .integer(Int64(batch.counts["canceled"] ?? 0)),
                "expired": .integer(Int64(batch.counts["expired"] ?? 0)),
            ]),
            "created_at": time(batch.createdAt), "expires_at": time(batch.createdAt.addingTimeInterval(86_400)),
            "ended_at": time(batch.endedAt), "cancel_initiated_at": time(batch.cancelInitiatedAt),
            "archived_at": .null, "results_url": ended ? .string(batch.resultsURL) : .null,
        ])
    }

    private static func line(_ customID: JSONValue, _ result: [String: JSONValue]) -> Data {
        Data((JSONValue.object(["custom_id": customID, "result": .object(result)]).jsonText + "\n").utf8)
    }

    private static func invalid(_ message: String) -> (Int, JSONValue) {
        (
            400,
            .object([
                "type": "error", "error": .object(["type": "invalid_request_error", "message": .string(message)]),
            ])
        )
    }

    private static func notFound(_ id: String) -> (Int, JSONValue) {
        (
            404,
            .object([
                "type": "error",
                "error": .object(["type": "not_found_error", "message": .string("No batch found with id \(id)")]),
            ])
        )
    }
}
