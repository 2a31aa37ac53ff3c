import Foundation

/// A path for a test's temporary file (`name` may carry an extension: "corpus.jsonl"), in one
/// directory per test process that goes when the process exits: the suite writes a few hundred
/// such files per run, and /tmp must not keep them.
public func scratchPath(_ name: String) -> String {
    ScratchDirectory.path + "/\(UUID().uuidString)-\(name)"
}

enum ScratchDirectory {
    static let path: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jury-scratch-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: ScratchDirectory.path) }
        return path
    }()
}
