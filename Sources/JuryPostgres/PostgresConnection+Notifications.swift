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

    /// Ends the `waitForNotifications` under way at once (or the next one); from any thread.
    public func interruptWait() {
        interrupter.interrupt()
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
        // Cancellation ends the wait at once: a listener must not hold up its process's stop.
        return try await withTaskCancellationHandler {
            try await onQueue { connection in
                var received = connection.drainNotifications()
                if !received.isEmpty { return received }
                var descriptors = [
                    pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: connection.interrupter.readDescriptor, events: Int16(POLLIN), revents: 0),
                ]
                let ready = poll(&descriptors, descriptors[1].fd >= 0 ? 2 : 1, milliseconds)
                connection.interrupter.reset()
                if ready > 0 && descriptors[0].revents != 0 {
                    if PQconsumeInput(connection.rawHandle) == 0 {
                        throw connection.connectionError()
                    }
                    received = connection.drainNotifications()
                }
                return received
            }
        } onCancel: {
            interrupter.interrupt()
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
