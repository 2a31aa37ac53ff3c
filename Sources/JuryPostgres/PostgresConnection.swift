import CLibPQ
import Dispatch
import Foundation
public import Logging

/// One connection to PostgreSQL through libpq.
///
/// libpq blocks, so every call runs on the connection's own serial dispatch queue, never on
/// Swift's cooperative pool. Calls from several tasks run one after the other, each whole; a
/// transaction is a sequence of calls, so it needs the connection to its own task. Open more
/// connections for more concurrency.
///
/// A broken connection (the server restarted, the backend was terminated) is reset
/// before the next call, and channels that were listened on are listened on again.
///
/// Every wait is bounded (`PostgresSettings`), and a task cancelled while its statement runs
/// cancels that statement on the server.
public final class PostgresConnection: @unchecked Sendable {
    // Everything below is touched only on `queue`: that is what makes the class Sendable.
    private let queue: DispatchQueue
    private let handle: OpaquePointer
    private var listenedChannels: Set<String> = []
    /// The statements prepared on this session, named by their text; a new session has none.
    private var preparedNames: [String: String] = [:]
    /// Names are never reused: a statement forgotten after an error may still exist on the server.
    private var statementsPrepared = 0
    /// Inside `transaction`: a broken connection must then fail the transaction, not be reset
    /// under it (the rest of the transaction would run outside one).
    private var inTransaction = false
    private let settings: PostgresSettings
    private let logger: Logger
    /// What `PQcancel` needs, made on `queue` after each (re)connect; used from any thread.
    private let canceller = StatementCanceller()
    /// Ends a wait for notifications early when its task is cancelled; used from any thread.
    let interrupter = WaitInterrupter()

    private init(handle: OpaquePointer, queue: DispatchQueue, settings: PostgresSettings, logger: Logger) {
        self.handle = handle
        self.queue = queue
        self.settings = settings
        self.logger = logger
    }

    deinit {
        canceller.replace(with: nil)
        // PQfinish also frees a connection that is already broken.
        PQfinish(handle)
    }

