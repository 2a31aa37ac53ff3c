/// How the panel's votes on one example become a verdict.
public enum ConsensusRule: Sendable, Equatable, CustomStringConvertible {
    /// Every judge of the panel votes, and all give the same label.
    case unanimous
    /// At least this many judges give the same label.
    case quorum(Int)

    public var description: String {
        switch self {
        case .unanimous: return "unanimous"
        case .quorum(let count): return "quorum:\(count)"
        }
    }

    /// Reads the form `description` gives (`unanimous`, `quorum:3`), as verdicts store it.
    public init?(description: String) {
        if description == "unanimous" {
            self = .unanimous
        } else if description.hasPrefix("quorum:"), let count = Int(description.dropFirst(7)), count > 0 {
            self = .quorum(count)
        } else {
            return nil
        }
    }

    /// The fewest votes with which this rule can agree, for a panel of `judges`.
    public func votesNeeded(judges: Int) -> Int {
        switch self {
        case .unanimous: return judges
        case .quorum(let count): return count
        }
    }

    /// The verdict for the votes an example received (judge name to label) from a panel of `judges`.
    public func decide(votes: [String: String], judges: Int) -> Verdict {
        var counts: [String: Int] = [:]
        for label in votes.values { counts[label, default: 0] += 1 }
        // Ties break by label so that the same votes always give the same verdict.
        let top = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }
        let agreement = top.map { Double($0.value) / Double(votes.count) } ?? 0
        guard let top, votes.count >= votesNeeded(judges: judges) else {
            return Verdict(label: nil, status: .insufficient, agreement: agreement, votes: votes.count, rule: self)
        }
        let agreed: Bool
        switch self {
        case .unanimous: agreed = top.value == judges
        case .quorum(let count): agreed = top.value >= count
        }
        return Verdict(
            label: agreed ? top.key : nil, status: agreed ? .agreed : .disagreed, agreement: agreement,
            votes: votes.count, rule: self)
    }
}

/// What the reducer decided for one example.
public struct Verdict: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable, CaseIterable {
        /// The rule was met: `label` is training data.
        case agreed
        /// Enough votes, but the rule was not met: for people to look at.
        case disagreed
        /// Too many jobs failed for the rule to be met.
        case insufficient
    }

    public let label: String?
    public let status: Status
    /// The share of the votes cast that went to the most voted label.
    public let agreement: Double
    public let votes: Int
    public let rule: ConsensusRule
}
