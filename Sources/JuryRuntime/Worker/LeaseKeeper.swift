import JuryDomain
import JuryStore
import Logging
import Synchronization

/// Renews the leases of the jobs the worker holds, and beats its heartbeat, every third of the
/// lease, until cancelled (once the last job is recorded).
struct LeaseKeeper: Sendable {
    let id: String
    let store: Store
    let ledger: WorkerLedger
    let leaseSeconds: Double
    let logger: Logger

    func run() async {
        let interval = Duration.seconds(max(leaseSeconds / 3, 0.2))
        while !Task.isCancelled {
            let held = ledger.state.withLock { $0.inFlight.values.map { (id: $0.id, claim: $0.claim) } }
            do {
                let renewed = try await store.renewLeases(held, owner: id, leaseSeconds: leaseSeconds)
                if renewed.count < held.count {
                    logger.debug(
                        "leases not renewed (being recorded, or taken back)",
                        metadata: ["jobs": "\(held.count - renewed.count)"])
                }
                try await store.heartbeat(id, inFlight: held.count)
            } catch {
                logger.warning("renewing leases failed", metadata: ["jury.error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
