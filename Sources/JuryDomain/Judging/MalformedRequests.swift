/// Tells a judge whose requests are malformed from an example the provider cannot take.
///
/// A provider refuses a request as invalid (HTTP 400) for one of two reasons: something in the
/// example (too long, a blocked word), or something in every request (a parameter the model no
/// longer takes, a wrong API version). The first is that example's failure; the second would
/// burn every job's attempts on the same answer. So refusals are counted per judge, and only
/// refusals of different examples in a row, with no answer between them, say that the request
/// itself is wrong: then the judge stops on every worker and its jobs wait.
public struct MalformedRequests: Sendable {
    /// Refusals of different examples in a row that stop the judge.
    public static let streakThatStops = 5

    private var refusedExamples: [JudgeKey: Set<Int64>] = [:]

    public init() {}

    /// Counts a call refused as invalid; true when it makes the streak that stops the judge.
    public mutating func refused(_ key: JudgeKey, example: Int64) -> Bool {
        var examples = refusedExamples[key] ?? []
        examples.insert(example)
        refusedExamples[key] = examples
        return examples.count >= Self.streakThatStops
    }

    /// The provider took a request of this judge (it answered, however well): the streak ends.
    public mutating func accepted(_ key: JudgeKey) {
        if refusedExamples[key] != nil { refusedExamples[key] = nil }
    }

    /// Why the judge stopped, for `jury status` and the breaker: the provider's own message.
    public static func reason(_ error: String) -> String {
        "the provider refused its requests as malformed on \(streakThatStops) different examples in a row, so the "
            + "request itself is wrong (a parameter, the model, the API version); fix the judge with `jury run update`: "
            + error
    }
}
