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
/// corpus of millions never holds back vacuum for minutes. Each store is a connection, and the
/// chunks go through all of them at once: one server process inserting is what bounded a load,
/// with the other core waiting. Ids compare by their bytes, as
/// PostgreSQL compares them: two spellings of one accented letter are two ids. Ids already in
/// the run are skipped, so enqueueing the same file again is a no-op, and an enqueue that was
/// interrupted resumes where it stopped; ids whose line changed since are counted in the report.
public struct Enqueuer: Sendable {
    /// The first store finds the run; every one of them loads chunks.
    public let stores: [Store]
    public var store: Store { stores[0] }
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
        self.init(
            stores: [store], logger: logger, maxLineBytes: maxLineBytes,
            examplesPerTransaction: examplesPerTransaction)
    }

    /// `stores` must not be empty.
    public init(
        stores: [Store], logger: Logger, maxLineBytes: Int = Enqueuer.defaultMaxLineBytes,
        examplesPerTransaction: Int = 50_000
    ) {
        precondition(!stores.isEmpty, "an enqueue needs a connection")
        self.stores = stores
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
        let stamp = try fileStamp(path)
        var checker = try reader(path, run: run)
        let lines = try checker.reader.checkAll()
        try? checker.handle.close()
        // Second pass: the lines as they are, in chunks, each in its own transaction, as many
        // at once as there are stores. Reading stays in this task: the file is read once, in order.
        var source = try reader(path, run: run)
        defer { try? source.handle.close() }
        var total = EnqueueReport(examples: 0, new: 0, jobs: 0)
        var idle = stores
        var pending: [CorpusLine] = []
        var exhausted = false
        try await withThrowingTaskGroup(of: (Store, EnqueueReport).self) { loading in
            func collect() async throws {
                guard let (store, report) = try await loading.next() else { return }
                idle.append(store)
                total.examples += report.examples
                total.new += report.new
                total.jobs += report.jobs
                total.changed += report.changed
                total.changedIDs = Array((total.changedIDs + report.changedIDs).prefix(5))
                logger.debug("enqueued a chunk", metadata: ["examples": "\(total.examples)", "of": "\(lines)"])
            }
            while !exhausted || !pending.isEmpty {
                while !exhausted && pending.count < examplesPerTransaction {
                    if let chunk = try source.reader.nextLines() { pending += chunk } else { exhausted = true }
                }
                let chunk = Array(pending.prefix(examplesPerTransaction))
                pending.removeFirst(chunk.count)
                guard !chunk.isEmpty else { break }
                // What goes in is what was checked: a file rewritten meanwhile stops the load.
                guard try fileStamp(path) == stamp else {
                    throw JuryError(
                        .io,
                        "\(path) changed while it was being enqueued; at least \(total.examples) of its lines went in. "
                            + "Enqueue it again: the lines already in are skipped")
                }
                if idle.isEmpty { try await collect() }
                let store = idle.removeLast()
                loading.addTask { (store, try await Self.load(chunk, into: run, batch: batch, store: store)) }
            }
            while !loading.isEmpty { try await collect() }
        }
        logger.info(
            "enqueued",
            metadata: [JuryMetadata.run: "\(runName)", "examples": "\(total.examples)", "new": "\(total.new)"])
        if total.new >= 1000 {
            try await store.analyzeQueue()
        }
        return total
    }

    /// One chunk in one transaction. Loads running side by side can deadlock in one narrow case
    /// (both reopen a run that ended as they began; the server then stops one of them): that
    /// chunk is loaded again, which adds nothing twice.
    private static func load(_ chunk: [CorpusLine], into run: StoredRun, batch: String, store: Store) async throws
        -> EnqueueReport
    {
        var attempt = 1
        while true {
            do {
                var handed = false
                return try await store.enqueue(into: run, batch: batch) {
                    defer { handed = true }
                    return handed ? nil : chunk
                }
            } catch  where Store.isConflict(error) && attempt < 5 {
                attempt += 1
            }
        }
    }

    /// The file's size and modification time: what tells that it changed between the passes.
    private func fileStamp(_ path: String) throws -> [FileAttributeKey: AnyHashable] {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        var stamp: [FileAttributeKey: AnyHashable] = [:]
        for key in [FileAttributeKey.size, .modificationDate, .systemFileNumber] {
            if let value = attributes[key] as? AnyHashable { stamp[key] = value }
        }
        return stamp
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

/// Reads a JSONL corpus: checks every line (the first pass), then hands the lines on as they
/// are (the second).
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

    /// Checks every line to the end of the file; returns how many examples it holds.
    mutating func checkAll() throws -> Int {
        var count = 0
        while let line = try nextLine() {
            lineNumber += 1
            if Self.isBlank(line) { continue }
            try check(line)
            count += 1
        }
        return count
    }

    /// The next lines of the file as they are, about a megabyte of them; nil at the end. Only
    /// for a file `checkAll` went through: blank lines are passed over, nothing else is checked.
    mutating func nextLines() throws -> [CorpusLine]? {
        var output: [CorpusLine] = []
        var bytes = 0
        while bytes < 1 << 20 {
            guard let line = try nextLine() else { break }
            lineNumber += 1
            if Self.isBlank(line) { continue }
            output.append(CorpusLine(number: lineNumber, bytes: line))
            bytes += line.count
        }
        return output.isEmpty ? nil : output
    }

    /// Blank lines, including a trailing one, are allowed.
    private static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
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

    /// Checks one line: a JSON object (strict: no key twice), an id not seen before in the file,
    /// labels of the taxonomy, no NUL character.
    private mutating func check(_ line: ArraySlice<UInt8>) throws {
        func fail(_ reason: String) -> JuryError { .invalidInput(file, line: lineNumber, reason) }
        let value: JSONValue
        do { value = try JSONValue.parseStrict(line) } catch { throw fail("not valid JSON: \(error)") }
        guard case .object(let object) = value else { throw fail("expected a JSON object") }
        let id: String
        switch object["id"] {
        case .string(let text) where !text.isEmpty: id = text
        case .integer(let number): id = String(number)
        case nil: throw fail("missing \"id\"")
        default: throw fail("\"id\" must be a non-empty string or an integer")
        }
        guard seenIDs.insert(Array(id.utf8)).inserted else { throw fail("id \"\(id)\" appears earlier in the file") }
        for key in ["human_label", "source_label"] {
            switch object[key] {
            case nil, .null: continue
            case .string(let label) where labels.contains(label): continue
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
    }
}
