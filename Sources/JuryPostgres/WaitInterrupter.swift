#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lets another thread end a `poll` on the connection's socket early: the poll watches a pipe
/// too, and a byte written to it wakes the poll. Used when the task waiting for notifications
/// is cancelled, so that a listener stops at once instead of at the end of its wait.
final class WaitInterrupter: Sendable {
    /// The end `poll` watches; -1 when no pipe could be made (waits then run their full time).
    let readDescriptor: Int32
    private let writeDescriptor: Int32

    init() {
        var descriptors: [Int32] = [-1, -1]
        guard pipe(&descriptors) == 0 else {
            (readDescriptor, writeDescriptor) = (-1, -1)
            return
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        (readDescriptor, writeDescriptor) = (descriptors[0], descriptors[1])
    }

    deinit {
        if readDescriptor >= 0 {
            close(readDescriptor)
            close(writeDescriptor)
        }
    }

    /// Wakes the poll under way, or the next one.
    func interrupt() {
        guard writeDescriptor >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe after a poll, so that one interruption ends one wait.
    func reset() {
        guard readDescriptor >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readDescriptor, &buffer, buffer.count) > 0 {}
    }
}
