import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import JuryDomain
import JuryRuntime
public import JuryStore
import JuryTelemetry
public import Logging
import NIOCore
public import Prometheus
public import ServiceLifecycle

/// `jury serve`: the review and monitoring web app. Stateless: every replica reads and writes
/// only PostgreSQL, so any number of them can stand behind one address.
///
/// Pages (signed in): `/` every run; `/runs/NAME` one run, refreshed live; `/runs/NAME/review`
/// the review queue (reviewers and owners); `/runs/NAME/adjudicate` the conflicts between
/// people (owners); `/runs/NAME/calibration` the last calibration (and, for owners, a new one). Also `/signin`, `/signout`, `/assets/…`, `/metrics`, `/healthz`,
/// `/readyz`.
///
/// Every write is a POST that carries the session's CSRF token; the session cookie is
/// HttpOnly and SameSite=Strict; failed sign-ins are limited per client address; every page
/// is sent with a Content-Security-Policy that allows no inline script or style, and every
/// value from the database is escaped (`HTML`).
public struct WebServer: Sendable {
    public struct Settings: Sendable {
        /// How long a reviewer holds an example before it goes back to the queue.
        public var leaseSeconds = 600
        /// How long a sign-in lasts.
        public var sessionSeconds = 12 * 3600
        /// Failed sign-ins a client address may make within `signinWindowSeconds`.
        public var signinFailuresAllowed = 10
        public var signinWindowSeconds = 900
        /// Marks the session cookie Secure (browsers then send it over HTTPS only); a request
        /// that came through a proxy with `X-Forwarded-Proto: https` gets it anyway.
        public var secureCookies = false
        /// Connections to PostgreSQL this process may open.
        public var connections = 4
        /// The header a proxy in front puts the client's address in (`X-Forwarded-For`,
        /// `X-Real-IP`); its last entry, the one the proxy added, is what sign-in attempts are
        /// counted by. Unset: the peer's address (behind a proxy, every client would share it).
        public var clientAddressHeader: String?

        public init() {}
    }

    static let sessionCookie = "jury_session"
    static let signinCookie = "jury_signin"

    let pool: StorePool
    let settings: Settings
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(database: Database, settings: Settings, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.pool = StorePool(database: database, size: settings.connections, logger: logger)
        self.settings = settings
        self.registry = registry
        self.logger = logger
    }

    static let metrics: [RuntimeMetrics.Metric] = [
        RuntimeMetrics.Metric(
            name: "jury_web_requests_total", help: "Requests the web app answered, by route and status code."),
        RuntimeMetrics.Metric(
            name: "jury_review_answers_total", help: "Labels reviewers gave through the web app, by run."),
    ]

