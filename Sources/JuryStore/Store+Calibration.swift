import Foundation
public import JuryDomain
import JuryPostgres

/// What calibration reads and keeps.
extension Store {
    /// Every example of a run with its votes, in id order (for calibration and Dawid-Skene).
    public func examplesWithVotes(runID: Int64) async throws -> [ExampleVotes] {
        try await connection.transaction { connection in
            try await Self.examplesWithVotes(runID: runID, on: connection)
        }
    }

    /// Invalid answers per example and judge, on the examples of the run that carry a human label.
    public func invalidAnswersOnLabelledExamples(runID: Int64) async throws -> [Int64: [String: Int]] {
        var result: [Int64: [String: Int]] = [:]
        for row in try await connection.query(
            """
            SELECT a.example_id, a.judge, count(*)::int AS answers
            FROM invalid_answers a JOIN examples e ON e.id = a.example_id
            WHERE a.run_id = \(runID) AND e.human_label IS NOT NULL
            GROUP BY a.example_id, a.judge
            """)
        {
            result[try row.decode("example_id"), default: [:]][try row.decode("judge")] = try row.decode("answers")
        }
        return result
    }

    /// Keeps a calibration's report; the run's last one gives `weighted` its default weights.
    public func saveCalibration(_ calibration: Calibration, runID: Int64) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let report = String(decoding: try encoder.encode(calibration), as: UTF8.self)
        try await connection.query("INSERT INTO calibrations (run_id, report) VALUES (\(runID), \(report)::jsonb)")
    }

    /// The run's last calibration, if any.
    public func lastCalibration(runID: Int64) async throws -> Calibration? {
        let rows = try await connection.query(
            "SELECT report::text AS report FROM calibrations WHERE run_id = \(runID) ORDER BY id DESC LIMIT 1")
        guard let row = rows.first else { return nil }
        return try JSONDecoder().decode(Calibration.self, from: Data(try row.decode("report", as: String.self).utf8))
    }

    /// SHA-256 of the run's stored config (as PostgreSQL prints the jsonb), in hex: names the
    /// exact config an export came from.
    public func configHash(runID: Int64) async throws -> String {
        try await connection.query(
            "SELECT encode(sha256(convert_to(config::text, 'UTF8')), 'hex') AS hash FROM runs WHERE id = \(runID)"
        )[0].decode("hash")
    }
}
