public import JuryDomain
import JuryPostgres

/// Waking up on notifications instead of polling the tables.
extension Store {
    /// Listens on `channel` from now on; kept across reconnects. Give listening a store of its own.
    public func listen(_ channel: Channel) async throws {
        try await connection.listen(channel.rawValue)
    }

    /// The channels notified, batch by batch as they come; an empty batch each time `idle`
    /// passes without any. Ends when the iterating task is cancelled.
    public func notifications(idle: Duration) -> some AsyncSequence<[Channel], any Error> {
        connection.notifications(idle: idle).map { batch in batch.compactMap { Channel(rawValue: $0.channel) } }
    }
}
