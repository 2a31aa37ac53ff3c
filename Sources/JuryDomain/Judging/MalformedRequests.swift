/// Tells a judge whose requests are malformed from examples the provider cannot take.
///
/// A provider refuses a request as invalid (HTTP 400) for one of two reasons: something in the
/// example (too long, a blocked word), or something in every request (a parameter the model no
/// longer takes, a wrong API version). The first is that example's failure; the second would
/// burn every job's attempts on the same answer. So refusals are counted per judge: refusals of
/// different examples in a row, with no answer between, say that the request itself is wrong,
/// and then the judge stops on every worker and its jobs wait.
///
/// Only an example's first attempt counts: near the end of a run the jobs left may all be
/// examples the provider refuses, tried again and again, and that is no sign of a bad request.
/// A judge that has answered under its current settings needs a much longer streak, since its
/// requests evidently can be taken (one still stops if the provider changes under a live run).
public struct MalformedRequests: Sendable {
    /// First-attempt refusals of different examples in a row that stop a judge that has not
    /// answered yet under its settings.
    public static let streakThatStops = 5
    /// The same, for a judge that has answered under its settings.
    public static let streakThatStopsAJudgeThatAnswered = 50

    private struct Streak {
        var answered = false
        var refusedExamples: Set<Int64> = []
    }

    private var streaks: [JudgeKey: Streak] = [:]

    public init() {}

    /// Counts a call refused as invalid. Returns how many examples the streak holds when it is
    /// the streak that stops the judge, else nil.
    public mutating func refused(_ key: JudgeKey, example: Int64, firstAttempt: Bool) -> Int? {
        var streak = streaks[key] ?? Streak()
        if firstAttempt { streak.refusedExamples.insert(example) }
        streaks[key] = streak
        let stops = streak.answered ? Self.streakThatStopsAJudgeThatAnswered : Self.streakThatStops
        return streak.refusedExamples.count >= stops ? streak.refusedExamples.count : nil
    }

    /// The provider took a request of this judge (it answered, however well): the streak ends.
    public mutating func accepted(_ key: JudgeKey) {
        if let streak = streaks[key], streak.answered, streak.refusedExamples.isEmpty { return }
        streaks[key] = Streak(answered: true)
    }

    /// The run's settings changed (`jury run update`): its judges start afresh.
    public mutating func settingsChanged(runID: Int64) {
        streaks = streaks.filter { $0.key.runID != runID }
    }

    /// Why the judge stopped, for `jury status` and the breaker: the provider's own message.
    public static func reason(_ error: String, examples: Int) -> String {
        "the provider refused its requests as malformed on \(examples) different examples in a row, so the "
            + "request itself is wrong (a parameter, the model, the API version); fix the judge with `jury run update`: "
            + error
    }
}
