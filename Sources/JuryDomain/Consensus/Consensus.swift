/// How the panel's votes on one example become a verdict: the rule and its parameters, as the
/// run's config gives them (`consensus:`) and as every verdict stores them.
public struct ConsensusRule: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Every valid vote gives the same label, and there are at least `min_votes` of them.
        case unanimous
        /// At least `quorum` judges give the same label.
        case quorum
        /// More than half of the valid votes give the same label.
        case majority
        /// The label whose judges' weights make up more than `threshold` of the weight that voted.
        case weighted
        /// The label whose posterior, under a Dawid-Skene model fitted to the run's votes, reaches `threshold`.
        case dawidSkene = "dawid-skene"
    }

    /// The rule's name, as the config spells it; `kind` reads it.
    public var rule: String
    public var quorum: Int?
    /// Valid votes an example needs for any verdict but `insufficient`; see `minimumVotes(panel:)`.
    public var minVotes: Int?
    /// With `weighted`: judge name to weight. Left out, the weights come from the run's last calibration.
    public var weights: [String: Double]?
    /// With `weighted`: the share of weight to exceed (default 0.5); with `dawid-skene`: the
    /// posterior to reach (default 0.9).
    public var threshold: Double?
    /// Decide at once, and cancel the open jobs, once the rule can no longer agree (default true;
    /// only `unanimous` and `quorum` can tell early). Examples with a human label always get every vote.
    public var earlyDecision: Bool?

    enum CodingKeys: String, CodingKey {
        case rule, quorum, weights, threshold
        case minVotes = "min_votes"
        case earlyDecision = "early_decision"
    }

    public init(
        _ kind: Kind, quorum: Int? = nil, minVotes: Int? = nil, weights: [String: Double]? = nil,
        threshold: Double? = nil, earlyDecision: Bool? = nil
    ) {
        self.rule = kind.rawValue
        self.quorum = quorum
        self.minVotes = minVotes
        self.weights = weights
        self.threshold = threshold
        self.earlyDecision = earlyDecision
    }

    public static let unanimous = ConsensusRule(.unanimous)
    public static func quorum(_ count: Int) -> ConsensusRule { ConsensusRule(.quorum, quorum: count) }

    /// Nil only for a name no rule has; a validated config always has a kind.
    public var kind: Kind? { Kind(rawValue: rule) }

    /// The short form `jury reduce --rule` takes and status shows: `unanimous`, `quorum:3`, `majority`.
    public var description: String {
        kind == .quorum ? "quorum:\(quorum ?? 0)" : rule
    }

    /// Reads `description`'s form; parameters other than the quorum are set apart.
    public init?(description: String) {
        if description.hasPrefix("quorum:") {
            guard let count = Int(description.dropFirst(7)), count > 0 else { return nil }
            self = .quorum(count)
        } else if let kind = Kind(rawValue: description), kind != .quorum {
            self.init(kind)
        } else {
            return nil
        }
    }

    /// What is wrong with this rule for `panel`, naming the key (`quorum`, `weights`...); nil when nothing is.
    public func problem(panel: [String]) -> (field: String, reason: String)? {
        let names = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let kind else { return ("rule", "'\(rule)' is not one of \(names)") }
        if kind == .quorum {
            guard let quorum else { return ("quorum", "is missing for rule: quorum") }
            // More than half, so that two labels can never both reach it.
            guard quorum > panel.count / 2, quorum <= panel.count else {
                return (
                    "quorum", "\(quorum) must be more than half of the \(panel.count) judges and at most \(panel.count)"
                )
            }
        } else if quorum != nil {
            return ("quorum", "only goes with rule: quorum")
        }
        if let minVotes, !(1...panel.count).contains(minVotes) {
            return ("min_votes", "\(minVotes) is outside 1...\(panel.count) (the panel's size)")
        }
        if let weights {
            guard kind == .weighted else { return ("weights", "only go with rule: weighted") }
            for (judge, weight) in weights.sorted(by: { $0.key < $1.key }) {
                guard panel.contains(judge) else { return ("weights.\(judge)", "is not a judge of this run") }
                guard weight >= 0, weight.isFinite else { return ("weights.\(judge)", "must be 0 or more") }
            }
            if let missing = panel.first(where: { weights[$0] == nil }) {
                return ("weights", "has no weight for judge '\(missing)'; give every judge one")
            }
            guard weights.values.contains(where: { $0 > 0 }) else { return ("weights", "are all 0") }
        }
        if let threshold {
            guard kind == .weighted || kind == .dawidSkene else {
                return ("threshold", "only goes with rule: weighted or dawid-skene")
            }
            guard threshold > 0, threshold < 1 else { return ("threshold", "\(threshold) must be between 0 and 1") }
        }
        return nil
    }

    /// Valid votes needed for a verdict other than `insufficient`: `min_votes` when given, else
    /// the whole panel under unanimity, the quorum under a quorum, and more than half the panel otherwise.
    public func minimumVotes(panel: Int) -> Int {
        if let minVotes { return minVotes }
        switch kind {
        case .unanimous: return panel
        case .quorum: return quorum ?? panel
        default: return panel / 2 + 1
        }
    }

    /// The fewest votes with which the rule can still agree: once fewer jobs than this can still
    /// give a vote, the example is ready (it cannot agree).
    public func votesNeeded(panel: Int) -> Int {
        kind == .quorum ? max(quorum ?? panel, minimumVotes(panel: panel)) : minimumVotes(panel: panel)
    }

    /// Whether the queue decides an example as soon as its votes show that this rule cannot agree.
    public var decidesEarly: Bool {
        (earlyDecision ?? true) && (kind == .unanimous || kind == .quorum)
    }

    public var effectiveThreshold: Double {
        threshold ?? (kind == .dawidSkene ? 0.9 : 0.5)
    }

    /// The verdict for one example's valid votes (judge name to label) from `panel`. Votes of judges
    /// outside the panel do not count. `posterior` (label to probability) is what a Dawid-Skene
    /// model gives these votes; only that rule reads it.
    public func decide(votes: [String: String], panel: [String], posterior: [String: Double]? = nil) -> Verdict {
        let cast = votes.filter { panel.contains($0.key) }
        let missing = panel.count - cast.count
        var counts: [String: Int] = [:]
        for label in cast.values { counts[label, default: 0] += 1 }
        let top = Self.best(counts.mapValues(Double.init))
        let topCount = top.map { counts[$0] ?? 0 } ?? 0
        let enough = cast.count >= minimumVotes(panel: panel.count)

        var label = top
        var agreement = cast.isEmpty ? 0 : Double(topCount) / Double(cast.count)
        let agreed: Bool
        // Votes that already rule agreement out, whatever the missing judges would say.
        var impossible = false
        switch kind {
        case .unanimous, nil:
            agreed = enough && counts.count == 1
            impossible = counts.count > 1
        case .quorum:
            let needed = quorum ?? panel.count
            agreed = enough && topCount >= needed
            impossible = topCount + missing < needed
        case .majority:
            agreed = enough && Double(topCount) > Double(cast.count) / 2
        case .weighted:
            var weight: [String: Double] = [:]
            var total = 0.0
            for (judge, vote) in cast {
                let w = weights?[judge] ?? 1
                weight[vote, default: 0] += w
                total += w
            }
            label = Self.best(weight)
            agreement = total > 0 ? (label.flatMap { weight[$0] } ?? 0) / total : 0
            agreed = enough && total > 0 && agreement > effectiveThreshold
        case .dawidSkene:
            let probabilities = posterior ?? [:]
            label = cast.isEmpty ? nil : Self.best(probabilities)
            agreement = label.flatMap { probabilities[$0] } ?? 0
            agreed = enough && label != nil && agreement >= effectiveThreshold
        }
        let status: Verdict.Status = agreed ? .agreed : (enough || impossible) ? .disagreed : .insufficient
        return Verdict(
            label: agreed ? label : nil, status: status, agreement: agreement, votes: cast.count, rule: self)
    }

    /// The label with the highest score; ties go to the label first in alphabetical order, so
    /// the same votes always give the same verdict.
    static func best(_ scores: [String: Double]) -> String? {
        scores.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
    }
}

/// What the reducer decided for one example.
public struct Verdict: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable, CaseIterable {
        /// The rule was met (or a person labelled the example): `label` is training data.
        case agreed
        /// Enough votes, but the rule was not met: for people to look at.
        case disagreed
        /// Too few valid votes for the rule (jobs failed).
        case insufficient
    }

    public var label: String?
    public var status: Status
    /// The share of the votes cast that went to the chosen label (of their weight under
    /// `weighted`; its posterior under `dawid-skene`).
    public var agreement: Double
    public var votes: Int
    public var rule: ConsensusRule

    public init(label: String?, status: Status, agreement: Double, votes: Int, rule: ConsensusRule) {
        self.label = label
        self.status = status
        self.agreement = agreement
        self.votes = votes
        self.rule = rule
    }
}
