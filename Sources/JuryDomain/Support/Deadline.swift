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
    let timer = Task {
        try? await Task.sleep(for: duration)
        outcome.deliver(.failure(DeadlineExceeded()))
    }
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
