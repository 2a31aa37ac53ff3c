import Foundation
public import JuryDomain
public import JuryStore
public import Logging

/// The coordinator: loads a JSONL corpus into a run, one job per example and judge.
///
/// The whole file is checked first: a bad line (malformed JSON, no id, an id seen twice in the
/// file, a key repeated in an object, a label outside the taxonomy, a line longer than
/// `maxLineBytes`) stops it before anything is written, and the error names the line. Then it
/// goes in through COPY in chunks of `examplesPerTransaction`, each its own transaction, so a
/// corpus of millions never holds back vacuum for minutes. Ids compare by their bytes, as
/// PostgreSQL compares them: two spellings of one accented letter are two ids. Ids already in
/// the run are skipped, so enqueueing the same file again is a no-op, and an enqueue that was
/// interrupted resumes where it stopped; ids whose line changed since are counted in the report.
public struct Enqueuer: Sendable {
    public let store: Store
    public let logger: Logger
    /// The longest line accepted, in bytes.
    public var maxLineBytes: Int

    /// Examples per transaction.
    public var examplesPerTransaction: Int

    /// The default for `maxLineBytes`: 1 MiB.
    public static let defaultMaxLineBytes = 1 << 20

    public init(
        store: Store, logger: Logger, maxLineBytes: Int = Enqueuer.defaultMaxLineBytes,
        examplesPerTransaction: Int = 50_000
    ) {
        self.store = store
        self.logger = logger
        self.maxLineBytes = maxLineBytes
        self.examplesPerTransaction = max(1, examplesPerTransaction)
    }

    public func enqueue(file path: String, run runName: String, batch: String? = nil) async throws -> EnqueueReport {
        guard FileManager.default.isReadableFile(atPath: path) else { throw JuryError(.io, "cannot read \(path)") }
        let batch = batch ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let run = try await store.findRun(runName)
        guard run.state.acceptsExamples else {
            throw JuryError(.conflict, "run '\(runName)' is \(run.state); create a new run for new examples")
        }
        // First pass: every line is checked, and nothing is written if one is bad.
        var checker = try reader(path, run: run)
        var lines = 0
        while let chunk = try checker.reader.nextChunk() { lines += chunk.count }
        try? checker.handle.close()

        // Second pass: chunks, each in its own transaction.
        var source = try reader(path, run: run)
        defer { try? source.handle.close() }
        var total = EnqueueReport(examples: 0, new: 0, jobs: 0)
        var pending: [IncomingExample] = []
        var exhausted = false
        while !exhausted || !pending.isEmpty {
            while !exhausted && pending.count < examplesPerTransaction {
                if let chunk = try source.reader.nextChunk() { pending += chunk } else { exhausted = true }
            }
            let chunk = Array(pending.prefix(examplesPerTransaction))
            pending.removeFirst(chunk.count)
            guard !chunk.isEmpty else { break }
            var handed = false
            let report = try await store.enqueue(into: run, batch: batch) {
                defer { handed = true }
                return handed ? nil : chunk
            }
            total.examples += report.examples
            total.new += report.new
            total.jobs += report.jobs
            total.changed += report.changed
            total.changedIDs = Array((total.changedIDs + report.changedIDs).prefix(5))
            logger.debug("enqueued a chunk", metadata: ["examples": "\(total.examples)", "of": "\(lines)"])
        }
        logger.info(
            "enqueued",
            metadata: [JuryMetadata.run: "\(runName)", "examples": "\(total.examples)", "new": "\(total.new)"])
        if total.new >= 1000 {
            try await store.analyzeQueue()
        }
        return total
    }

    private func reader(_ path: String, run: StoredRun) throws -> (handle: FileHandle, reader: JSONLReader) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw JuryError(.io, "cannot read \(path)")
        }
        return (
            handle, JSONLReader(handle: handle, file: path, labels: Set(run.config.labels), maxLineBytes: maxLineBytes)
        )
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

    /// The examples of the next lines of the file, about a megabyte of them; nil at the end.
    mutating func nextChunk() throws -> [IncomingExample]? {
        var output: [IncomingExample] = []
        var bytes = 0
        while bytes < 1 << 20 {
            guard let line = try nextLine() else { break }
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
                continue  // blank lines, including a trailing one, are allowed
            }
            output.append(try example(from: line))
            bytes += line.count
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

    private mutating func example(from line: ArraySlice<UInt8>) throws -> IncomingExample {
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
        return IncomingExample(
            externalID: id, payloadJSON: JSONValue.object(object).jsonText, humanLabel: labelsFound["human_label"],
            sourceLabel: labelsFound["source_label"], line: lineNumber)
    }
}
