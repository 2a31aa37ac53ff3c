import JuryDomain
import JuryStore
import Logging
import Synchronization

/// Beats the worker's heartbeat, which holds the lease of every job it owns, every third of
/// the lease, and lets the reaper take back the jobs of workers that stopped beating; until
/// cancelled (once the last job is recorded). It shares the recorder's connection: a beat
/// never waits behind a claimer asleep on its socket.
struct Heartbeat: Sendable {
    let id: String
    let store: Store
    let ledger: WorkerLedger
    let leaseSeconds: Double
    let probes: ProcessProbes
    let reaper: Reaper
    let logger: Logger

    func run() async {
        let interval = Duration.seconds(max(leaseSeconds / 3, 0.2))
        while !Task.isCancelled {
            probes.turned()
            await beat()
            await reaper.reapIfDue()
            try? await Task.sleep(for: interval)
        }
    }

    private func beat() async {
        let inFlight = ledger.state.withLock { $0.inFlight.count }
        do {
            let held = try await store.heartbeat(id, inFlight: inFlight, leaseSeconds: leaseSeconds)
            probes.reachedDatabase()
            if !held && inFlight > 0 {
                logger.warning(
                    """
                    this worker's lease had lapsed (the database was out of reach for longer than --lease-seconds): \
                    its jobs may have been taken back, and their votes will then be refused
                    """,
                    metadata: ["jobs": "\(inFlight)"])
            }
        } catch {
            logger.warning("beating the heartbeat failed", metadata: [JuryMetadata.error: "\(error)"])
            ledger.databaseFailed()
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
