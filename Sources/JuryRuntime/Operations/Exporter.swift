import Foundation
public import JuryDomain
public import JuryStore

/// Writes a run's verdicts as JSONL: each example's fields, its verdict, and every judge's vote.
public enum Exporter {
    /// Writes to `path` atomically (a temporary file renamed at the end); returns the number of lines.
    public static func export(run: String, status: Verdict.Status?, to path: String, from store: Store) async throws
        -> Int
    {
        let stored = try await store.findRun(run)
        let temporary = path + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary)
        else {
            throw JuryError(.io, "cannot write \(path)")
        }
        var written = 0
        do {
            try await store.exportVerdicts(runID: stored.id, status: status) { lines in
                try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
                written += lines.count
            }
            try handle.close()
            _ = try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return written
    }
}
