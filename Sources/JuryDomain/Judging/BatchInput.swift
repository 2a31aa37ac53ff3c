public import Foundation

/// A batch's requests, written: one entry per line of a file on disk (JSON Lines), each what
/// the provider's batch input holds for one request. A batch of 50,000 requests is tens or
/// hundreds of megabytes; it is written as it is made and read back as it is sent, never held
/// in memory whole.
public struct BatchInput: Sendable {
    public let file: URL
    /// Entries, and the file's size in bytes (each entry and its newline).
    public let count: Int
    public let length: Int

    /// Deletes the file.
    public func remove() {
        try? FileManager.default.removeItem(at: file)
    }
}

/// Writes a batch's entries to a new file in `directory`, a megabyte at a time.
public final class BatchInputWriter {
    private let file: URL
    private let handle: FileHandle
    private var buffer = Data()
    private var count = 0
    private var length = 0

    /// A new file for the batch whose token is `token`; the error says where it could not be made.
    public init(token: String, directory: URL = FileManager.default.temporaryDirectory) throws {
        file = directory.appendingPathComponent("jury-batch-\(token)-\(UUID().uuidString).jsonl")
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
            throw JuryError(
                .io, "cannot create \(file.path) for a batch's requests (is \(directory.path) writable? TMPDIR sets it)"
            )
        }
        handle = try FileHandle(forWritingTo: file)
    }

    /// Deletes the batch files in `directory` untouched for `seconds`: those of workers killed
    /// while they wrote or sent a batch (a step is held for 15 minutes at most). Returns how many.
    @discardableResult
    public static func removeStale(
        olderThan seconds: Double, in directory: URL = FileManager.default.temporaryDirectory
    ) -> Int {
        let files = FileManager.default
        guard
            let names = try? files.contentsOfDirectory(
                at: directory, includingPropertiesForKeys: [.contentModificationDateKey])
        else { return 0 }
        let cutoff = Date().addingTimeInterval(-seconds)
        var removed = 0
        for file in names
        where file.lastPathComponent.hasPrefix("jury-batch-") && file.pathExtension == "jsonl" {
            guard
                let modified = try? file.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate,
                modified < cutoff, (try? files.removeItem(at: file)) != nil
            else { continue }
            removed += 1
        }
        return removed
    }

    /// Adds one entry, which must be one line: JSON without a raw newline.
    public func append(_ entry: Data) throws {
        guard !entry.contains(UInt8(ascii: "\n")) else {
            throw JuryError(.io, "a batch entry holds a newline; it cannot be one line of \(file.lastPathComponent)")
        }
        buffer.append(entry)
        buffer.append(UInt8(ascii: "\n"))
        count += 1
        length += entry.count + 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// The entries written, in a file closed for writing.
    public func finish() throws -> BatchInput {
        try flush()
        try handle.close()
        return BatchInput(file: file, count: count, length: length)
    }

    /// Deletes what was written (a batch that is not sent after all).
    public func discard() {
        try? handle.close()
        try? FileManager.default.removeItem(at: file)
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw JuryError(.io, "cannot write a batch's requests to \(file.path): \(error)")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
