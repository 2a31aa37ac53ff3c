import Synchronization

/// A signal one task waits on and others raise: a wait ends when the signal is raised (or was
/// raised since the last wait), when its timeout passes, or when the waiting task is cancelled.
///
/// Spurious wake-ups are possible (a timer that fires as a raise comes); waiters re-check what they wait for.
final class Wakeup: Sendable {
    private struct State {
        var raised = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Also called on every raise: ends a wait that is not on this signal (a claimer asleep
        /// on its connection's socket for notifications).
        ///
        /// It lives in this struct, never as a mutex's whole value: `Mutex<(() -> Void)?>` hands
        /// its value to `withLock` as a generic inout, and each call wrapped the closure in two
        /// more reabstraction thunks. After millions of raises the chain took most of a worker's
        /// CPU to call, and releasing it overflowed the stack.
        var alsoOnRaise: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func alsoOnRaise(_ action: @escaping @Sendable () -> Void) {
        state.withLock { $0.alsoOnRaise = action }
    }

    /// Whether the signal was raised since the last wait, clearing it.
    func consume() -> Bool {
        state.withLock { state in
            defer { state.raised = false }
            return state.raised
        }
    }

    func raise() {
        let (hook, waiter) = state.withLock { state -> ((@Sendable () -> Void)?, CheckedContinuation<Void, Never>?) in
            let hook = state.alsoOnRaise
            guard let waiter = state.waiter else {
                state.raised = true
                return (hook, nil)
            }
            state.waiter = nil
            return (hook, waiter)
        }
        hook?()
        waiter?.resume()
    }

    /// Waits for a raise, at most `timeout` when given. One waiter at a time.
    func wait(timeout: Duration? = nil) async {
        let timer = timeout.map { timeout in
            Task {
                try await Task.sleep(for: timeout)
                self.raise()
            }
        }
        defer { timer?.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.raised || Task.isCancelled {
                        state.raised = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            raise()
        }
    }
}
