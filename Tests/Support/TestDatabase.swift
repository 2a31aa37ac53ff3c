public import Foundation
public import JuryBench
import JuryDomain
public import JuryPostgres
public import JuryStore
public import Logging
public import Testing

/// The PostgreSQL server the tests use, and a fresh migrated database per test.
///
/// With JURY_TEST_DATABASE_URL set, tests create their databases on that server (the role
/// needs CREATEDB). Without it, a throwaway server is started in a temporary directory with
/// deploy/local/postgres.sh and stopped when the test process exits.
public actor TestDatabase {
    static let shared = TestDatabase()
    public static let logger: Logger = {
        var logger = Logger(label: "jury.tests")
        logger.logLevel =
            ProcessInfo.processInfo.environment["JURY_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) }
            ?? .critical
        return logger
    }()

    private var serverURL: String?
    /// Starts the server (if needed) and migrates the template, once for all tests.
    private var prepared: Task<String, Error>?
    private var counter = 0

    /// The URL of the current test's database, given by the `.freshDatabase` trait.
    @TaskLocal static var current: String?

    /// The current test's database; the test must carry the `.freshDatabase` trait.
    public static var url: String {
        get throws {
            guard let current else { throw JuryError(.notFound, "this test needs the .freshDatabase trait") }
            return current
        }
    }

    /// A new database with the schema applied; dropped after `body`.
    public static func withFresh<T>(_ body: (String) async throws -> T) async throws -> T {
        let (url, name) = try await shared.createDatabase()
        do {
            let value = try await body(url)
            try? await shared.drop(name)
            return value
        } catch {
            try? await shared.drop(name)
            throw error
        }
    }

    func createDatabase() async throws -> (url: String, name: String) {
        if prepared == nil {
            prepared = Task { try await self.prepare() }
        }
        let server = try await prepared!.value
        counter += 1
        let name = "jury_test_\(getpid())_\(counter)"
        let admin = try await PostgresConnection.connect(Self.url(server, database: "postgres"), logger: Self.logger)
        try await admin.execute(script: "CREATE DATABASE \(name) TEMPLATE jury_test_template")
        return (Self.url(server, database: name), name)
    }

    private func prepare() async throws -> String {
        // Starting a server waits on a child process: off the cooperative pool, which the tests share.
        let server = try await startServerIfNeeded()
        let admin = try await PostgresConnection.connect(Self.url(server, database: "postgres"), logger: Self.logger)
        try await admin.execute(script: "DROP DATABASE IF EXISTS jury_test_template")
        try await admin.execute(script: "CREATE DATABASE jury_test_template")
        // Scoped so that its connection closes: CREATE DATABASE ... TEMPLATE needs the template idle.
        do {
            let template = try await Database(conninfo: Self.url(server, database: "jury_test_template"))
                .connect(applicationName: "jury tests", logger: Self.logger)
            try await template.migrate(logger: Self.logger)
        }
        return server
    }

    func drop(_ name: String) async throws {
        guard let serverURL else { return }
        let admin = try await PostgresConnection.connect(Self.url(serverURL, database: "postgres"), logger: Self.logger)
        try await admin.execute(script: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private func startServerIfNeeded() async throws -> String {
        if let serverURL { return serverURL }
        if let configured = ProcessInfo.processInfo.environment["JURY_TEST_DATABASE_URL"], !configured.isEmpty {
            serverURL = configured
            return configured
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jury-tests-\(getpid())").path
        // No port of our own: the script picks a free one and tries the next if another process
        // (a client's ephemeral port, a server starting beside it) takes it first.
        let output = try await offThePool { try runScript(["start", directory]) }
        ThrowawayServer.directory = directory
        atexit { ThrowawayServer.stop() }
        serverURL = output.trimmingCharacters(in: .whitespacesAndNewlines)
        return serverURL!
    }

    /// The same server, another database: URLs get a new path, key=value strings a dbname.
    public static func url(_ server: String, database: String) -> String {
        if server.hasPrefix("postgres://") || server.hasPrefix("postgresql://"),
            var components = URLComponents(string: server)
        {
            components.path = "/" + database
            return components.string ?? server
        }
        return server + " dbname=\(database)"
    }
}

/// Stops the throwaway server when the test process exits.
enum ThrowawayServer {
    nonisolated(unsafe) static var directory: String?

    static func stop() {
        guard let directory else { return }
        _ = try? runScript(["stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The repository's root, found from this file's path (Tests/Support/).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Runs `body`, which waits on a child process, on a thread of its own: blocking the cooperative
/// pool (two threads on two cores) stalls every test that runs beside it.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// deploy/local/postgres.sh, off the cooperative pool.
@discardableResult
public func postgresScript(_ arguments: [String]) async throws -> String {
    try await offThePool { try runScript(arguments) }
}

@discardableResult
public func runScript(_ arguments: [String]) throws -> String {
    let script = repositoryRoot.appendingPathComponent("deploy/local/postgres.sh").path
    let (status, output) = try Subprocess.run(script, arguments)
    guard status == 0 else {
        throw JuryError(.io, "deploy/local/postgres.sh \(arguments.joined(separator: " ")) failed: \(output)")
    }
    // The URL is the last line; anything before it is the script's chatter.
    return output.split(separator: "\n").last.map(String.init) ?? ""
}

/// Connects to a test database.
public func connect(_ url: String) async throws -> PostgresConnection {
    try await PostgresConnection.connect(url, logger: TestDatabase.logger)
}

/// Waits until `condition` holds, checking every 50 ms, or fails after `timeout` seconds.
public func eventually(
    timeout: Double = 60, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(timeout)s waiting for: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}

extension PostgresConnection {
    /// The first column of the first row as an Int (for counts).
    public func count(_ query: PostgresQuery) async throws -> Int {
        let rows = try await self.query(query)
        guard let value = rows.first?.values.first ?? nil, let number = Int(value) else { return -1 }
        return number
    }
}

/// Gives each test a database of its own, migrated and dropped afterwards: `@Test(.freshDatabase)`,
/// then `try TestDatabase.url` in the test.
public struct FreshDatabase: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // On a suite the trait reaches each of its tests: only they get a database.
        guard testCase != nil else { return try await function() }
        try await TestDatabase.withFresh { url in
            try await TestDatabase.$current.withValue(url) { try await function() }
        }
    }
}

extension Trait where Self == FreshDatabase {
    /// A fresh migrated database for each test.
    public static var freshDatabase: Self { FreshDatabase() }
}

/// A store on a test database.
public func store(_ url: String) async throws -> Store {
    try await Database(conninfo: url).connect(applicationName: "jury tests", logger: TestDatabase.logger)
}

/// The debug `jury` binary the end-to-end tests run (`swift build` makes it).
public let juryBinary = repositoryRoot.appendingPathComponent(".build/debug/jury").path

/// Runs `jury` with `arguments` against `database`, off the cooperative pool; its exit status and output.
public func runJury(
    _ arguments: [String], database: String, environment: [String: String] = [:]
) async throws -> (status: Int32, output: String) {
    let environment = try juryEnvironment(database: database, environment)
    return try await offThePool { try Subprocess.run(juryBinary, arguments, environment: environment) }
}

/// Starts the `jury` binary on `database` and returns at once; its output (stdout and stderr)
/// goes to `outputPath` when given.
public func startJury(
    _ arguments: [String], database: String, environment: [String: String] = [:], outputPath: String? = nil
) throws -> Subprocess {
    try Subprocess.spawn(
        juryBinary, arguments, environment: try juryEnvironment(database: database, environment), outputPath: outputPath
    )
}

/// What the binary runs with: the database, a PATH with pg_config, and `extra`.
private func juryEnvironment(database: String, _ extra: [String: String]) throws -> [String: String] {
    try #require(FileManager.default.isExecutableFile(atPath: juryBinary), "build the jury binary first: swift build")
    return ["DATABASE_URL": database, "PATH": "/usr/bin:/bin"].merging(extra) { $1 }
}

/// Checks that the counts the transitions kept (what `jury status` reads) equal the counts of
/// the tables, counter by counter; then folds the slots of gone backends and checks again.
public func expectCountsMatchTables(
    _ connection: PostgresConnection, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let disagreeing = """
        SELECT count(*) FROM (SELECT * FROM jury_counts WHERE n <> 0) kept
        FULL JOIN jury_counts_from_tables t USING (run_id, judge, counter)
        WHERE kept.n IS DISTINCT FROM t.n
        """
    #expect(try await connection.count(PostgresQuery(stringLiteral: disagreeing)) == 0, sourceLocation: sourceLocation)
    try await connection.query("SELECT jury_compact_counts()")
    #expect(try await connection.count(PostgresQuery(stringLiteral: disagreeing)) == 0, sourceLocation: sourceLocation)
}
