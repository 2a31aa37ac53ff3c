import Foundation
import JuryDomain
import JuryPostgres
import JuryTestSupport
import Testing

@Suite("PostgreSQL layer")
struct PostgresTests {
    @Test(.freshDatabase) func bindsAndDecodesValuesOfEveryKind() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let text = "it's \"quoted\", back\\slash, tab\t, newline\n, ünïcødé, {braces}"
        let row = try await connection.query(
            """
            SELECT \(text)::text AS text, \(Int64(9_000_000_000))::bigint AS big, \(2.5)::float8 AS double,
                   \(true)::boolean AS flag, \(nil as String?)::text AS missing,
                   (\([text, "b", nil])::text[])[1] AS first, cardinality(\([1, 2, 3])::int[]) AS items,
                   \(Date(timeIntervalSince1970: 1_700_000_000.25))::timestamptz AS at
            """
        )[0]
        #expect(try row.decode("text", as: String.self) == text)
        #expect(try row.decode("big", as: Int64.self) == 9_000_000_000)
        #expect(try row.decode("double", as: Double.self) == 2.5)
        #expect(try row.decode("flag", as: Bool.self) == true)
        #expect(try row.decodeIfPresent("missing", as: String.self) == nil)
        #expect(try row.decode("first", as: String.self) == text)
        #expect(try row.decode("items", as: Int.self) == 3)
        let at = try row.decode("at", as: Date.self)
        #expect(abs(at.timeIntervalSince1970 - 1_700_000_000.25) < 0.001)
        #expect(throws: PostgresError.self) { try row.decode("text", as: Int.self) }
    }

    @Test(.freshDatabase) func interpolatedValuesCannotInjectSQL() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let hostile = "x'; DROP TABLE runs; --"
        let rows = try await connection.query("SELECT \(hostile) AS value")
        #expect(rows[0]["value"] == hostile)
        #expect(try await connection.count("SELECT count(*) FROM runs") == 0)
    }

    @Test(.freshDatabase) func serverErrorsCarrySQLStateAndKeepRowValuesOutOfTheDescription() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        try await connection.execute(script: "CREATE TABLE t (k text PRIMARY KEY)")
        try await connection.query("INSERT INTO t VALUES (\("secret-value"))")
        let error = await #expect(throws: PostgresError.self) {
            try await connection.query("INSERT INTO t VALUES (\("secret-value"))")
        }
        #expect(error?.sqlState == "23505")
        #expect(error?.code == .server)
        #expect(error?.description.contains("secret-value") == false)
        #expect(error?.debugDescription.contains("secret-value") == true)
    }

    @Test func unreachableServerGivesAnErrorThatSaysWhatToSet() async throws {
        let error = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(
                "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", logger: TestDatabase.logger)
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("DATABASE_URL") == true)
    }

    @Test(.freshDatabase) func transactionsRollBackOnError() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        try await connection.execute(script: "CREATE TABLE t (k int)")
        await #expect(throws: PostgresError.self) {
            try await connection.transaction { connection in
                try await connection.query("INSERT INTO t VALUES (1)")
                try await connection.query("SELECT 1/0")
            }
        }
        #expect(try await connection.count("SELECT count(*) FROM t") == 0)
    }

    @Test(.freshDatabase) func notificationsWakeAWaiterWithoutPolling() async throws {
        let url = try TestDatabase.url
        let listener = try await connect(url)
        let sender = try await connect(url)
        try await listener.listen("jury_test_channel")
        async let received = listener.waitForNotifications(timeout: .seconds(300))
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        try await sender.notify("jury_test_channel", payload: "hello")
        let notifications = try await received
        #expect(notifications == [PostgresNotification(channel: "jury_test_channel", payload: "hello")])
        // It woke on the socket, long before its 300 s timeout (the bound is wide: a loaded
        // machine took 14 s).
        #expect(ContinuousClock.now - started < .seconds(120))
    }

    @Test(.freshDatabase) func copyLoadsRowsAndAnAbortedCopyLeavesNothing() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        try await connection.execute(script: "CREATE TABLE t (a text, b int)")
        var chunks = [Array("x\t1\ny\\ty\t2\n".utf8)]
        let copied = try await connection.copyIn("COPY t (a, b) FROM STDIN") { chunks.popLast() }
        #expect(copied == 2)
        #expect(try await connection.query("SELECT a FROM t WHERE b = 2")[0]["a"] == "y\ty")

        struct Stop: Error {}
        var sent = false
        await #expect(throws: Stop.self) {
            try await connection.copyIn("COPY t (a, b) FROM STDIN") {
                if sent { throw Stop() }
                sent = true
                return Array("z\t3\n".utf8)
            }
        }
        #expect(try await connection.count("SELECT count(*) FROM t") == 2)
    }

    @Test(.freshDatabase) func aConnectionLostInATransactionFailsItInsteadOfReconnectingUnderIt() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let killer = try await connect(url)
        try await connection.execute(script: "CREATE TABLE t (k int)")
        let pid = try await connection.backendPID()
        await #expect(throws: PostgresError.self) {
            try await connection.transaction { connection in
                try await connection.query("INSERT INTO t VALUES (1)")
                try await killer.query("SELECT pg_terminate_backend(\(pid))")
                // Neither this statement nor the one after may run outside the transaction.
                _ = try? await connection.query("INSERT INTO t VALUES (2)")
                try await connection.query("INSERT INTO t VALUES (3)")
            }
        }
        #expect(try await connection.count("SELECT count(*) FROM t") == 0)
    }

    @Test(.freshDatabase) func reconnectsAfterItsBackendIsTerminated() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let killer = try await connect(url)
        try await connection.listen("jury_test_reconnect")
        let pid = try await connection.backendPID()
        try await killer.query("SELECT pg_terminate_backend(\(pid))")
        // The first call may see the broken connection; the next one runs on a new backend.
        _ = try? await connection.query("SELECT 1")
        #expect(try await connection.count("SELECT 41 + 1") == 42)
        #expect(try await connection.backendPID() != pid)
        // LISTEN survived the reconnect.
        try await killer.notify("jury_test_reconnect")
        let notifications = try await connection.waitForNotifications(timeout: .seconds(10))
        #expect(notifications.count == 1)
    }

    /// A prepared query is parsed once per session, gives what the plain query gives, and is
    /// prepared again on a new session after a reconnect; with `preparesStatements` off (a
    /// transaction pooler), nothing is prepared.
    @Test(.freshDatabase) func preparedQueriesArePreparedOncePerSession() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let killer = try await connect(url)
        let prepared = "SELECT count(*) AS n FROM pg_prepared_statements"
        for value in [1, 2, 3] {
            let rows = try await connection.query(prepared: "SELECT \(value)::int + 1 AS sum, \("x")::text AS text")
            #expect(rows[0]["sum"] == "\(value + 1)" && rows[0]["text"] == "x")
        }
        #expect(try await connection.count(PostgresQuery(stringLiteral: prepared)) == 1)
        let statement = try await connection.query("SELECT statement FROM pg_prepared_statements")[0]["statement"]
        #expect(statement?.contains("$1::int + 1") == true, "\(statement ?? "none")")
        // Errors in a prepared query are the server's, as for any query; the statement stays usable.
        await #expect(throws: PostgresError.self) {
            try await connection.query(prepared: "SELECT 1 / \(0)::int AS quotient")
        }
        #expect(try await connection.query(prepared: "SELECT 1 / \(2)::int AS quotient")[0]["quotient"] == "0")

        try await killer.query("SELECT pg_terminate_backend(\(try await connection.backendPID()))")
        _ = try? await connection.query("SELECT 1")
        #expect(
            try await connection.query(prepared: "SELECT \(5)::int + 1 AS sum, \("y")::text AS text")[0]["sum"] == "6")
        #expect(try await connection.count(PostgresQuery(stringLiteral: prepared)) == 1)

        var settings = PostgresSettings()
        settings.preparesStatements = false
        let pooled = try await PostgresConnection.connect(url, settings: settings, logger: TestDatabase.logger)
        #expect(try await pooled.query(prepared: "SELECT \(7)::int AS seven")[0]["seven"] == "7")
        #expect(try await pooled.count(PostgresQuery(stringLiteral: prepared)) == 0)
    }

    /// A prepared statement whose plan can no longer hold (a migration changed a function's
    /// result type) fails once; the next call prepares it afresh, under a new name, since the
    /// old one still exists on the server.
    @Test(.freshDatabase) func aPreparedStatementOutlivedByItsFunctionIsPreparedAgain() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let other = try await connect(url)
        try await other.execute(script: "CREATE FUNCTION jury_test_value(int) RETURNS int LANGUAGE sql AS 'SELECT $1'")
        #expect(try await connection.query(prepared: "SELECT * FROM jury_test_value(\(1)) AS v")[0]["v"] == "1")
        try await other.execute(
            script: """
                DROP FUNCTION jury_test_value(int);
                CREATE FUNCTION jury_test_value(int) RETURNS text LANGUAGE sql AS 'SELECT ''n'' || $1';
                """)
        await #expect(throws: PostgresError.self) {
            try await connection.query(prepared: "SELECT * FROM jury_test_value(\(2)) AS v")
        }
        #expect(try await connection.query(prepared: "SELECT * FROM jury_test_value(\(3)) AS v")[0]["v"] == "n3")
    }
}
