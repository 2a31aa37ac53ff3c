import Foundation
import JuryDomain
import JuryTestSupport
import Testing

@Suite("Consensus rules")
struct ConsensusTests {
    let panel = ["a", "b", "c", "d"]

    @Test func unanimousNeedsEveryValidVoteToAgree() {
        let rule = ConsensusRule.unanimous
        let three = ["a", "b", "c"]
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "x"], panel: three).label == "x")
        let split = rule.decide(votes: ["a": "x", "b": "x", "c": "y"], panel: three)
        #expect(split.status == .disagreed)
        #expect(split.label == nil)
        #expect(abs(split.agreement - 2.0 / 3) < 1e-9)
        #expect(rule.decide(votes: ["a": "x", "b": "x"], panel: three).status == .insufficient)
        // Two different labels already rule unanimity out, however many judges are missing.
        #expect(rule.decide(votes: ["a": "x", "b": "y"], panel: three).status == .disagreed)
        // min_votes lets a panel with a failed judge agree.
        var lenient = rule
        lenient.minVotes = 2
        #expect(lenient.decide(votes: ["a": "x", "b": "x"], panel: three).status == .agreed)
        // Votes of judges outside the panel do not count.
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "x", "z": "y"], panel: three).status == .agreed)
    }

    @Test func quorumNeedsThatManyOnOneLabel() {
        let rule = ConsensusRule.quorum(3)
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "x", "d": "y"], panel: panel).label == "x")
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "x"], panel: panel).status == .agreed)
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "y", "d": "y"], panel: panel).status == .disagreed)
        #expect(rule.decide(votes: ["a": "x", "b": "x"], panel: panel).status == .insufficient)
        // x, y, z: even the missing judge cannot bring any label to 3.
        #expect(rule.decide(votes: ["a": "x", "b": "y", "c": "z"], panel: panel).status == .disagreed)
        #expect(rule.votesNeeded(panel: 4) == 3)
    }

    @Test func majorityNeedsMoreThanHalfOfTheValidVotes() {
        let rule = ConsensusRule(.majority)
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "y"], panel: panel).label == "x")
        #expect(rule.decide(votes: ["a": "x", "b": "x", "c": "y", "d": "y"], panel: panel).status == .disagreed)
        #expect(rule.decide(votes: ["a": "x", "b": "x"], panel: panel).status == .insufficient)
        #expect(rule.minimumVotes(panel: 4) == 3)
    }

    @Test func weightedCountsEachJudgesWeight() {
        let rule = ConsensusRule(.weighted, weights: ["a": 3, "b": 1, "c": 1, "d": 1])
        let heavy = rule.decide(votes: ["a": "x", "b": "y", "c": "y", "d": "x"], panel: panel)
        #expect(heavy.label == "x")
        #expect(abs(heavy.agreement - 4.0 / 6) < 1e-9)
        // 3 of 6 is not more than half.
        #expect(rule.decide(votes: ["a": "x", "b": "y", "c": "y", "d": "y"], panel: panel).status == .disagreed)
        var strict = rule
        strict.threshold = 0.9
        #expect(strict.decide(votes: ["a": "x", "b": "y", "c": "x", "d": "x"], panel: panel).status == .disagreed)
    }

    @Test func dawidSkeneAgreesWhenThePosteriorReachesTheThreshold() {
        let rule = ConsensusRule(.dawidSkene)
        let votes = ["a": "x", "b": "x", "c": "y"]
        #expect(rule.decide(votes: votes, panel: panel, posterior: ["x": 0.95, "y": 0.05]).label == "x")
        #expect(rule.decide(votes: votes, panel: panel, posterior: ["x": 0.6, "y": 0.4]).status == .disagreed)
    }

    @Test func rulesNameWhatIsWrongWithThem() {
        #expect(ConsensusRule(.weighted, weights: ["a": 1]).problem(panel: panel)?.field == "weights")
        #expect(ConsensusRule(.majority, threshold: 0.7).problem(panel: panel)?.field == "threshold")
        #expect(ConsensusRule.quorum(2).problem(panel: panel)?.field == "quorum")
        #expect(ConsensusRule(.unanimous, minVotes: 0).problem(panel: panel)?.field == "min_votes")
        #expect(ConsensusRule(.majority).problem(panel: panel) == nil)
    }

    @Test func outcomesFollowTheVerdictAndTheProductionLabel() throws {
        let config = try RunConfig.parse(yaml: validConfigWithKinds, file: "run.yaml")
        func outcome(_ votes: [String: String], source: String?, reviewed: String? = nil) -> SourceOutcome? {
            config.decide(votes: votes, rule: .unanimous, sourceLabel: source, reviewedLabel: reviewed).outcome
        }
        let all = { (label: String) in ["j1": label, "j2": label] }
        #expect(outcome(all("valid"), source: "valid") == .keep)
        #expect(outcome(all("wrong_skill"), source: "valid") == .relabel)
        #expect(outcome(all("needs_more_context"), source: "valid") == .clarify)
        #expect(outcome(["j1": "valid", "j2": "wrong_skill"], source: "valid") == .drop)
        #expect(outcome(all("valid"), source: nil) == nil)
        // A person's label decides over a split panel.
        let reviewed = config.decide(
            votes: ["j1": "valid", "j2": "wrong_skill"], rule: .unanimous, sourceLabel: "valid",
            reviewedLabel: "wrong_skill")
        #expect(reviewed.verdict.label == "wrong_skill")
        #expect(reviewed.decidedBy == .people)
        #expect(reviewed.outcome == .relabel)
    }

    let validConfigWithKinds = """
        name: kinds
        taxonomy:
          - { label: valid, description: can be done }
          - { label: needs_more_context, description: a term must be defined, kind: clarify }
          - { label: wrong_skill, description: not a segment, reply: "I only build segments." }
        judges:
          - { name: j1, provider: openai-compatible, model: a, base_url: "http://127.0.0.1:1/v1" }
          - { name: j2, provider: openai-compatible, model: b, base_url: "http://127.0.0.1:1/v1" }
        prompt: { system: "s", user: "{{request}}" }
        training: { user: "{{request}}" }
        """
}

