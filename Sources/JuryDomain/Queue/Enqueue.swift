/// One line of a corpus, checked and ready to store.
public struct IncomingExample: Sendable, Equatable {
    /// The example's id, unique in the run.
    public let externalID: String
    /// The line's other fields, as a JSON object's text.
    public let payloadJSON: String
    public let humanLabel: String?
    public let sourceLabel: String?
    /// Where it came from in the file: examples keep the file's order.
    public let line: Int

    public init(externalID: String, payloadJSON: String, humanLabel: String?, sourceLabel: String?, line: Int) {
        self.externalID = externalID
        self.payloadJSON = payloadJSON
        self.humanLabel = humanLabel
        self.sourceLabel = sourceLabel
        self.line = line
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
