import AsyncHTTPClient
import Foundation
import JuryDomain
import JuryStore
import JuryWeb
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle

/// The web app's pages over HTTP against a database (the scale test's, at its end): a
/// `jury serve` in this process, an owner signed in as a browser would, and each page's time
/// from request to the last byte, median of five.
enum PageTimings {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func measure(database: Database, run: StoredRun, store: Store, logger: Logger) async throws -> [(
        page: String, milliseconds: Double
    )] {
        let token = AccessToken.make(prefix: "jury_")
        let name = "bench-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await store.addReviewer(name: name, role: .owner, tokenHash: AccessToken.hash(token))
        let server = WebServer(
            database: database, settings: WebServer.Settings(), registry: PrometheusCollectorRegistry(),
            logger: logger)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let service = server.service(host: "127.0.0.1", port: 0) { portContinuation.yield($0) }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [], logger: logger))
        let serving = Task { try await group.run() }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        let timings: Result<[(page: String, milliseconds: Double)], any Error>
        var iterator = ports.makeAsyncIterator()
        if let port = await iterator.next() {
            do {
                timings = .success(
                    try await timePages(base: "http://127.0.0.1:\(port)", run: run.name, token: token, client: client))
            } catch {
                timings = .failure(error)
            }
        } else {
            timings = .failure(Failure(description: "the web app did not start"))
        }
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
        try? await store.disableReviewer(name: name)
        return try timings.get()
    }

    private static func timePages(base: String, run: String, token: String, client: HTTPClient) async throws -> [(
        page: String, milliseconds: Double
    )] {
        let runPath = WebServer.runPath(run)
        // Signing in: the form's token and its cookie, then the session's cookie.
        let form = try await send(client, base + "/signin")
        let signin = try cookie("jury_signin", form)
        let posted = try await send(
            client, base + "/signin", method: .POST, cookie: "jury_signin=\(signin)",
            form: ["csrf": try field("csrf", form), "token": token, "next": "/"])
        let session = "jury_session=" + (try cookie("jury_session", posted))

        var timings: [(String, Double)] = []
        for (page, path) in [
            ("/", "/"), ("/runs/RUN", runPath), ("/runs/RUN/live", runPath + "/live"),
            ("/runs/RUN/review", runPath + "/review"), ("/runs/RUN/adjudicate", runPath + "/adjudicate"),
            ("/runs/RUN/calibration", runPath + "/calibration"),
        ] {
            timings.append(
                (page, try await median { _ = try await send(client, base + path, cookie: session, expect: .ok) }))
        }
        // An answer: the page holds an example; the answer is the POST, its redirect not followed.
        timings.append(
            (
                "answer (POST /runs/RUN/review)",
                try await median {
                    let page = try await send(client, base + runPath + "/review", cookie: session, expect: .ok)
                    let fields = [
                        "csrf": try field("csrf", page), "action": "answer", "example": try field("example", page),
                        "lease": try field("lease", page), "label": "valid",
                    ]
                    let started = ContinuousClock.now
                    _ = try await send(
                        client, base + runPath + "/review", method: .POST, cookie: session, form: fields,
                        expect: .seeOther)
                    return ContinuousClock.now - started
                }
            ))
        return timings
    }

    /// Median of five timings of `body` (the whole call).
    private static func median(_ body: () async throws -> Void) async throws -> Double {
        try await median { () async throws -> Duration in
            let started = ContinuousClock.now
            try await body()
            return ContinuousClock.now - started
        }
    }

    /// Median of five durations `body` measures itself.
    private static func median(_ body: () async throws -> Duration) async throws -> Double {
        var times: [Double] = []
        for _ in 0..<5 {
            let elapsed = try await body()
            times.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        return times.sorted()[2]
    }

    private struct Page {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: String
    }

    private static func send(
        _ client: HTTPClient, _ url: String, method: HTTPMethod = .GET, cookie: String? = nil,
        form: [String: String]? = nil, expect: HTTPResponseStatus? = nil
    ) async throws -> Page {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        if let form {
            let body = form.map { key, value in "\(key)=\(WebServer.percentEncoded(value))" }.joined(separator: "&")
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = String(buffer: try await response.body.collect(upTo: 16 << 20))
        if let expect, response.status != expect {
            throw Failure(description: "\(method) \(url): \(response.status), expected \(expect): \(body.prefix(300))")
        }
        return Page(status: response.status, headers: response.headers, body: body)
    }

    private static func cookie(_ name: String, _ page: Page) throws -> String {
        for header in page.headers["Set-Cookie"] where header.hasPrefix(name + "=") {
            return String(header.dropFirst(name.count + 1).prefix { $0 != ";" })
        }
        throw Failure(description: "no \(name) cookie (status \(page.status))")
    }

    /// The value of the first hidden field `name` on the page.
    private static func field(_ name: String, _ page: Page) throws -> String {
        guard let start = page.body.range(of: #"name="\#(name)" value=""#) else {
            throw Failure(description: "no field \(name) on the page (status \(page.status))")
        }
        return String(page.body[start.upperBound...].prefix { $0 != "\"" })
    }
}
