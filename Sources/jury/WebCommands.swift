import ArgumentParser
import Foundation
import HTTPTypes
import JuryStore
import JuryTelemetry
import JuryWeb

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the review and monitoring web app; until SIGTERM or SIGINT.",
        discussion: """
            Pages: every run's progress, rates, cost and judges' health, refreshed live; each run's \
            review queue, where reviewers label the disagreements one at a time (keys 1-9, s to skip, \
            u to undo); and its last calibration. Also /metrics, /healthz and /readyz.

            Nobody gets in without a token: `jury reviewer add NAME` makes one. The process keeps no \
            state of its own: run as many replicas as you like behind one address. Put it behind a \
            proxy that speaks HTTPS, and give --secure-cookies (or have the proxy send \
            X-Forwarded-Proto: https).
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The port to listen on (0 picks a free one).") var port = 8080
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "Seconds a reviewer holds an example before it goes back to the queue.") var leaseSeconds = 600
    @Option(help: "Hours a sign-in lasts.") var sessionHours = 12.0
    @Option(help: "Connections to PostgreSQL this process may open.") var connections = 4
    @Flag(help: "Send the session cookie over HTTPS only.") var secureCookies = false
    @Option(
        help: """
            Behind a proxy: the header it puts the client's address in (X-Forwarded-For, X-Real-IP). \
            Failed sign-ins are limited per address; without this every client shares the proxy's.
            """)
    var clientAddressHeader: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (10...86400).contains(leaseSeconds) else {
            throw ValidationError("--lease-seconds must be between 10 and 86400")
        }
        guard sessionHours > 0, sessionHours <= 24 * 30 else {
            throw ValidationError("--session-hours must be more than 0 and at most 720")
        }
        guard (1...64).contains(connections) else { throw ValidationError("--connections must be between 1 and 64") }
        if let clientAddressHeader, HTTPField.Name(clientAddressHeader) == nil {
            throw ValidationError("--client-address-header '\(clientAddressHeader)' is not a header name")
        }
    }

    func run() async throws {
        let logger = db.makeLogger("jury.serve")
        var settings = WebServer.Settings()
        settings.leaseSeconds = leaseSeconds
        settings.sessionSeconds = Int(sessionHours * 3600)
        settings.connections = connections
        settings.secureCookies = secureCookies
        settings.clientAddressHeader = clientAddressHeader
        let server = WebServer(
            database: db.target, settings: settings, registry: TelemetryServer.bootstrap(), logger: logger)
        let host = host
        let service = server.service(host: host, port: port) { port in
            FileHandle.standardOutput.write(Data("serving on http://\(host):\(port)/\n".utf8))
        }
        try await runUntilSignalled([service], maximumShutdownSeconds: 10, logger: logger)
    }
}

struct ReviewerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reviewer", abstract: "Add, list or disable the people who sign in to `jury serve`.",
        subcommands: [Add.self, List.self, Token.self, Disable.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a reviewer and print their sign-in token, once.",
            discussion: """
                Roles: viewer sees the dashboards; reviewer also labels examples; owner also runs \
                calibrations. The token is printed once and only its SHA-256 is stored: hand it over \
                privately; a lost one is replaced with `jury reviewer token NAME`.
                """)
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The reviewer's name (letters, digits, '.', '_', '@', '-').") var name: String
        @Option(help: "viewer, reviewer or owner.") var role = "reviewer"

        func validate() throws {
            guard ReviewerRole(rawValue: role) != nil else {
                throw ValidationError("--role must be viewer, reviewer or owner, not '\(role)'")
            }
        }

        func run() async throws {
            let role = ReviewerRole(rawValue: role) ?? .reviewer
            let store = try await db.connect("jury reviewer", logger: db.makeLogger("jury.reviewer"))
            let token = AccessToken.make(prefix: "jury_")
            let reviewer = try await store.addReviewer(name: name, role: role, tokenHash: AccessToken.hash(token))
            print("added \(reviewer.name) (\(reviewer.role.rawValue)); their sign-in token, shown only now:")
            print(token)
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a reviewer a new token (the old one, and every sign-in made with it, stop working).")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The reviewer's name.") var name: String

        func run() async throws {
            let store = try await db.connect("jury reviewer", logger: db.makeLogger("jury.reviewer"))
            let token = AccessToken.make(prefix: "jury_")
            try await store.replaceReviewerToken(name: name, tokenHash: AccessToken.hash(token))
            print("new sign-in token for \(name), shown only now:")
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the reviewers and their roles.")
        @OptionGroup var db: DatabaseOptions

        func run() async throws {
            let store = try await db.connect("jury reviewer", logger: db.makeLogger("jury.reviewer"))
            let reviewers = try await store.reviewers()
            if reviewers.isEmpty { print("no reviewers; add one with `jury reviewer add NAME`") }
            for reviewer in reviewers {
                print("\(reviewer.name)\t\(reviewer.role.rawValue)\(reviewer.disabled ? "\tdisabled" : "")")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Stop a reviewer signing in; their sessions end, and the examples they held go back to the queue.",
            discussion: "Their answers stay. `jury reviewer token NAME` lets them in again.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The reviewer's name.") var name: String

        func run() async throws {
            let store = try await db.connect("jury reviewer", logger: db.makeLogger("jury.reviewer"))
            try await store.disableReviewer(name: name)
            print("disabled \(name)")
        }
    }
}
