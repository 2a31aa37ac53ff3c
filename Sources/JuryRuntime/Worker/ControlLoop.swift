import JuryDomain
import JuryStore
import Logging
import Synchronization

/// What the worker does on its second connection, apart from claims and votes: beats the
/// heartbeat, which holds the lease of every job the worker owns; lets the reaper take back
/// the jobs of workers that stopped beating; and wakes the claimer when jobs are announced
/// (or, polling, leaves the claimer to its own idle poll).
///
/// A reap held up by locks waits on this connection only, never on claims or votes.
struct ControlLoop: Sendable {
    let id: String
    let store: Store
    let ledger: WorkerLedger
    let leaseSeconds: Double
    /// Whether jobs are announced by NOTIFY on this connection (false: through a pooler, polling).
    let listens: Bool
    let reaper: Reaper
    let logger: Logger

    /// Until cancelled (once the last job is recorded).
    func run() async {
        let beatInterval = Duration.seconds(max(leaseSeconds / 3, 0.2))
        var lastBeat: ContinuousClock.Instant?
        while !Task.isCancelled {
            if lastBeat.map({ ContinuousClock.now - $0 >= beatInterval }) ?? true {
                await beat()
                lastBeat = .now
            }
            await reaper.reapIfDue()
            if listens {
                do {
                    if try await store.waitForNotifications(timeout: .milliseconds(200)).contains(.jobs) {
                        ledger.claimerWakeup.raise()
                    }
                } catch {
                    logger.debug("listening failed; reconnecting", metadata: [JuryMetadata.error: "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            } else {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func beat() async {
        let inFlight = ledger.state.withLock { $0.inFlight.count }
        do {
            if try await !store.heartbeat(id, inFlight: inFlight, leaseSeconds: leaseSeconds) && inFlight > 0 {
                logger.warning(
                    """
                    this worker's lease had lapsed (the database was out of reach for longer than --lease-seconds): \
                    its jobs may have been taken back, and their votes will then be refused
                    """,
                    metadata: ["jobs": "\(inFlight)"])
            }
        } catch {
            logger.warning("beating the heartbeat failed", metadata: [JuryMetadata.error: "\(error)"])
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
