import CLibPQ
import Dispatch
import Foundation

/// Cancels the statement a connection is running, from any thread.
///
/// libpq's `PQcancel` is thread-safe and opens a connection of its own, so it runs on a global
/// queue, never in the cancelling task, and without holding the lock (it may wait on the network).
final class StatementCanceller: @unchecked Sendable {
    /// Owns one `PGcancel`; freed when the last user lets go of it.
    private final class Handle: @unchecked Sendable {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { PQfreeCancel(pointer) }
    }

    private let lock = NSLock()
    private var handle: Handle?
    /// The call whose statement is on the wire, if any: a cancel must hit that call's statement
    /// only, never the next one, nor one that another task runs on the same connection.
    private var runningCall: UInt64?
    private var lastCall: UInt64 = 0

    /// A number for a call about to run; cancel it with `cancel(call:)`.
    func nextCall() -> UInt64 {
        lock.withLock {
            lastCall += 1
            return lastCall
        }
    }

    /// Marks `call` as running (or, with nil, that no statement is).
    func setRunning(_ call: UInt64?) {
        lock.withLock { runningCall = call }
    }

    func replace(with pointer: OpaquePointer?) {
        let handle = pointer.map(Handle.init)
        lock.withLock { self.handle = handle }
    }

    /// Cancels the statement of `call` if it is running now.
    func cancel(call: UInt64) {
        DispatchQueue.global().async {
            guard let handle = self.lock.withLock({ self.runningCall == call ? self.handle : nil }) else { return }
            var message = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &message, Int32(message.count))
        }
    }
}
