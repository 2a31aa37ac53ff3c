import AsyncHTTPClient
import Foundation
import JuryDomain
import NIOCore
import NIOHTTP1

/// A provider's batch endpoints as a batch judge calls them: JSON answers read strictly, errors
/// in the judge's words, the key only in headers and never in a message.
struct BatchAPI {
    let client: HTTPClient
    let config: JudgeConfig
    let format: any ProviderFormat
    let apiKey: String?
    /// The API's base URL, without a trailing slash.
    let base: String

    init(config: JudgeConfig, client: HTTPClient, format: any ProviderFormat, environment: [String: String]) throws {
        self.client = client
        self.config = config
        self.format = format
        self.apiKey = try HTTPJudge.apiKey(for: config, environment: environment)
        self.base = config.baseURL.withoutTrailingSlash
    }

    /// A request's entry in a batch: a JSON object of its id under `idKey`, then `members` (JSON
    /// members, each ending in a comma), then the request's body under `bodyKey`, its bytes as
    /// they are (already JSON: not parsed and written again).
    static func entry(idKey: String, id: String, members: String = "", bodyKey: String, body: Data) -> Data {
        var entry = Data("{\(JSONValue.string(idKey).jsonText):\(JSONValue.string(id).jsonText),\(members)".utf8)
        entry.append(contentsOf: "\(JSONValue.string(bodyKey).jsonText):".utf8)
        entry.append(body)
        entry.append(UInt8(ascii: "}"))
        return entry
    }

    /// The headers that carry the key (and the API version, where one is needed).
    var headers: [(String, String)] { format.headers(apiKey: apiKey) }

    /// Calls `path` under the base URL; the answer must be a JSON document with status 200.
    func send(
        _ method: HTTPMethod, _ path: String, body: HTTPClientRequest.Body? = nil,
        contentType: String = "application/json", uploading uploaded: Int = 0, what: String
    ) async throws -> JSONValue {
        let (_, data) = try await call(
            method, base + path, body: body, contentType: contentType, uploading: uploaded, what: what)
        guard let value = try? JSONValue.parseStrict(data) else { throw answerError("\(what): the answer is not JSON") }
        return value
    }

    /// Calls `url` with the key's headers and `extraHeaders`; the answer must have status 200.
    /// Returns its headers and body. A call `uploading` a batch's bytes is given a second more per
    /// megabyte: a batch of hundreds of megabytes takes minutes to go up on a slow link.
    func call(
        _ method: HTTPMethod, _ url: String, body: HTTPClientRequest.Body? = nil,
        contentType: String = "application/json", extraHeaders: [(String, String)] = [], uploading uploaded: Int = 0,
        what: String
    ) async throws -> (headers: HTTPHeaders, body: Data) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers + extraHeaders { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = body
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            let seconds = max(config.timeoutSeconds, 60) + Double(uploaded >> 20)
            response = try await client.execute(request, timeout: .seconds(Int64(seconds)))
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw JudgeError(.network, "judge \(config.name): \(what): \(redact("\(error)"))")
        }
        let data = Data(bytes.readableBytesView)
        guard response.status == .ok else {
            throw HTTPJudge.statusError(
                status: Int(response.status.code), headers: response.headers, body: data, config: config,
                format: format, endpoint: base, redact: redact)
        }
        return (response.headers, data)
    }

    /// Whether `url`, given by the provider, is on the API's own host: the key is sent nowhere else.
    func isOnAPIHost(_ url: String) -> Bool {
        guard let given = URL(string: url), let home = URL(string: base) else { return false }
        return given.scheme == home.scheme && given.host == home.host && given.port == home.port
    }

    /// Streams the results file at `url`, each line read by `read`: `receive` gets up to `chunk`
    /// results at a time, and `malformed` each line that is not one, with `file` named.
    func readResults(
        _ url: String, file: String, chunk: Int, malformed: (Int, String) -> Void,
        read: (Data) -> Result<BatchResult, JudgeError>, receive: ([BatchResult]) async throws -> Void
    ) async throws {
        try await download(url).readLines(chunk: chunk) { lines in
            var results: [BatchResult] = []
            for (number, line) in lines {
                switch read(line) {
                case .success(let result): results.append(result)
                case .failure(let problem): malformed(number, "\(file): \(problem.message)")
                }
            }
            try await receive(results)
        }
    }

    /// A results file at `url`, to be read as a stream.
    func download(_ url: String) -> ResultsDownload {
        ResultsDownload(client: client, url: url, headers: headers, judge: config.name, redact: redact)
    }

    /// A request the batch answered with an error, as the same error online: one mapping of
    /// statuses and bodies (a used-up quota halts the judge in a batch as it does online).
    func requestError(status: Int, body: Data) -> JudgeError {
        let error = HTTPJudge.statusError(
            status: status, headers: [:], body: body, config: config, format: format, endpoint: base, redact: redact)
        return JudgeError(error.code, error.message + " (a request in the batch)", answer: error.answer)
    }

    /// A batch's answer to one request, read as the same answer online would be.
    func answer(_ body: Data, labels: [String]) -> BatchResult.Outcome {
        do {
            return .answer(try format.parseAnswer(body, labels: labels, judge: config.name))
        } catch let error as JudgeError {
            return .failed(error)
        } catch {
            return .failed(JudgeError(.badAnswer, "judge \(config.name): \(error)"))
        }
    }

    func answerError(_ why: String) -> JudgeError {
        JudgeError(.server, "judge \(config.name): the batch API answered oddly: \(why)")
    }

    func redact(_ text: String) -> String { HTTPJudge.redact(text, key: apiKey) }
}
