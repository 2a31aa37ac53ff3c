import Foundation
import Logging

/// What an enqueue did.
public struct EnqueueReport: Sendable, Equatable {
    /// Lines read from the file.
    public var examples: Int
    /// Examples that were not in the run before.
    public var new: Int
    /// Jobs created: new examples × judges.
    public var jobs: Int
    /// Ids already in the run whose line now differs (payload, batch or labels): kept as they were.
    public var changed: Int
    /// The first few of those ids.
    public var changedIDs: [String]

    public init(examples: Int, new: Int, jobs: Int, changed: Int = 0, changedIDs: [String] = []) {
        self.examples = examples
        self.new = new
        self.jobs = jobs
        self.changed = changed
        self.changedIDs = changedIDs
    }
}

/// The coordinator: loads a JSONL corpus into a run, one job per example and judge.
///
/// The whole file goes in one transaction: a bad line (malformed JSON, no id, an id seen
/// twice in the file, a key repeated in an object, a label outside the taxonomy, a line
/// longer than `maxLineBytes`) aborts it, and the error names the line. Ids compare by their
/// bytes, as PostgreSQL compares them: two spellings of one accented letter are two ids. Ids
/// already in the run are skipped, so enqueueing the same file again is a no-op; those whose
/// line changed since are counted in the report.
public struct Enqueuer: Sendable {
    public let connection: PostgresConnection
    public let logger: Logger
    /// The longest line accepted, in bytes.
    public var maxLineBytes: Int

    /// The default for `maxLineBytes`: 1 MiB.
    public static let defaultMaxLineBytes = 1 << 20

    public init(connection: PostgresConnection, logger: Logger, maxLineBytes: Int = Enqueuer.defaultMaxLineBytes) {
        self.connection = connection
        self.logger = logger
        self.maxLineBytes = maxLineBytes
    }

    public func enqueue(file path: String, run runName: String, batch: String? = nil) async throws -> EnqueueReport {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw JuryError(.io, "cannot read \(path)")
        }
        defer { try? handle.close() }
        let batch = batch ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let run = try await Runs.find(runName, on: connection)
        guard run.state == "active" || run.state == "paused" else {
            throw JuryError(.conflict, "run '\(runName)' is \(run.state); create a new run for new examples")
        }
        var reader = JSONLReader(
            handle: handle, file: path, labels: Set(run.config.labels), maxLineBytes: maxLineBytes)
        let judges = run.config.judges.map(\.name)
        let votesNeeded = run.config.rule.votesNeeded(judges: judges.count)

        let report = try await connection.transaction { connection in
            // A corpus of millions of lines takes longer than the statement timeout workers use.
            try await connection.execute(script: "SET LOCAL statement_timeout = 0")
            try await connection.execute(
                script: """
                    CREATE TEMP TABLE jury_incoming (
                        external_id text, payload jsonb, human_label text, source_label text, line int
                    ) ON COMMIT DROP
                    """)
            let copied = try await connection.copyIn(
                "COPY jury_incoming (external_id, payload, human_label, source_label, line) FROM STDIN"
            ) {
                try reader.nextChunk()
            }
            let counts = try await connection.query(
                """
                WITH new_examples AS (
                    INSERT INTO examples (run_id, batch, external_id, payload, human_label, source_label,
                                          jobs_total, jobs_open, votes_needed)
                    SELECT \(run.id), \(batch), external_id, payload, human_label, source_label,
                           \(judges.count), \(judges.count), \(votesNeeded)
                    FROM jury_incoming ORDER BY line
                    ON CONFLICT (run_id, external_id) DO NOTHING
                    RETURNING id
                ), new_jobs AS (
                    INSERT INTO jobs (run_id, example_id, judge)
                    SELECT \(run.id), n.id, judge FROM new_examples n CROSS JOIN unnest(\(judges)::text[]) AS judge
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM new_examples) AS new, (SELECT count(*) FROM new_jobs) AS jobs
                """)
            // Ids that were in the run already but whose line says something else now: not silently ignored.
            let changed = try await connection.query(
                """
                SELECT count(*) AS changed,
                       coalesce(to_jsonb((array_agg(i.external_id ORDER BY i.line))[1:5]), '[]')::text AS sample
                FROM jury_incoming i
                JOIN examples e ON e.run_id = \(run.id) AND e.external_id = i.external_id
                WHERE e.payload <> i.payload OR e.batch <> \(batch) OR e.human_label IS DISTINCT FROM i.human_label
                   OR e.source_label IS DISTINCT FROM i.source_label
                """)[0]
            let report = EnqueueReport(
                examples: copied, new: try counts[0].decode("new"), jobs: try counts[0].decode("jobs"),
                changed: try changed.decode("changed"),
                changedIDs: try JSONDecoder().decode(
                    [String].self, from: Data(try changed.decode("sample", as: String.self).utf8)))
            if report.jobs > 0 {
                try await connection.notify(WorkQueue.jobsChannel)
            }
            logger.info(
                "enqueued",
                metadata: [JuryMetadata.run: "\(runName)", "examples": "\(report.examples)", "new": "\(report.new)"])
            return report
        }
        // A large load changes the tables faster than autovacuum notices: without fresh
        // statistics the planner can pick scans that slow every claim of the run.
        if report.new >= 1000 {
            try await connection.execute(script: "ANALYZE examples, jobs")
        }
        return report
    }
}

