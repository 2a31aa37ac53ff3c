public import JuryDomain
import JuryPostgres

/// Waking up on notifications instead of polling the tables.
extension Store {
    /// Listens on `channel` from now on; kept across reconnects. Give listening a store of its own.
    public func listen(_ channel: Channel) async throws {
        try await connection.listen(channel.rawValue)
    }

    /// Notifications on the channels listened to, as they come: each element is the batch that
    /// arrived, or an empty batch when `idle` passed without any (a tick for pollers).
    public func notifications(idle: Duration) -> Notifications {
        Notifications(connection: connection, idle: idle)
    }

    /// An endless sequence of wake-ups; it ends when the task iterating it is cancelled.
    public struct Notifications: AsyncSequence, Sendable {
        public typealias Element = [Channel]
        let connection: PostgresConnection
        let idle: Duration

        public func makeAsyncIterator() -> Iterator {
            Iterator(connection: connection, idle: idle)
        }

        public struct Iterator: AsyncIteratorProtocol {
            let connection: PostgresConnection
            let idle: Duration

            /// The next batch (empty after `idle`), nil once cancelled. A connection that fails
            /// throws; the next call tries again on a reset connection.
            public mutating func next() async throws -> [Channel]? {
                if Task.isCancelled { return nil }
                let received = try await connection.waitForNotifications(timeout: idle)
                if Task.isCancelled { return nil }
                return received.compactMap { Channel(rawValue: $0.channel) }
            }
        }
    }
}
