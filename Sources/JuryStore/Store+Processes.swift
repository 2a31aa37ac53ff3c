import Foundation
import JuryPostgres

/// The `workers` table: which worker and reducer processes are alive, for people and views.
extension Store {
    /// A process id unique across machines: host, pid, role and a random part.
    public static func processID(role: String) -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(role):\(UInt16.random(in: 0...UInt16.max))"
    }

    public func registerProcess(_ id: String, role: String) async throws {
        try await connection.query(
            """
            SELECT jury_register_process(\(id), \(role), \(ProcessInfo.processInfo.hostName), \(Int(getpid())))
            """)
    }

    /// Beats the process's heartbeat, which holds the lease of every job it owns for
    /// `leaseSeconds` more. Returns false when that lease had lapsed: the reaper may have taken
    /// the jobs back.
    @discardableResult
    public func heartbeat(_ id: String, inFlight: Int, leaseSeconds: Double) async throws -> Bool {
        try await connection.query(
            "SELECT jury_process_heartbeat(\(id), \(inFlight), \(leaseSeconds)) AS held")[0].decode("held")
    }

    /// Marks the process stopped; best effort, as the database may be what stopped it.
    public func processStopped(_ id: String) async {
        _ = try? await connection.query("SELECT jury_process_stopped(\(id))")
    }
}
