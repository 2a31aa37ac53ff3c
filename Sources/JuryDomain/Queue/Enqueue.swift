/// One line of a corpus, checked and ready to store.
public struct CorpusLine: Sendable, Equatable {
    /// The line's number in the file: examples keep the file's order, and errors name it.
    public let number: Int
    /// The line as it is in the file, already checked: a JSON object with an "id" and the
    /// fields the prompt uses, optionally "human_label" and "source_label". PostgreSQL takes
    /// it apart (jury_enqueue_lines).
    public let bytes: ArraySlice<UInt8>

    public init(number: Int, bytes: ArraySlice<UInt8>) {
        self.number = number
        self.bytes = bytes
    }
}

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
