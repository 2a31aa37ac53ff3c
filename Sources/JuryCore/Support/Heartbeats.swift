import Foundation

/// The `workers` table: which worker and reducer processes are alive, for people and views.
enum Heartbeats {
    static func processID(role: String) -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(role):\(UInt16.random(in: 0...UInt16.max))"
    }

    static func register(_ id: String, role: String, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO workers (id, role, host, pid) VALUES (\(id), \(role), \(ProcessInfo.processInfo.hostName), \(Int(getpid())))
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL
            """)
    }

    static func beat(_ id: String, inFlight: Int, on connection: PostgresConnection) async throws {
        try await connection.query("UPDATE workers SET heartbeat_at = now(), in_flight = \(inFlight) WHERE id = \(id)")
    }

    static func stopped(_ id: String, on connection: PostgresConnection) async {
        _ = try? await connection.query("UPDATE workers SET stopped_at = now(), in_flight = 0 WHERE id = \(id)")
    }
}