/// Jury's statistics against the reference implementations, on the vote matrices that
/// scripts/reference-agreement wrote with scikit-learn, statsmodels, krippendorff and crowd-kit.
@Suite("Agreement against reference implementations")
struct ReferenceAgreementTests {
    struct Fixture: Decodable {
        let judges: [String]
        let human: [String]
        let votes: [[String: String]]
        let weights: [String: Double]
        let expected: Expected
    }

    struct Expected: Decodable {
        let labels: [String]
        let accuracy: [String: Double]
        let cohen_kappa: [String: Double?]
        let confusion: [String: [[Int]]]
        let fleiss_kappa: Double?
        let krippendorff_alpha: Double
        let majority_vote: [Aggregate?]
        let majority_vote_per_label: [String: PrecisionRecall]
        let weighted_majority_vote: [Aggregate?]
        let dawid_skene: [Aggregate?]
    }

    struct Aggregate: Decodable {
        let label: String
        let posterior: [String: Double]
    }

    struct PrecisionRecall: Decodable {
        let precision: Double
        let recall: Double
    }

    static let cases = ["four-judges-five-labels", "three-judges-two-labels", "five-judges-sparse"]

    func load(_ name: String) throws -> Fixture {
        let url = repositoryRoot.appendingPathComponent("Tests/Fixtures/agreement/\(name).json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func close(_ a: Double?, _ b: Double?, _ tolerance: Double = 1e-9) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let a?, let b?): return abs(a - b) <= tolerance
        default: return false
        }
    }

