/// The bounds Jury puts on every wait for PostgreSQL, so that no call can hang for good.
///
/// The connection-level ones go to libpq as connection parameters, ahead of the user's
/// connection string, which may override any of them (`?connect_timeout=30`). The session-level
/// ones are set on every new or reset connection.
public struct PostgresSettings: Sendable, Equatable {
    /// Seconds to wait for a connection to be made.
    public var connectTimeoutSeconds: Int = 10
    /// TCP keepalives: a peer that vanished without a reset (a host that died, a dropped
    /// route) is noticed after idle + interval × count seconds instead of the kernel's hours.
    public var keepaliveIdleSeconds: Int = 5
    public var keepaliveIntervalSeconds: Int = 2
    public var keepaliveCount: Int = 3
    /// Milliseconds that sent data may stay unacknowledged before the connection is dropped
    /// (Linux `TCP_USER_TIMEOUT`): covers a peer that vanished while a statement was on the wire.
    public var tcpUserTimeoutMilliseconds: Int = 15_000
    /// Longest a statement may run; nil for no limit.
    public var statementTimeout: Duration? = .seconds(120)
    /// Longest a statement may wait for a lock; nil for no limit.
    public var lockTimeout: Duration? = .seconds(30)
    /// Longest a transaction may sit idle before the server ends the session; nil for no limit.
    public var idleInTransactionTimeout: Duration? = .seconds(120)
    /// Whether the three timeouts above, and `jit = off`, are SET on each session. Not through a
    /// PgBouncer in transaction pooling: a session's settings stay on whichever server connection
    /// ran them, for other clients to inherit. Set them on the database role instead.
    public var setsSessionSettings = true
    /// Whether `query(prepared:)` prepares its statement once per session, so that the server
    /// parses and plans the text once rather than at every call. Not through a PgBouncer in
    /// transaction pooling: a prepared statement lives on one server connection, and the next
    /// transaction may run on another.
    public var preparesStatements = true

    public init() {}

    /// libpq connection parameters, in the order they are given to `PQconnectdbParams`.
    var connectionParameters: [(String, String)] {
        [
            ("connect_timeout", String(connectTimeoutSeconds)),
            ("keepalives", "1"),
            ("keepalives_idle", String(keepaliveIdleSeconds)),
            ("keepalives_interval", String(keepaliveIntervalSeconds)),
            ("keepalives_count", String(keepaliveCount)),
            ("tcp_user_timeout", String(tcpUserTimeoutMilliseconds)),
        ]
    }

    /// The `SET` statements that bound a session's waits and turn JIT off; empty when not set on sessions.
    var sessionScript: String {
        func milliseconds(_ duration: Duration?) -> String {
            guard let duration else { return "0" }
            return String(max(1, duration.wholeMilliseconds))
        }
        guard setsSessionSettings else { return "" }
        // JIT compiles a plan whose estimated cost passes jit_above_cost: on tables of millions
        // of rows that is most of Jury's short statements, and the compiling (10 to 50 ms) took
        // longer than the statements themselves.
        return """
            SET jit = off;
            SET statement_timeout = \(milliseconds(statementTimeout));
            SET lock_timeout = \(milliseconds(lockTimeout));
            SET idle_in_transaction_session_timeout = \(milliseconds(idleInTransactionTimeout))
            """
    }
}
