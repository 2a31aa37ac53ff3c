import Dispatch
import Synchronization

/// Thrown by `withDeadline` when the work did not finish in time.
public struct DeadlineExceeded: Error, Sendable {}

/// Runs `work` and returns its result, or throws `DeadlineExceeded` once `duration` has passed.
///
/// The caller gets control back at the deadline even when `work` ignores cancellation (a
/// blocked libpq call, a body that never ends): `work` runs in a task of its own, which is
/// cancelled and left to finish by itself. Cancelling the caller cancels `work` the same way.
public func withDeadline<T: Sendable>(
    _ duration: Duration, _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = FirstOutcome<T>()
    let worker = Task {
        do {
            outcome.deliver(.success(try await work()))
        } catch {
            outcome.deliver(.failure(error))
        }
    }
    // A dispatch timer, not a task that sleeps: a cancelled Task.sleep leaves its allocations
    // with the runtime's timer until its deadline passes (about 560 bytes a call), so a worker
    // making thousands of calls a second held hundreds of MB for the 120 s timeout, and a timer
    // heap as large. A cancelled dispatch timer leaves the heap at once.
    let timer = DispatchSource.makeTimerSource(queue: .global())
    timer.schedule(deadline: .now() + dispatchInterval(duration))
    timer.setEventHandler { outcome.deliver(.failure(DeadlineExceeded())) }
    timer.resume()
    defer {
        worker.cancel()
        timer.cancel()
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { outcome.wait(with: $0) }
    } onCancel: {
        outcome.deliver(.failure(CancellationError()))
    }
}

/// `duration` for Dispatch, in nanoseconds, at most a year (no deadline here is longer).
private func dispatchInterval(_ duration: Duration) -> DispatchTimeInterval {
    let (seconds, attoseconds) = duration.components
    let year: Int64 = 365 * 24 * 3600
    return .nanoseconds(Int(max(0, min(seconds, year) * 1_000_000_000 + attoseconds / 1_000_000_000)))
}

/// The first of several results, handed to one waiter whether it comes before or after the wait.
private final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, Error>?
        var waiter: CheckedContinuation<T, Error>?
    }
    private let state = Mutex(State())

    func deliver(_ result: Result<T, Error>) {
        state.withLock { state in
            guard state.result == nil else { return }
            state.result = result
            state.waiter?.resume(with: result)
            state.waiter = nil
        }
    }

    func wait(with continuation: CheckedContinuation<T, Error>) {
        state.withLock { state in
            if let result = state.result {
                continuation.resume(with: result)
            } else {
                state.waiter = continuation
            }
        }
    }
}
