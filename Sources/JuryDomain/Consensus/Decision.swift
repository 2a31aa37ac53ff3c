/// What became of an example's production label (`source_label`) once it was decided.
public enum SourceOutcome: String, Sendable, Equatable, CaseIterable, Codable {
    /// The verdict is the production label.
    case keep
    /// The verdict is another label that carries the request out or refuses it.
    case relabel
    /// The verdict is a label that asks the user to clarify (needs more context, ambiguous).
    case clarify
    /// No verdict: the example is not training data.
    case drop
}

/// Who gave an example its verdict.
public enum DecidedBy: String, Sendable, Equatable, CaseIterable, Codable {
    /// The panel, under the run's rule.
    case panel
    /// A person, through `jury import-labels`.
    case people
}

/// An example's verdict with who made it, what it did to the production label, and whether it
/// came early (before every judge answered).
public struct Decision: Sendable, Equatable {
    public var verdict: Verdict
    public var decidedBy: DecidedBy
    public var outcome: SourceOutcome?
    public var early: Bool

    public init(verdict: Verdict, decidedBy: DecidedBy, outcome: SourceOutcome?, early: Bool) {
        self.verdict = verdict
        self.decidedBy = decidedBy
        self.outcome = outcome
        self.early = early
    }
}

extension RunConfig {
    /// Decides one example under `rule`. A label from a person's review decides over the panel
    /// (the panel's agreement and vote count are kept beside it); `posterior` feeds `dawid-skene`.
    public func decide(
        votes: [String: String], rule: ConsensusRule, sourceLabel: String?, reviewedLabel: String?,
        posterior: [String: Double]? = nil, early: Bool = false
    ) -> Decision {
        let verdict = rule.decide(votes: votes, panel: panel, posterior: posterior)
        if let reviewedLabel {
            return review(verdict, label: reviewedLabel, sourceLabel: sourceLabel, early: early)
        }
        return Decision(
            verdict: verdict, decidedBy: .panel, outcome: outcome(of: verdict, sourceLabel: sourceLabel), early: early)
    }

    /// A person's label over the panel's verdict: agreed, decided by people, with the panel's
    /// agreement, vote count and rule kept beside it (what `decide` gives a reviewed example, and
    /// what the web app's review stores without reading the run's other examples).
    public func review(_ panel: Verdict, label: String, sourceLabel: String?, early: Bool) -> Decision {
        var verdict = panel
        verdict.label = label
        verdict.status = .agreed
        return Decision(
            verdict: verdict, decidedBy: .people, outcome: outcome(of: verdict, sourceLabel: sourceLabel), early: early)
    }

    /// Keep when the verdict is the production label, clarify when it is a clarifying label,
    /// relabel for any other label, drop without a verdict; nil without a production label.
    public func outcome(of verdict: Verdict, sourceLabel: String?) -> SourceOutcome? {
        guard let sourceLabel else { return nil }
        guard verdict.status == .agreed, let label = verdict.label else { return .drop }
        if label == sourceLabel { return .keep }
        return kind(of: label) == .clarify ? .clarify : .relabel
    }
}