    /// Opens a connection.
    ///
    /// - Parameter conninfo: a libpq connection string or `postgres://` URL; empty uses the
    ///   standard `PG*` environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
    ///   Parameters it sets (timeouts, keepalives) override those of `settings`.
    public static func connect(
        _ conninfo: String, applicationName: String = "jury", settings: PostgresSettings = PostgresSettings(),
        logger: Logger
    ) async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "jury.postgres.connection")
        let parameters = [("application_name", applicationName)] + settings.connectionParameters
        let box: HandleBox = try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { HandleBox(try openHandle(conninfo, parameters: parameters)) })
            }
        }
        let connection = PostgresConnection(handle: box.handle, queue: queue, settings: settings, logger: logger)
        try await connection.onQueue { try $0.prepareSession() }
        return connection
    }

    /// Runs a statement with its interpolated values bound as parameters.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await onQueue { try $0.run(query: query) }
    }

    /// Runs a statement the caller runs again and again with other values (a worker's claim and
    /// record): prepared on its first call in the session, then only executed, when the settings
    /// allow (`preparesStatements`). Its text must not vary from call to call.
    @discardableResult
    public func query(prepared query: PostgresQuery) async throws -> PostgresRows {
        try await onQueue { try $0.run(query: query, prepared: $0.settings.preparesStatements) }
    }

    /// Runs SQL text that takes no parameters and may hold several statements (a migration file).
    public func execute(script: String) async throws {
        try await onQueue { try $0.runScript(script) }
    }

    /// Runs `body` inside BEGIN/COMMIT; any error rolls back and is rethrown.
    public func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await onQueue { connection in
            try connection.runScript("BEGIN")
            connection.inTransaction = true
        }
        do {
            let value = try await body(self)
            try await onQueue { connection in
                connection.inTransaction = false
                try connection.runScript("COMMIT")
            }
            return value
        } catch {
            try? await onQueue(reconnect: false) { connection in
                connection.inTransaction = false
                // A broken connection has rolled back by itself; the next call reconnects.
                if PQstatus(connection.handle) == CONNECTION_OK { try connection.runScript("ROLLBACK") }
            }
            throw error
        }
    }

    /// The libpq environment variables (PGHOST, PGPASSWORD, ...) that stand for a connection
    /// string: how to hand a database to a child process (pgbench, psql) without putting a
    /// password on its command line, where every user of the machine can read it.
    public static func environment(for conninfo: String) throws -> [String: String] {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &message) else {
            let text = message.map { String(cString: $0) } ?? "cannot parse the connection string"
            if let message { PQfreemem(message) }
            throw PostgresError(code: .connectionFailed, message: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        defer { PQconninfoFree(options) }
        var environment: [String: String] = [:]
        var option = options
        // The array ends with an entry whose keyword is NULL.
        while option.pointee.keyword != nil {
            if let variable = option.pointee.envvar, let value = option.pointee.val {
                environment[String(cString: variable)] = String(cString: value)
            }
            option += 1
        }
        return environment
    }

    /// The server process serving this connection (what `pg_terminate_backend` takes).
    public func backendPID() async throws -> Int32 {
        try await onQueue { PQbackendPID($0.handle) }
    }

    // MARK: - Running on the connection's queue

    /// Runs `body` on the connection's queue after making sure the connection is usable.
    ///
    /// If the calling task is cancelled meanwhile, the statement running on the server is
    /// cancelled too (`PQcancel`), so the call ends with the server's error instead of waiting.
    func onQueue<T: Sendable>(
        reconnect: Bool = true, _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        if Task.isCancelled { throw CancellationError() }
        let call = canceller.nextCall()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                queue.async {
                    continuation.resume(
                        with: Result {
                            if reconnect { try self.ensureConnected() }
                            self.canceller.setRunning(call)
                            defer { self.canceller.setRunning(nil) }
                            return try body(self)
                        })
                }
            }
        } onCancel: {
            canceller.cancel(call: call)
        }
    }

    private func ensureConnected() throws {
        guard PQstatus(handle) != CONNECTION_OK else { return }
        if inTransaction {
            throw PostgresError(
                code: .connectionLost, message: "the connection broke during a transaction; it was rolled back")
        }
        logger.debug("PostgreSQL connection broken; resetting")
        PQreset(handle)
        preparedNames = [:]
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(code: .connectionFailed, message: lastErrorMessage())
        }
        try prepareSession()
        for channel in listenedChannels {
            try runScript("LISTEN \(Self.quoteIdentifier(channel))")
        }
        logger.info("PostgreSQL connection re-established")
    }

    private func prepareSession() throws {
        // Print nothing on the terminal: notices such as "relation already exists, skipping" are expected.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        canceller.replace(with: PQgetCancel(handle))
        // PgBouncer keeps TimeZone per client, so this one holds even through transaction pooling.
        try runScript("SET TIME ZONE 'UTC'; " + settings.sessionScript)
    }

    func run(query: PostgresQuery, prepared: Bool = false) throws -> PostgresRows {
        // libpq takes parameters as C strings: a NUL would silently cut the value short.
        if let index = query.binds.firstIndex(where: { $0?.utf8.contains(0) == true }) {
            throw PostgresError(
                code: .invalidParameter,
                message: "parameter $\(index + 1) holds the NUL character (U+0000), which PostgreSQL cannot store")
        }
        var parameters: [UnsafeMutablePointer<CChar>?] = query.binds.map { $0.flatMap { strdup($0) } }
        defer { parameters.forEach { free($0) } }
        let name = prepared ? try preparedName(of: query.sql) : nil
        let result = parameters.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) {
                let values = buffer.count > 0 ? $0 : nil
                if let name {
                    return PQexecPrepared(handle, name, Int32(buffer.count), values, nil, nil, 0)
                }
                return PQexecParams(handle, query.sql, Int32(buffer.count), nil, values, nil, nil, 0)
            }
        }
        do {
            return try readResult(result)
        } catch let error as PostgresError where name != nil {
            // 26000: the session lost its prepared statements (DISCARD ALL); 0A000: a function's
            // result type changed under the plan (a migration). The next call prepares afresh.
            if error.sqlState == "26000" || error.sqlState == "0A000" { preparedNames = [:] }
            throw error
        }
    }

    /// The name `sql` is prepared under in this session, preparing it on first use.
    private func preparedName(of sql: String) throws -> String {
        if let name = preparedNames[sql] { return name }
        statementsPrepared += 1
        let name = "jury_\(statementsPrepared)"
        // No types given: the server infers each parameter's from the text, as for PQexecParams.
        _ = try readResult(PQprepare(handle, name, sql, 0, nil))
        preparedNames[sql] = name
        return name
    }

    func runScript(_ script: String) throws {
        // With several statements PQexec stops at the first error and returns it.
        _ = try readResult(PQexec(handle, script))
    }

    /// Turns a libpq result into rows, or into an error; always frees it.
    func readResult(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else {
            throw connectionError()
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            break
        case PGRES_COPY_IN:
            return PostgresRows(columns: [], values: [], affectedRows: 0)
        default:
            throw serverError(result)
        }
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var values: [[String?]] = []
        values.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var rowValues: [String?] = []
            rowValues.reserveCapacity(columnCount)
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    rowValues.append(nil)
                } else {
                    rowValues.append(String(cString: PQgetvalue(result, row, column)))
                }
            }
            values.append(rowValues)
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, values: values, affectedRows: affected)
    }

    func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        if PQstatus(handle) != CONNECTION_OK {
            return connectionError()
        }
        return PostgresError(
            code: .server, sqlState: field("C"), message: field("M") ?? lastErrorMessage(),
            detail: field("D"), hint: field("H"))
    }

    func connectionError() -> PostgresError {
        PostgresError(code: .connectionLost, message: lastErrorMessage())
    }

    func lastErrorMessage() -> String {
        guard let message = PQerrorMessage(handle) else { return "unknown libpq error" }
        let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "unknown libpq error" : text
    }

    func rememberListen(_ channel: String) {
        listenedChannels.insert(channel)
    }

    var socket: Int32 { PQsocket(handle) }
    var rawHandle: OpaquePointer { handle }

    static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Connects with `parameters` first and the user's connection string last, so that what
    /// the user wrote wins.
    private static func openHandle(_ conninfo: String, parameters: [(String, String)]) throws -> OpaquePointer {
        let all = parameters + [("dbname", conninfo)]
        let keywords = all.map { strdup($0.0) } + [nil]
        let values = all.map { strdup($0.1) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let opened = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { keywordBuffer in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { valueBuffer in
                // expand_dbname: a dbname holding a connection string or URL is read as one.
                PQconnectdbParams(keywordBuffer.baseAddress, valueBuffer.baseAddress, 1)
            }
        }
        guard let handle = opened else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(handle)
            throw PostgresError(
                code: .connectionFailed, message: message,
                hint: "set --database or DATABASE_URL (or the PG* variables) to a reachable server")
        }
        return handle
    }
}
