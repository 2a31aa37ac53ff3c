public import Foundation
import JuryDomain

/// A child process started with posix_spawn and reaped with waitpid.
///
/// Foundation's `Process.waitUntilExit` can hang on Linux when called off the main thread
/// (seen here in tests); this does the little Jury needs with the system calls themselves.
public struct Subprocess: Sendable {
    public let pid: pid_t

    /// Starts `executable` with `arguments`; its output goes to `outputPath` (or is inherited), stdin is /dev/null.
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil
    ) throws -> Subprocess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environment = environment ?? ProcessInfo.processInfo.environment
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        // A child inherits the signals its parent ignores, and its signal mask (a parent started
        // with nohup, a test that ignores SIGTERM): what is started here must still end by them.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw JuryError(.io, "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        return Subprocess(pid: pid)
    }

    /// Waits for the process to end; returns its exit status, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    public func kill(_ signal: Int32) {
        _ = Foundation.kill(pid, signal)
    }

    /// Waits for the process to end without holding a thread of Swift's pool, and returns what
    /// `wait()` does. If the task is cancelled meanwhile, the process is sent SIGTERM, so that
    /// whoever cancelled is not kept waiting for it.
    public func exitStatus() async -> Int32 {
        let reaping = Reaping()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    // Wait without reaping: until it is reaped the pid cannot name another process,
                    // so a cancellation that comes meanwhile signals this one or a harmless zombie.
                    var info = siginfo_t()
                    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
                    continuation.resume(returning: reaping.reap { wait() })
                }
            }
        } onCancel: {
            reaping.unlessReaped { kill(SIGTERM) }
        }
    }

    /// Runs a command to the end and returns its exit status and output (stdout and stderr).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
        -> (status: Int32, output: String)
    {
        let output = OutputFile()
        defer { output.remove() }
        let status = try spawn(executable, arguments, environment: environment, outputPath: output.path).wait()
        return (status, output.text)
    }

    /// As `run`, waiting without holding a thread of Swift's pool; a cancelled task ends the
    /// command (see `exitStatus`).
    public static func runCancellably(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    ) async throws -> (status: Int32, output: String) {
        let output = OutputFile()
        defer { output.remove() }
        let status = try await spawn(executable, arguments, environment: environment, outputPath: output.path)
            .exitStatus()
        return (status, output.text)
    }
}

/// A temporary file for a command's output.
private struct OutputFile {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("jury-\(UUID().uuidString).out").path

    var text: String {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Keeps a signal from reaching a pid after its process was reaped (and the pid maybe reused).
private final class Reaping: @unchecked Sendable {
    private let lock = NSLock()
    private var reaped = false

    func reap(_ wait: () -> Int32) -> Int32 {
        lock.withLock {
            reaped = true
            return wait()
        }
    }

    func unlessReaped(_ body: () -> Void) {
        lock.withLock {
            if !reaped { body() }
        }
    }
}
