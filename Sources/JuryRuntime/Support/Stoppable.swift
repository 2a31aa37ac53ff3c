import ServiceLifecycle

/// Runs a service's work in a task of its own, and turns graceful shutdown and cancellation
/// into stop requests: `stop(true)` to drain, `stop(false)` to stop at once.
///
/// The work must not run in the cancelled task itself: what it does to stop (record outcomes,
/// commit a batch) would then be cancelled too, and its waits would end at once and spin.
func runStoppable(
    _ work: @escaping @Sendable () async throws -> Void, stop: @escaping @Sendable (_ draining: Bool) -> Void
) async throws {
    let task = Task { try await work() }
    try await withTaskCancellationHandler {
        try await withGracefulShutdownHandler {
            try await task.value
        } onGracefulShutdown: {
            stop(true)
        }
    } onCancel: {
        stop(false)
    }
}
