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
    private var _running = false

    /// Whether a statement is on the wire; a cancel outside one would hit the next statement.
    var running: Bool {
        get { lock.withLock { _running } }
        set { lock.withLock { _running = newValue } }
    }

    func replace(with pointer: OpaquePointer?) {
        let handle = pointer.map(Handle.init)
        lock.withLock { self.handle = handle }
    }

    func cancelRunningStatement() {
        DispatchQueue.global().async {
            guard let handle = self.lock.withLock({ self._running ? self.handle : nil }) else { return }
            var message = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &message, Int32(message.count))
        }
    }
}
