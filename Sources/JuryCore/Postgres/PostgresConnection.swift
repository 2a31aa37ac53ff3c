import CLibPQ
import Dispatch
import Foundation
import Logging

/// One connection to PostgreSQL through libpq.
///
/// libpq blocks, so every call runs on the connection's own serial dispatch queue, never on
/// Swift's cooperative pool. Use a connection from one task at a time (a transaction is a
/// sequence of calls on one connection); open more connections for more concurrency.
///
/// A broken connection (the server restarted, the backend was terminated) is reset
/// before the next call, and channels that were listened on are listened on again.
public final class PostgresConnection: @unchecked Sendable {
    // Everything below is touched only on `queue`: that is what makes the class Sendable.
    private let queue: DispatchQueue
    private let handle: OpaquePointer
    private var listenedChannels: Set<String> = []
    /// Inside `transaction`: a broken connection must then fail the transaction, not be reset
    /// under it (the rest of the transaction would run outside one).
    private var inTransaction = false
    private let logger: Logger

    private init(handle: OpaquePointer, queue: DispatchQueue, logger: Logger) {
        self.handle = handle
        self.queue = queue
        self.logger = logger
    }

    deinit {
        // PQfinish also frees a connection that is already broken.
        PQfinish(handle)
    }

    /// Opens a connection.
    ///
    /// - Parameter conninfo: a libpq connection string or `postgres://` URL; empty uses the
    ///   standard `PG*` environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
    public static func connect(
        _ conninfo: String, applicationName: String = "jury", logger: Logger
    ) async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "jury.postgres.connection")
        let box: HandleBox = try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { HandleBox(try openHandle(conninfo)) })
            }
        }
        let connection = PostgresConnection(handle: box.handle, queue: queue, logger: logger)
        try await connection.onQueue { connection in
            try connection.prepareSession()
            _ = try connection.run(query: "SELECT set_config('application_name', \(applicationName), false)")
        }
        return connection
    }

    /// Runs a statement with its interpolated values bound as parameters.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await onQueue { try $0.run(query: query) }
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

    /// The server process serving this connection (what `pg_terminate_backend` takes).
    public func backendPID() async throws -> Int32 {
        try await onQueue { PQbackendPID($0.handle) }
    }

    // MARK: - Running on the connection's queue

    /// Runs `body` on the connection's queue after making sure the connection is usable.
    func onQueue<T: Sendable>(
        reconnect: Bool = true, _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        if reconnect { try self.ensureConnected() }
                        return try body(self)
                    })
            }
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
        try runScript("SET TIME ZONE 'UTC'")
    }

    func run(query: PostgresQuery) throws -> PostgresRows {
        var parameters: [UnsafeMutablePointer<CChar>?] = query.binds.map { $0.flatMap { strdup($0) } }
        defer { parameters.forEach { free($0) } }
        let result = parameters.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) {
                PQexecParams(handle, query.sql, Int32(buffer.count), nil, buffer.count > 0 ? $0 : nil, nil, nil, 0)
            }
        }
        return try readResult(result)
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

    private static func openHandle(_ conninfo: String) throws -> OpaquePointer {
        guard let handle = PQconnectdb(conninfo) else {
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

/// Carries a libpq handle across the continuation before the connection object owns it.
private struct HandleBox: @unchecked Sendable {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
}
