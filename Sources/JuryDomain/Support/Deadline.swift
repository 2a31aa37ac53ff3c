import Dispatch
public import Synchronization

/// Thrown by `withDeadline` when the work did not finish in time.
public struct DeadlineExceeded: Error, Sendable {
    public init() {}
}

/// Runs `work` and returns its result, or throws `DeadlineExceeded` once `duration` has passed.
///
/// The caller gets control back at the deadline even when `work` ignores cancellation (a
/// blocked libpq call, a body that never ends): `work` runs in a task of its own, which is
/// cancelled and left to finish by itself. Cancelling the caller cancels `work` the same way.
@inlinable public func withDeadline<T: Sendable>(
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
    let alarm = DeadlineTimer.shared.add(after: duration) { outcome.deliver(.failure(DeadlineExceeded())) }
    defer {
        worker.cancel()
        DeadlineTimer.shared.remove(alarm)
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { outcome.wait(with: $0) }
    } onCancel: {
        outcome.deliver(.failure(CancellationError()))
    }
}

/// Every deadline of the process on one dispatch timer, set for the earliest one.
///
/// A dispatch timer per call (created, resumed and cancelled, each a wake-up of libdispatch's
/// manager thread) took about a fifth of a worker's CPU at 10,000 judge calls a second. A task
/// that sleeps would not do either: a cancelled `Task.sleep` keeps its allocations until its
/// deadline passes (about 560 bytes a call, for the 120 s timeout). Here a removed deadline
/// leaves its action at once, and its place in the heap when the heap is rebuilt, which happens
/// before stale places outnumber the live ones: memory stays in proportion to the deadlines
/// pending.
@usableFromInline final class DeadlineTimer: Sendable {
    @usableFromInline static let shared = DeadlineTimer()

    private struct Place {
        let due: UInt64
        let id: UInt64
    }

    private struct State {
        var actions: [UInt64: @Sendable () -> Void] = [:]
        /// A binary min-heap of places by `due`; some belong to removed deadlines.
        var heap: [Place] = []
        var nextID: UInt64 = 0
        /// What the timer is set for, if anything.
        var armedFor: UInt64?
    }

    private let state = Mutex(State())
    /// Set only under the state's lock. (Dispatch sources are thread-safe; the type does not say so.)
    nonisolated(unsafe) private let timer: any DispatchSourceTimer

    init() {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "jury.deadlines"))
        timer.setEventHandler { [weak self] in self?.fire() }
        timer.schedule(deadline: .distantFuture)
        timer.resume()
    }

    /// Runs `action` once `duration` has passed, unless removed before.
    @usableFromInline func add(after duration: Duration, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let due = DispatchTime.now().uptimeNanoseconds &+ nanoseconds(duration)
        return state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.actions[id] = action
            if state.heap.count >= 64, state.heap.count >= 2 * state.actions.count {
                state.heap.removeAll { state.actions[$0.id] == nil }
                Self.heapify(&state.heap)
            }
            Self.push(Place(due: due, id: id), into: &state.heap)
            if state.armedFor.map({ due < $0 }) ?? true {
                state.armedFor = due
                timer.schedule(deadline: DispatchTime(uptimeNanoseconds: due))
            }
            return id
        }
    }

    /// Forgets a deadline; its action will not run. (It may run already, on the timer's queue.)
    @usableFromInline func remove(_ id: UInt64) {
        _ = state.withLock { $0.actions.removeValue(forKey: id) }
    }

    /// How many deadlines are pending, and how many places the heap holds (for tests).
    var counts: (pending: Int, places: Int) { state.withLock { ($0.actions.count, $0.heap.count) } }

    private func fire() {
        let now = DispatchTime.now().uptimeNanoseconds
        let due: [@Sendable () -> Void] = state.withLock { state in
            var due: [@Sendable () -> Void] = []
            // Places of removed deadlines go too, so that the timer is set for a live one.
            while let first = state.heap.first, first.due <= now || state.actions[first.id] == nil {
                Self.popFirst(from: &state.heap)
                if let action = state.actions.removeValue(forKey: first.id) { due.append(action) }
            }
            state.armedFor = state.heap.first?.due
            timer.schedule(deadline: state.armedFor.map { DispatchTime(uptimeNanoseconds: $0) } ?? .distantFuture)
            return due
        }
        for action in due { action() }
    }

    private static func push(_ place: Place, into heap: inout [Place]) {
        heap.append(place)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private static func popFirst(from heap: inout [Place]) {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        siftDown(0, in: &heap)
    }

    private static func heapify(_ heap: inout [Place]) {
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index, in: &heap) }
    }

    private static func siftDown(_ start: Int, in heap: inout [Place]) {
        var parent = start
        while true {
            var smallest = parent
            for child in (2 * parent + 1)...(2 * parent + 2)
            where child < heap.count && heap[child].due < heap[smallest].due {
                smallest = child
            }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

/// `duration` in nanoseconds, at most a year (no deadline here is longer).
private func nanoseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    let year: Int64 = 365 * 24 * 3600
    return UInt64(max(0, min(seconds, year) * 1_000_000_000 + attoseconds / 1_000_000_000))
}

/// The first of several results, handed to one waiter whether it comes before or after the wait.
/// (Inlinable with `withDeadline`: specialised in its callers, a call looks up no type metadata.)
@usableFromInline final class FirstOutcome<T: Sendable>: Sendable {
    @usableFromInline struct State {
        @usableFromInline var result: Result<T, Error>?
        @usableFromInline var waiter: CheckedContinuation<T, Error>?

        @inlinable init() {}
    }
    @usableFromInline let state: Mutex<State> = Mutex(State())

    @inlinable init() {}

    @inlinable func deliver(_ result: Result<T, Error>) {
        state.withLock { state in
            guard state.result == nil else { return }
            state.result = result
            state.waiter?.resume(with: result)
            state.waiter = nil
        }
    }

    @inlinable func wait(with continuation: CheckedContinuation<T, Error>) {
        state.withLock { state in
            if let result = state.result {
                continuation.resume(with: result)
            } else {
                state.waiter = continuation
            }
        }
    }
}