    /// The server as a service; `onStart` receives the port it listens on (useful with port 0).
    public func service(host: String, port: Int, onStart: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service
    {
        let router = Router(context: WebContext.self)
        router.add(middleware: SecurityHeaders())
        router.get("assets/jury.css") { _, _ in Self.asset(Assets.stylesheet, type: "text/css; charset=utf-8") }
        router.get("assets/jury.js") { _, _ in Self.asset(Assets.script, type: "text/javascript; charset=utf-8") }
        router.get("healthz") { _, _ in Self.text("alive\n") }
        router.get("readyz") { _, _ in
            let ready = (try? await pool.with { try await $0.checkSchema() }) != nil
            return Self.text(
                ready ? "ready\n" : "the database is not reachable\n", status: ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: TelemetryServer.exposition(registry, metrics: Self.metrics)))
            )
        }
        router.get("signin") { request, context in await respond("signin", request) { try await signinForm(request) } }
        router.post("signin") { request, context in
            await respond("signin", request) { try await signIn(request, peer: context.client) }
        }
        router.post("signout") { request, _ in await respond("signout", request) { try await signOut(request) } }
        router.get("/") { request, _ in await respond("runs", request) { try await runsPage(request) } }
        router.get("live") { request, _ in
            await respond("runs_live", request) { try await runsPage(request, live: true) }
        }
        router.get("runs/:run") { request, context in
            await respond("run", request) { try await runPage(request, run: try Self.run(context)) }
        }
        router.get("runs/:run/live") { request, context in
            await respond("run_live", request) {
                try await runLive(request, run: try Self.run(context))
            }
        }
        for (path, adjudicate) in [("review", false), ("adjudicate", true)] {
            router.get("runs/:run/\(path)") { request, context in
                await respond(path, request) {
                    try await reviewPage(request, run: try Self.run(context), adjudicate: adjudicate)
                }
            }
            router.post("runs/:run/\(path)") { request, context in
                await respond("\(path)_answer", request) {
                    try await reviewAction(request, run: try Self.run(context), adjudicate: adjudicate)
                }
            }
        }
        router.get("runs/:run/calibration") { request, context in
            await respond("calibration", request) {
                try await calibrationPage(request, run: try Self.run(context))
            }
        }
        router.post("runs/:run/calibration") { request, context in
            await respond("calibrate", request) {
                try await calibrate(request, run: try Self.run(context))
            }
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "jury"),
            onServerRunning: { channel in onStart(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    // MARK: Pages

    /// Every run; `live`: only the part that refreshes itself.
    private func runsPage(_ request: Request, live: Bool = false) async throws -> Response {
        let session = try await signedIn(request)
        let (runs, report) = try await pool.with { store in
            (try await store.listRuns(), try await StatusReport.load(run: nil, from: store))
        }
        let fragment = RunPages.runs(runs, report: report)
        if live { return Self.page(fragment) }
        return Self.page(Layout.page(title: "Runs", session: session, RunPages.runsFrame(live: fragment)))
    }

    private func runPage(_ request: Request, run name: String) async throws -> Response {
        let session = try await signedIn(request)
        let live = try await liveFragment(run: name, session: session)
        return Self.page(
            Layout.page(
                title: "Run \(name)", session: session,
                RunPages.run(name: name, live: live, role: session.reviewer.role)))
    }

    private func runLive(_ request: Request, run name: String) async throws -> Response {
        let session = try await signedIn(request)
        return Self.page(try await liveFragment(run: name, session: session))
    }

    private func liveFragment(run name: String, session: ReviewerSession) async throws -> HTML {
        try await pool.with { store in
            let run = try await store.findRun(name)
            let report = try await StatusReport.load(run: name, from: store)
            let review = try await store.reviewProgress(run: run, reviewerID: session.reviewer.id)
            let minutes = try await store.votesPerMinute(run: name)
            let history = try await store.runHistory(run: name)
            let accounts = try await store.accountHolds()
            var holds: [String: Date] = [:]
            for judge in run.config.judges { holds[judge.name] = accounts[judge.limitKey] }
            return RunPages.live(
                name: name, report: report, review: review, minutes: minutes, history: history, holds: holds)
        }
    }

    /// The review queue, or (`adjudicate`, for owners) the conflicts between people.
    private func reviewPage(
        _ request: Request, run name: String, adjudicate: Bool, notice: Layout.Notice? = nil
    ) async throws -> Response {
        let session = try await signedIn(request)
        try Self.mayAct(session, adjudicate: adjudicate)
        let leaseSeconds = settings.leaseSeconds
        let (run, item, progress) = try await pool.with { store in
            let run = try await store.findRun(name)
            let item = try await store.claimReview(
                run: run, reviewerID: session.reviewer.id, leaseSeconds: leaseSeconds, adjudicate: adjudicate)
            let progress = try await store.reviewProgress(run: run, reviewerID: session.reviewer.id)
            return (run, item, progress)
        }
        return Self.page(
            Layout.page(
                title: (adjudicate ? "Adjudicate " : "Review ") + name, session: session, notice: notice,
                ReviewPage.page(run: run, item: item, progress: progress, session: session, adjudicate: adjudicate)),
            status: notice?.isError == true ? .conflict : .ok)
    }

    /// An answer, a skip or an undo; then back to the queue (a reload does not send it again).
    private func reviewAction(_ request: Request, run name: String, adjudicate: Bool) async throws -> Response {
        let session = try await signedIn(request)
        let form = try await Form(request)
        try checkCSRF(form, session: session)
        try Self.mayAct(session, adjudicate: adjudicate)
        let action = try form.required("action")
        let reviewerID = session.reviewer.id
        let leaseSeconds = settings.leaseSeconds
        do {
            try await pool.with { store in
                let run = try await store.findRun(name)
                switch action {
                case "answer", "skip":
                    guard let example = Int64(try form.required("example")) else {
                        throw WebError(.badRequest, "The form's example is not a number; reload the page.")
                    }
                    let lease = try form.required("lease")
                    if action == "answer" {
                        try await store.answerReview(
                            run: run, reviewerID: reviewerID, exampleID: example, leaseToken: lease,
                            label: try form.required("label"))
                        Counter(label: "jury_review_answers_total", dimensions: [("run", run.name)]).increment()
                    } else {
                        try await store.skipReview(
                            run: run, reviewerID: reviewerID, exampleID: example, leaseToken: lease)
                    }
                case "undo":
                    _ = try await store.undoLastReview(
                        run: run, reviewerID: reviewerID, leaseSeconds: leaseSeconds, adjudicated: adjudicate)
                default:
                    throw WebError(.badRequest, "'\(action.prefix(40))' is not something the review page does.")
                }
            }
        } catch let error as JuryError where error.code == .conflict || error.code == .invalidInput {
            // Said on the page, above the example the reviewer holds now.
            return try await reviewPage(
                request, run: name, adjudicate: adjudicate, notice: Layout.Notice(text: error.message, isError: true))
        }
        return Self.redirect(to: HTML.runPath(name, adjudicate ? "/adjudicate" : "/review"))
    }

    static func mayAct(_ session: ReviewerSession, adjudicate: Bool) throws {
        if adjudicate, !session.reviewer.role.mayCalibrate {
            throw WebError(
                .forbidden,
                "Only a run's owner may settle conflicts between people; your role is \(session.reviewer.role.rawValue)."
            )
        }
        guard session.reviewer.role.mayReview else { throw viewerMayNot("label examples") }
    }

    private func calibrationPage(_ request: Request, run name: String) async throws -> Response {
        let session = try await signedIn(request)
        let calibration = try await pool.with { store in
            try await store.lastCalibration(runID: try await store.findRun(name).id)
        }
        return Self.page(
            Layout.page(
                title: "Calibration \(name)", session: session,
                CalibrationPage.page(run: name, calibration: calibration, session: session)))
    }

    private func calibrate(_ request: Request, run name: String) async throws -> Response {
        let session = try await signedIn(request)
        let form = try await Form(request)
        try checkCSRF(form, session: session)
        guard session.reviewer.role.mayCalibrate else {
            throw WebError(
                .forbidden, "Only a run's owner may run a calibration; your role is \(session.reviewer.role.rawValue).")
        }
        _ = try await pool.with { store in
            try await Calibrator.calibrate(run: name, minCoverage: 0.5, minKappa: 0.75, store: store)
        }
        return Self.redirect(to: HTML.runPath(name, "/calibration"))
    }

    // MARK: Signing in and out

    private func signinForm(_ request: Request, notice: Layout.Notice? = nil, status: HTTPResponse.Status = .ok)
        async throws -> Response
    {
        // Forms before a session carry a token of their own, double-submitted in a cookie.
        let token = AccessToken.make()
        let next = Self.localPath(request.uri.queryParameters.get("next")) ?? "/"
        let body =
            HTML(raw: #"<h1>Sign in</h1><form class="signin" method="post" action="/signin">"#)
            + HTML(raw: #"<input type="hidden" name="csrf" value=""#) + HTML(token) + HTML(raw: #"">"#)
            + HTML(raw: #"<input type="hidden" name="next" value=""#) + HTML(next) + HTML(raw: #"">"#)
            + HTML(raw: #"<label for="token">Your token</label>"#)
            + HTML(
                raw:
                    #"<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>"#
            )
            + HTML(raw: #"<button type="submit">Sign in</button></form>"#)
            + HTML(raw: #"<p class="muted">An owner gives you a token with <code>jury reviewer add NAME</code>.</p>"#)
        var response = Self.page(Layout.page(title: "Sign in", session: nil, notice: notice, body), status: status)
        response.headers.append(
            HTTPField(name: .setCookie, value: cookie(Self.signinCookie, token, request: request, maxAge: 3600)))
        return response
    }

    private func signIn(_ request: Request, peer: String) async throws -> Response {
        let client = clientAddress(request, peer: peer)
        let form = try await Form(request)
        guard let posted = form["csrf"], let expected = Self.cookie(Self.signinCookie, in: request),
            AccessToken.equal(posted, expected)
        else {
            return try await signinForm(
                request, notice: Layout.Notice(text: "The sign-in form expired; please sign in again.", isError: true),
                status: .forbidden)
        }
        let window = settings.signinWindowSeconds
        let failures = try await pool.with { try await $0.signinFailures(client: client, seconds: window) }
        guard failures < settings.signinFailuresAllowed else {
            throw WebError(
                .tooManyRequests,
                "Too many failed sign-ins from your address; try again in \(window / 60) minutes.")
        }
        let token = form["token"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let sessionSeconds = settings.sessionSeconds
        let session = AccessToken.make()
        let signedIn = try await pool.with { store -> Bool in
            guard !token.isEmpty, let reviewer = try await store.reviewer(tokenHash: AccessToken.hash(token)) else {
                try await store.recordSigninFailure(client: client)
                return false
            }
            try await store.openSession(
                reviewerID: reviewer.id, tokenHash: AccessToken.hash(session), csrfToken: AccessToken.make(),
                seconds: sessionSeconds)
            return true
        }
        guard signedIn else {
            logger.notice("failed sign-in", metadata: ["client": "\(client)"])
            return try await signinForm(
                request, notice: Layout.Notice(text: "That token is not valid.", isError: true), status: .unauthorized)
        }
        var response = Self.redirect(to: Self.localPath(form["next"]) ?? "/")
        response.headers.append(
            HTTPField(
                name: .setCookie, value: cookie(Self.sessionCookie, session, request: request, maxAge: sessionSeconds)))
        response.headers.append(
            HTTPField(name: .setCookie, value: cookie(Self.signinCookie, "", request: request, maxAge: 0)))
        return response
    }

    private func signOut(_ request: Request) async throws -> Response {
        let session = try await signedIn(request)
        try checkCSRF(try await Form(request), session: session)
        if let token = Self.cookie(Self.sessionCookie, in: request) {
            try await pool.with { try await $0.closeSession(tokenHash: AccessToken.hash(token)) }
        }
        var response = Self.redirect(to: "/signin")
        response.headers.append(
            HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, "", request: request, maxAge: 0)))
        return response
    }

    /// The request's session, or a redirect to sign in.
    private func signedIn(_ request: Request) async throws -> ReviewerSession {
        if let token = Self.cookie(Self.sessionCookie, in: request),
            let session = try await pool.with({ try await $0.session(tokenHash: AccessToken.hash(token)) })
        {
            return session
        }
        let next = request.method == .get ? request.uri.path : "/"
        throw WebError(
            .seeOther, "Please sign in.",
            location: "/signin?next=" + HTML.percentEncoded(next))
    }

    /// Who is signing in, for the limit on failures: the proxy's word when one is trusted.
    private func clientAddress(_ request: Request, peer: String) -> String {
        guard let header = settings.clientAddressHeader, let name = HTTPField.Name(header),
            let value = request.headers[values: name].last?.split(separator: ",").last
        else { return peer }
        let address = value.trimmingCharacters(in: .whitespaces)
        return address.isEmpty ? peer : String(address.prefix(64))
    }

    private func checkCSRF(_ form: Form, session: ReviewerSession) throws {
        guard let posted = form["csrf"], AccessToken.equal(posted, session.csrfToken) else {
            throw WebError(
                .forbidden, "This form did not come from a page of this session; reload the page and try again.")
        }
    }

    private func cookie(_ name: String, _ value: String, request: Request, maxAge: Int) -> String {
        let secure = settings.secureCookies || request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https"
        return "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    static func cookie(_ name: String, in request: Request) -> String? {
        guard let value = request.cookies[name]?.value, !value.isEmpty else { return nil }
        return value
    }

    /// A path on this server, never another site: where sign-in may send a browser next.
    static func localPath(_ path: String?) -> String? {
        guard let path, path.hasPrefix("/"), !path.hasPrefix("//"), !path.contains("\\"),
            path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return nil }
        return path
    }

    /// The run a page is about, as its address names it (percent-decoded).
    static func run(_ context: WebContext) throws -> String {
        let segment = try context.parameters.require("run")
        return segment.removingPercentEncoding ?? segment
    }

    /// The address of a run's page (`page`: "/review", ...), as the app's links give it.
    public static func runPath(_ run: String, _ page: String = "") -> String { HTML.runPath(run, page) }

    /// Text percent-encoded as the app's addresses and forms are.
    public static func percentEncoded(_ text: String) -> String { HTML.percentEncoded(text) }

    static func viewerMayNot(_ what: String) -> WebError {
        WebError(.forbidden, "Your role (viewer) may see the dashboards but not \(what).")
    }

    // MARK: Responses

    /// Runs a page's handler; what it throws becomes a page that says what went wrong.
    private func respond(_ route: String, _ request: Request, _ handler: () async throws -> Response) async -> Response
    {
        let response: Response
        do {
            response = try await handler()
        } catch let error as WebError {
            if let location = error.location {
                response = Self.redirect(to: location)
            } else {
                response = Self.errorPage(error.status, error.message)
            }
        } catch let error as JuryError {
            let status: HTTPResponse.Status =
                switch error.code {
                case .notFound: .notFound
                case .invalidInput: .badRequest
                case .conflict: .conflict
                default: .internalServerError
                }
            response = Self.errorPage(status, error.message)
        } catch {
            logger.error("request failed", metadata: ["route": "\(route)", JuryMetadata.error: "\(error)"])
            response = Self.errorPage(
                .serviceUnavailable,
                "The database is not answering. Nothing you did was lost; try again in a moment.")
        }
        Counter(label: "jury_web_requests_total", dimensions: [("route", route), ("code", "\(response.status.code)")])
            .increment()
        return response
    }

    static func errorPage(_ status: HTTPResponse.Status, _ message: String) -> Response {
        page(
            Layout.page(
                title: status.reasonPhrase, session: nil,
                HTML(raw: "<h1>") + HTML(status.reasonPhrase)
                    + HTML(raw: #"</h1><p class="notice error" role="alert">"#)
                    + HTML(message) + HTML(raw: #"</p><p><a href="/">Back to the runs</a></p>"#)),
            status: status)
    }

    static func page(_ html: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.text)))
    }

    static func redirect(to location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// What every response carries: no script or style but the app's own files, no framing, no
/// sniffing of types, no referrer to other sites.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = WebContext

    func handle(_ request: Request, context: WebContext, next: (Request, WebContext) async throws -> Response)
        async throws -> Response
    {
        var response = try await next(request, context)
        response.headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return response
    }
}
