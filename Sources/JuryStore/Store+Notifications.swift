public import JuryDomain
import JuryPostgres

/// Waking up on notifications instead of polling the tables.
extension Store {
    /// Listens on `channel` from now on; kept across reconnects. Give listening a store of its own.
    public func listen(_ channel: Channel) async throws {
        try await connection.listen(channel.rawValue)
    }

    /// Waits until a channel listened on is notified or `timeout` passes (or the task is
    /// cancelled); returns the channels notified, none after a timeout.
    public func waitForNotifications(timeout: Duration) async throws -> Set<Channel> {
        Set(try await connection.waitForNotifications(timeout: timeout).compactMap { Channel(rawValue: $0.channel) })
    }

    /// Ends the `waitForNotifications` under way at once (or the next one); from any thread.
    public func interruptWait() {
        connection.interruptWait()
    }
}
