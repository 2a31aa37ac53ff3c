import Foundation

/// Where PostgreSQL's client programs (pgbench, pg_dump) are: pg_config's bindir first (Debian
/// keeps some off the PATH, and it is the server's version), then the PATH.
public enum PostgresProgram {
    public static func path(_ program: String) -> String? {
        if let pgConfig = onPath("pg_config"), let (status, output) = try? Subprocess.run(pgConfig, ["--bindir"]),
            status == 0
        {
            let candidate = output.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + program
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return onPath(program)
    }

    private static func onPath(_ command: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/\(command)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
