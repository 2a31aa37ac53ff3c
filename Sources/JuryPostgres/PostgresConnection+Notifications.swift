import CLibPQ
import Foundation

/// A NOTIFY received on a channel this connection listens on.
public struct PostgresNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String

    public init(channel: String, payload: String) {
        self.channel = channel
        self.payload = payload
    }
}

extension PostgresConnection {
    /// Starts listening on `channel`; kept across reconnects.
    public func listen(_ channel: String) async throws {
        try await onQueue { connection in
            try connection.runScript("LISTEN \(Self.quoteIdentifier(channel))")
            connection.rememberListen(channel)
        }
    }

    /// Sends a notification to every session listening on `channel`, when the current transaction commits.
    public func notify(_ channel: String, payload: String = "") async throws {
        try await query("SELECT pg_notify(\(channel), \(payload))")
    }

    /// Waits until a notification arrives or `timeout` passes, sleeping on the connection's socket.
    ///
    /// Returns the notifications received (none after a timeout). The connection must be used
    /// for nothing else meanwhile: give listening its own connection.
    public func waitForNotifications(timeout: Duration) async throws -> [PostgresNotification] {
        let milliseconds = Int32(clamping: timeout.wholeMilliseconds)
        return try await onQueue { connection in
            var received = connection.drainNotifications()
            if !received.isEmpty { return received }
            var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 {
                if PQconsumeInput(connection.rawHandle) == 0 {
                    throw connection.connectionError()
                }
                received = connection.drainNotifications()
            }
            return received
        }
    }

    private func drainNotifications() -> [PostgresNotification] {
        var received: [PostgresNotification] = []
        while let notification = PQnotifies(rawHandle) {
            received.append(
                PostgresNotification(
                    channel: String(cString: notification.pointee.relname),
                    payload: String(cString: notification.pointee.extra)))
            PQfreemem(notification)
        }
        return received
    }
}
