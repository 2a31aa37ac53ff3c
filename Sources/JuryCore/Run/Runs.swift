import Foundation

/// A run as stored in the database.
public struct StoredRun: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let config: RunConfig
    public let state: String
}

/// Reading and writing runs.
public enum Runs {
    /// Stores a run. Storing the same config again is a no-op; a different config under an
    /// existing name is an error (a run's judges and rule must not change under its votes).
    public static func create(_ config: RunConfig, on connection: PostgresConnection) async throws -> (
        run: StoredRun, created: Bool
    ) {
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let limited = config.judges.filter { $0.requestsPerMinute != nil }
        let perSecond = limited.map { Double($0.requestsPerMinute!) / 60 }
        let id: Int64? = try await connection.transaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO runs (name, config) VALUES (\(config.name), \(json)::jsonb)
                ON CONFLICT (name) DO NOTHING RETURNING id
                """)
            guard let id = try inserted.first?.decode("id", as: Int64.self) else { return nil }
            // A full bucket to start: one second's worth of requests, at least one.
            try await connection.query(
                """
                INSERT INTO judge_limits (run_id, judge, per_second, burst, tokens)
                SELECT \(id), judge, per_second, greatest(1, per_second), greatest(1, per_second)
                FROM unnest(\(limited.map(\.name))::text[], \(perSecond)::float8[]) AS l (judge, per_second)
                """)
            return id
        }
        if let id {
            return (StoredRun(id: id, name: config.name, config: config, state: "active"), true)
        }
        let existing = try await find(config.name, on: connection)
        guard existing.config == config else {
            throw JuryError(
                .conflict,
                "a run named '\(config.name)' already exists with a different config; give the new run another name")
        }
        return (existing, false)
    }

    /// The run with this name, or an error that says how to create it.
    public static func find(_ name: String, on connection: PostgresConnection) async throws -> StoredRun {
        let rows = try await connection.query("SELECT id, name, config, state FROM runs WHERE name = \(name)")
        guard let row = rows.first else { throw JuryError.unknownRun(name) }
        return try decode(row)
    }

    /// Runs whose jobs workers should claim: the active ones, or only `name`.
    public static func active(named name: String?, on connection: PostgresConnection) async throws -> [StoredRun] {
        let rows = try await connection.query(
            "SELECT id, name, config, state FROM runs WHERE state = 'active' AND (\(name)::text IS NULL OR name = \(name)) ORDER BY id"
        )
        return try rows.map(decode)
    }

    static func decode(_ row: PostgresRow) throws -> StoredRun {
        let json: String = try row.decode("config")
        let config = try JSONDecoder().decode(RunConfig.self, from: Data(json.utf8))
        return StoredRun(
            id: try row.decode("id"), name: try row.decode("name"), config: config, state: try row.decode("state"))
    }
}