    func counts(_ votes: [[String: String]]) -> [[String: Int]] {
        votes.map { $0.values.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 } }
    }

    @Test(arguments: cases) func judgesAgainstPeopleMatchScikitLearn(name: String) throws {
        let fixture = try load(name)
        let examples = zip(fixture.human, fixture.votes).map { Calibration.Example(human: $0, votes: $1) }
        for judge in fixture.judges {
            let figures = Calibration.judgeFigures(judge, examples: examples, labels: fixture.expected.labels)
            #expect(close(figures.cohenKappa, fixture.expected.cohen_kappa[judge] ?? nil), "kappa of \(judge)")
            #expect(close(figures.accuracy, fixture.expected.accuracy[judge]), "accuracy of \(judge)")
            #expect(figures.confusion == fixture.expected.confusion[judge], "confusion of \(judge)")
        }
    }

    @Test(arguments: cases) func panelAgreementMatchesStatsmodelsAndKrippendorff(name: String) throws {
        let fixture = try load(name)
        #expect(close(Agreement.fleissKappa(counts(fixture.votes)), fixture.expected.fleiss_kappa))
        #expect(close(Agreement.krippendorffAlphaNominal(counts(fixture.votes)), fixture.expected.krippendorff_alpha))
    }

    @Test(arguments: cases) func majorityAndWeightedVotesMatchCrowdKit(name: String) throws {
        let fixture = try load(name)
        for (rule, expected) in [
            (ConsensusRule(.majority), fixture.expected.majority_vote),
            (ConsensusRule(.weighted, weights: fixture.weights), fixture.expected.weighted_majority_vote),
        ] {
            for (votes, reference) in zip(fixture.votes, expected) {
                let verdict = rule.decide(votes: votes, panel: fixture.judges)
                guard let reference else {
                    #expect(votes.isEmpty)
                    continue
                }
                // crowd-kit gives the most voted label always; the rule's agreement is its share.
                let top = reference.posterior.values.max()!
                #expect(close(verdict.agreement, top), "\(rule) agreement on \(votes)")
                if verdict.status == .agreed { #expect(verdict.label == reference.label) }
            }
        }
        // Per-label precision and recall, as scikit-learn computes them, over the tasks with one most voted label.
        var human: [String] = []
        var predicted: [String?] = []
        for (index, votes) in fixture.votes.enumerated() where !votes.isEmpty {
            let counts = votes.values.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            let sorted = counts.values.sorted(by: >)
            guard sorted.count == 1 || sorted[0] > sorted[1] else { continue }
            let top = counts.first { $0.value == sorted[0] }!.key
            #expect(top == fixture.expected.majority_vote[index]?.label, "most voted label of task \(index)")
            human.append(fixture.human[index])
            predicted.append(top)
        }
        let figures = Calibration.perLabel(human: human, predicted: predicted, labels: fixture.expected.labels)
        for figure in figures {
            let reference = try #require(fixture.expected.majority_vote_per_label[figure.label])
            // scikit-learn reports 0 where Jury reports nothing (no example to divide by).
            #expect(close(figure.precision ?? 0, reference.precision), "precision of \(figure.label)")
            #expect(close(figure.recall ?? 0, reference.recall), "recall of \(figure.label)")
        }
    }

    @Test(arguments: cases) func dawidSkeneMatchesCrowdKit(name: String) throws {
        let fixture = try load(name)
        let model = DawidSkene.fit(tasks: fixture.votes)
        for (task, reference) in fixture.expected.dawid_skene.enumerated() {
            guard let reference else {
                #expect(fixture.votes[task].isEmpty)
                continue
            }
            let posterior = model.posterior(ofTask: task)
            for (label, probability) in reference.posterior {
                #expect(close(posterior[label], probability, 1e-6), "task \(task) label \(label)")
            }
            let verdict = ConsensusRule(.dawidSkene, threshold: 0.5).decide(
                votes: fixture.votes[task], panel: fixture.judges, posterior: posterior)
            #expect(verdict.label == reference.label || verdict.status != .agreed, "task \(task)")
        }
    }
}
