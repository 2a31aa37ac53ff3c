import JuryDomain
import JuryStore
import Logging
import Synchronization

/// Wakes the claimer when jobs are announced, and between waits lets the reaper work: on a
/// store of their own, so that a reap held up by locks never delays renewals or claims.
struct Listener: Sendable {
    let store: Store
    let ledger: WorkerLedger
    let reaper: Reaper
    let logger: Logger

    /// Until cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                for try await received in store.notifications(idle: .milliseconds(200)) {
                    if received.contains(.jobs) { ledger.claimerWakeup.raise() }
                    await reaper.reapIfDue()
                }
            } catch {
                logger.debug("listening failed; reconnecting", metadata: [JuryMetadata.error: "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Takes back the jobs whose lease expired (their worker died or lost the database), so that
/// another worker redoes them.
final class Reaper: Sendable {
    let store: Store
    let interval: Duration
    let logger: Logger
    private let lastReap: Mutex<ContinuousClock.Instant?> = Mutex(nil)

    init(store: Store, leaseSeconds: Double, logger: Logger) {
        self.store = store
        self.interval = .seconds(min(max(leaseSeconds / 3, 0.2), 10))
        self.logger = logger
    }

    func reapIfDue() async {
        let due = lastReap.withLock { last in
            guard last.map({ ContinuousClock.now - $0 >= interval }) ?? true else { return false }
            last = .now
            return true
        }
        guard due else { return }
        do {
            try await store.reapExpiredLeases()
        } catch {
            logger.debug("reaping expired leases failed", metadata: [JuryMetadata.error: "\(error)"])
        }
    }
}
