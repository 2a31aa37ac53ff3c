/// An error from the PostgreSQL layer.
///
/// `description` names what went wrong and what to do about it without echoing row data;
/// the server's detail (which can quote values from the rows) is only in `debugDescription`.
public struct PostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// What kind of failure this is. Opaque so that new kinds break no caller.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connectionFailed = "connection failed"
            case connectionLost = "connection lost"
            case server = "server error"
            case copy = "COPY failed"
            case decoding = "decoding failed"
            case invalidParameter = "invalid parameter"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server could not be reached or refused the login.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection broke during a call; the call may or may not have taken effect.
        public static let connectionLost = Code(.connectionLost)
        /// The server rejected a statement; `sqlState` says why.
        public static let server = Code(.server)
        /// A COPY could not be started, fed or finished.
        public static let copy = Code(.copy)
        /// A value in a result did not have the expected type.
        public static let decoding = Code(.decoding)
        /// A value could not be sent as a parameter (it holds NUL); nothing was sent.
        public static let invalidParameter = Code(.invalidParameter)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The five-character SQLSTATE, when the server sent one (for example `23505`).
    public var sqlState: String?
    /// The primary message: from the server, or ours.
    public var message: String
    /// The server's DETAIL line; may quote row values, so it is kept out of `description`.
    public var detail: String?
    /// The server's HINT line.
    public var hint: String?

    public init(code: Code, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// True when the statement may succeed if tried again unchanged: the connection failed, or
    /// the server gave up for a reason of its own (deadlock, serialization, a timeout, a restart).
    public var isTransient: Bool {
        if code == .connectionLost || code == .connectionFailed { return true }
        guard let sqlState else { return false }
        // 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available (lock_timeout),
        // 57014 query_canceled (statement_timeout), class 57P operator intervention (a shutdown or restart),
        // class 08 connection exceptions, 53300 too_many_connections.
        return ["40001", "40P01", "55P03", "57014", "53300"].contains(sqlState) || sqlState.hasPrefix("57P")
            || sqlState.hasPrefix("08")
    }

    /// True when the server refused a value (SQLSTATE class 22, data exception, or 23, integrity
    /// constraint) or a value could not be sent: the same statement with the same values fails again,
    /// and another statement without that value may succeed.
    public var isDataError: Bool {
        sqlState?.hasPrefix("22") == true || sqlState?.hasPrefix("23") == true || code == .invalidParameter
    }

    public var description: String {
        var text = "PostgreSQL \(code)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(redactedMessage)"
        if let hint { text += " (hint: \(hint))" }
        return text
    }

    /// The message, with the values that data exceptions quote (`malformed array literal: "{...}"`)
    /// left out: they come from rows and requests, and would carry example content into logs.
    private var redactedMessage: String {
        guard sqlState?.hasPrefix("22") == true else { return message }
        var text = ""
        var quoted = false
        for character in message {
            if character == "\"" {
                if !quoted { text += "\"…\"" }
                quoted.toggle()
            } else if !quoted {
                text.append(character)
            }
        }
        return text
    }

    public var debugDescription: String {
        var text = "PostgreSQL \(code)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let hint { text += " (hint: \(hint))" }
        if let detail { text += " detail: \(detail)" }
        return text
    }
}
