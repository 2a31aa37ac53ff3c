import Synchronization

/// What a process tells its liveness and readiness probes.
///
/// Alive: its main loop has turned within `staleAfter` (a wedged process is restarted).
/// Ready: it has reached the database within `staleAfter`, and is not stopping.
public final class ProcessProbes: Sendable {
    private struct State {
        var startedAt = ContinuousClock.now
        var lastTurn: ContinuousClock.Instant?
        var lastDatabaseContact: ContinuousClock.Instant?
        var stopping = false
    }

    public let staleAfter: Duration
    private let state = Mutex(State())

    public init(staleAfter: Duration = .seconds(60)) {
        self.staleAfter = staleAfter
    }

    /// The main loop turned.
    func turned() { state.withLock { $0.lastTurn = .now } }

    /// A statement just succeeded.
    func reachedDatabase() {
        state.withLock { state in
            state.lastTurn = .now
            state.lastDatabaseContact = .now
        }
    }

    /// The process is draining or stopping: it takes no new work.
    func stopping() { state.withLock { $0.stopping = true } }

    public var isAlive: Bool {
        state.withLock { state in
            ContinuousClock.now - (state.lastTurn ?? state.startedAt) < staleAfter
        }
    }

    public var isReady: Bool {
        state.withLock { state in
            guard !state.stopping, let contact = state.lastDatabaseContact else { return false }
            return ContinuousClock.now - contact < staleAfter
        }
    }
}
