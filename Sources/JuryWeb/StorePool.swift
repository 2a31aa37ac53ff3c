import JuryStore
import Logging

/// A few connections shared by the web app's requests: each request borrows one for what it
/// reads or writes, and gives it back. Connections are made on first need, so the app starts
/// (and says it is not ready) while the database is down; one that breaks reconnects by itself
/// on its next statement.
actor StorePool {
    private let database: Database
    private let size: Int
    private let logger: Logger
    private var idle: [Store] = []
    private var made = 0
    private var waiters: [CheckedContinuation<Store, Never>] = []

    init(database: Database, size: Int, logger: Logger) {
        self.database = database
        self.size = max(1, size)
        self.logger = logger
    }

    /// Runs `body` on a connection of the pool.
    func with<T: Sendable>(_ body: @Sendable (Store) async throws -> T) async throws -> T {
        let store = try await take()
        do {
            let value = try await body(store)
            giveBack(store)
            return value
        } catch {
            giveBack(store)
            throw error
        }
    }

    private func take() async throws -> Store {
        if let store = idle.popLast() { return store }
        if made < size {
            made += 1
            do {
                let store = try await database.connect(applicationName: "jury serve", logger: logger)
                try await store.checkSchema()
                return store
            } catch {
                made -= 1
                throw error
            }
        }
        return await withCheckedContinuation { waiters.append($0) }
    }

    private func giveBack(_ store: Store) {
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: store)
        } else {
            idle.append(store)
        }
    }
}