/// Reads a JSONL corpus and turns it into COPY rows, validating each line.
struct JSONLReader {
    let handle: FileHandle
    let file: String
    let labels: Set<String>
    let maxLineBytes: Int
    private var buffer: [UInt8] = []
    /// Where the unread part of `buffer` starts: lines are consumed by moving it, not by shifting bytes.
    private var start = 0
    private var atEnd = false
    private var lineNumber = 0
    /// By bytes: Swift's String equality would take two Unicode spellings of an id for one.
    private var seenIDs = Set<[UInt8]>()

    init(handle: FileHandle, file: String, labels: Set<String>, maxLineBytes: Int) {
        self.handle = handle
        self.file = file
        self.labels = labels
        self.maxLineBytes = maxLineBytes
    }

    /// The COPY rows for the next lines of the file, about a megabyte at a time; nil at the end.
    mutating func nextChunk() throws -> [UInt8]? {
        var output: [UInt8] = []
        while output.count < 1 << 20 {
            guard let line = try nextLine() else { break }
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
                continue  // blank lines, including a trailing one, are allowed
            }
            output += try copyRow(for: line)
        }
        return output.isEmpty ? nil : output
    }

    private mutating func nextLine() throws -> ArraySlice<UInt8>? {
        var searched = start
        while true {
            if let newline = buffer[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                try checkLength(line.count)
                start = newline + 1
                return line
            }
            // Refused before it is read whole: a file without newlines must not fill the memory.
            try checkLength(buffer.count - start)
            searched = buffer.count
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                return line
            }
            let data = try handle.read(upToCount: 1 << 20) ?? Data()
            if data.isEmpty {
                atEnd = true
            } else {
                searched -= start
                buffer.removeSubrange(..<start)  // once per megabyte read
                start = 0
                buffer += data
            }
        }
    }

    private func checkLength(_ count: Int) throws {
        guard count <= maxLineBytes else {
            throw JuryError.invalidInput(
                file, line: lineNumber + 1,
                "the line is longer than \(maxLineBytes) bytes (raise the limit with --max-line-bytes)")
        }
    }

    private mutating func copyRow(for line: ArraySlice<UInt8>) throws -> [UInt8] {
        func fail(_ reason: String) -> JuryError { .invalidInput(file, line: lineNumber, reason) }
        if let problem = JSONStrictness.problem(in: line) { throw fail("not valid JSON: \(problem)") }
        guard case .object(var object) = try? JSONValue.parse(line) else {
            throw fail((try? JSONValue.parse(line)) == nil ? "not valid JSON" : "expected a JSON object")
        }
        let id: String
        switch object["id"] {
        case .string(let text) where !text.isEmpty: id = text
        case .integer(let number): id = String(number)
        case nil: throw fail("missing \"id\"")
        default: throw fail("\"id\" must be a non-empty string or an integer")
        }
        guard seenIDs.insert(Array(id.utf8)).inserted else { throw fail("id \"\(id)\" appears earlier in the file") }
        var labelsFound: [String: String] = [:]
        for key in ["human_label", "source_label"] {
            switch object[key] {
            case nil, .null: continue
            case .string(let label) where labels.contains(label): labelsFound[key] = label
            case .string(let label):
                throw fail(
                    "\(key) \"\(label)\" is not in the run's taxonomy (\(labels.sorted().joined(separator: ", ")))")
            default: throw fail("\(key) must be a string")
            }
        }
        // PostgreSQL's text and jsonb cannot hold the NUL character; say so here, with the line.
        if JSONValue.object(object).containsNUL {
            throw fail("contains the NUL character (\\u0000), which PostgreSQL cannot store")
        }
        object.removeValue(forKey: "id")
        object.removeValue(forKey: "human_label")
        object.removeValue(forKey: "source_label")
        let payloadJSON = JSONValue.object(object).jsonText
        var row: [UInt8] = []
        row.reserveCapacity(payloadJSON.utf8.count + id.utf8.count + 64)
        CopyText.append(id, to: &row)
        row.append(UInt8(ascii: "\t"))
        CopyText.append(payloadJSON, to: &row)
        row.append(UInt8(ascii: "\t"))
        CopyText.append(labelsFound["human_label"], to: &row)
        row.append(UInt8(ascii: "\t"))
        CopyText.append(labelsFound["source_label"], to: &row)
        row.append(UInt8(ascii: "\t"))
        CopyText.append(String(lineNumber), to: &row)
        row.append(UInt8(ascii: "\n"))
        return row
    }
}

/// COPY's text format: backslash escapes for the bytes that separate columns and rows.
enum CopyText {
    static func append(_ value: String?, to row: inout [UInt8]) {
        guard let value else {
            row += [UInt8(ascii: "\\"), UInt8(ascii: "N")]
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): row += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\t"): row += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case UInt8(ascii: "\n"): row += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): row += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            default: row.append(byte)
            }
        }
    }
}
