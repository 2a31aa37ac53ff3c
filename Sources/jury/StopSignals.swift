import CStopSignals
import Foundation

/// SIGTERM and SIGINT, as a command that stops gracefully receives them.
///
/// Until `caught` is first read, the signals keep their default action and end the process at
/// once, as they should while nothing has started. From then on every one arrives here, in
/// order: caught by a handler that writes to a pipe (CStopSignals), read by a thread of its own.
enum StopSignals {
    /// The signals caught, for one reader.
    static let caught: AsyncStream<Int32> = {
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        let pipe = jury_catch_stop_signals()
        guard pipe >= 0 else {
            // Without a pipe (no file descriptor left), the default actions still stop the process.
            FileHandle.standardError.write(
                Data("cannot catch SIGTERM and SIGINT: \(String(cString: strerror(errno)))\n".utf8))
            return signals
        }
        let reader = Thread {
            var number: UInt8 = 0
            while true {
                let count = read(pipe, &number, 1)
                if count == 1 {
                    continuation.yield(Int32(number))
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            continuation.finish()
        }
        reader.name = "jury stop signals"
        reader.start()
        return signals
    }()

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        default: "signal \(signal)"
        }
    }
}
