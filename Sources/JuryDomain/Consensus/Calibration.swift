import Foundation

/// How the panel compares with people on the examples people labelled: each judge, the panel's
/// agreement among itself, and each consensus rule's precision and coverage, with a
/// recommendation. `jury calibrate` prints it; `--json` gives it as encoded here.
public struct Calibration: Codable, Sendable, Equatable {
    /// One example people labelled, with the panel's valid votes and its invalid answers per judge.
    public struct Example: Sendable {
        public var human: String
        public var votes: [String: String]
        public var invalid: [String: Int]
        /// What a Dawid-Skene model fitted to the run's votes gives this example's votes.
        public var posterior: [String: Double]?

        public init(
            human: String, votes: [String: String], invalid: [String: Int] = [:], posterior: [String: Double]? = nil
        ) {
            self.human = human
            self.votes = votes
            self.invalid = invalid
            self.posterior = posterior
        }
    }

    public struct JudgeFigures: Codable, Sendable, Equatable {
        public var judge: String
        /// Valid votes on labelled examples.
        public var votes: Int
        public var invalidAnswers: Int
        public var accuracy: Double?
        public var cohenKappa: Double?
        /// Rows: people's label; columns: the judge's; both in `labels` order.
        public var confusion: [[Int]]
    }

    public struct LabelFigures: Codable, Sendable, Equatable {
        public var label: String
        public var precision: Double?
        public var recall: Double?
    }

    public struct RuleFigures: Codable, Sendable, Equatable {
        /// `quorum:3`, `majority`, ...; the rule in full is `parameters`.
        public var rule: String
        public var parameters: ConsensusRule
        /// Examples with an agreed verdict, and the share of the labelled ones they are.
        public var agreed: Int
        public var coverage: Double
        /// Share of the agreed verdicts that match people's label.
        public var precision: Double?
        public var perLabel: [LabelFigures]
        /// Of the requests people labelled acceptable, the share the panel agreed to refuse.
        public var refusalFalsePositiveRate: Double?
    }

    public struct Recommendation: Codable, Sendable, Equatable {
        /// The rule with the best precision at `minCoverage` or more; nil when none reaches it.
        public var rule: String?
        public var minCoverage: Double
        /// Judges that drag the panel down, each with why.
        public var weakJudges: [WeakJudge]
    }

    public struct WeakJudge: Codable, Sendable, Equatable {
        public var judge: String
        public var reason: String
    }

    public var run: String
    public var examples: Int
    public var labels: [String]
    public var judges: [JudgeFigures]
    public var fleissKappa: Double?
    public var krippendorffAlpha: Double?
    public var rules: [RuleFigures]
    public var recommendation: Recommendation

    /// Computes every figure. `accepting` are the labels that mean "carry the request out"; the
    /// others refuse it. `rules` are the rules to compare; `minKappa` flags weak judges.
    public static func compute(
        run: String, examples: [Example], labels: [String], panel: [String], accepting: Set<String>,
        rules: [ConsensusRule], minCoverage: Double, minKappa: Double
    ) -> Calibration {
        let judges = panel.map { judge in judgeFigures(judge, examples: examples, labels: labels) }
        let counts = examples.map { example in
            example.votes.filter { panel.contains($0.key) }.reduce(into: [String: Int]()) {
                $0[$1.value, default: 0] += 1
            }
        }
        let figures = rules.map {
            ruleFigures($0, examples: examples, labels: labels, panel: panel, accepting: accepting)
        }
        let best = recommend(figures, minCoverage: minCoverage)
        var weak: [WeakJudge] = []
        for judge in judges {
            if let kappa = judge.cohenKappa, kappa < minKappa {
                weak.append(
                    WeakJudge(
                        judge: judge.judge,
                        reason: "kappa \(threeDecimals(kappa)) against people is below \(threeDecimals(minKappa))"
                    ))
            } else if judge.votes == 0 {
                weak.append(WeakJudge(judge: judge.judge, reason: "no valid vote on a labelled example"))
            }
        }
        // A judge whose absence would raise the recommended rule's precision (by a point or more,
        // at the coverage asked for) drags the panel down.
        if let best, let rule = figures.first(where: { $0.rule == best }), let precision = rule.precision,
            panel.count > 2
        {
            for judge in panel where !weak.contains(where: { $0.judge == judge }) {
                let without = ruleFigures(
                    rule.parameters.without(judge, panel: panel), examples: examples, labels: labels,
                    panel: panel.filter { $0 != judge }, accepting: accepting)
                if let better = without.precision, better >= precision + 0.01, without.coverage >= minCoverage {
                    weak.append(
                        WeakJudge(
                            judge: judge,
                            reason:
                                "without it \(best) reaches precision \(threeDecimals(better)) (from \(threeDecimals(precision))) at coverage \(threeDecimals(without.coverage))"
                        ))
                }
            }
        }
        return Calibration(
            run: run, examples: examples.count, labels: labels, judges: judges,
            fleissKappa: Agreement.fleissKappa(counts), krippendorffAlpha: Agreement.krippendorffAlphaNominal(counts),
            rules: figures,
            recommendation: Recommendation(rule: best, minCoverage: minCoverage, weakJudges: weak))
    }

    public static func judgeFigures(_ judge: String, examples: [Example], labels: [String]) -> JudgeFigures {
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
        var human: [String] = []
        var judged: [String] = []
        var invalid = 0
        for example in examples {
            invalid += example.invalid[judge] ?? 0
            guard let vote = example.votes[judge] else { continue }
            human.append(example.human)
            judged.append(vote)
            if let row = index[example.human], let column = index[vote] { confusion[row][column] += 1 }
        }
        let right = zip(human, judged).filter { $0 == $1 }.count
        return JudgeFigures(
            judge: judge, votes: judged.count, invalidAnswers: invalid,
            accuracy: judged.isEmpty ? nil : Double(right) / Double(judged.count),
            cohenKappa: Agreement.cohenKappa(human, judged), confusion: confusion)
    }

    static func ruleFigures(
        _ rule: ConsensusRule, examples: [Example], labels: [String], panel: [String], accepting: Set<String>
    ) -> RuleFigures {
        var predictions: [String?] = []
        var acceptable = 0
        var refusedAcceptable = 0
        for example in examples {
            let verdict = rule.decide(votes: example.votes, panel: panel, posterior: example.posterior)
            let label = verdict.status == .agreed ? verdict.label : nil
            predictions.append(label)
            if accepting.contains(example.human) {
                acceptable += 1
                if let label, !accepting.contains(label) { refusedAcceptable += 1 }
            }
        }
        let agreed = predictions.compactMap { $0 }.count
        let correct = zip(examples, predictions).filter { $0.human == $1 }.count
        return RuleFigures(
            rule: rule.description, parameters: rule, agreed: agreed,
            coverage: examples.isEmpty ? 0 : Double(agreed) / Double(examples.count),
            precision: agreed == 0 ? nil : Double(correct) / Double(agreed),
            perLabel: perLabel(human: examples.map(\.human), predicted: predictions, labels: labels),
            refusalFalsePositiveRate: acceptable == 0 ? nil : Double(refusedAcceptable) / Double(acceptable))
    }

    /// Per label: precision among the examples predicted with it, recall among those people gave
    /// it (an example without a prediction counts against recall). Nil where there is nothing to divide.
    public static func perLabel(human: [String], predicted: [String?], labels: [String]) -> [LabelFigures] {
        var chosen: [String: Int] = [:]
        var right: [String: Int] = [:]
        var actual: [String: Int] = [:]
        for (truth, prediction) in zip(human, predicted) {
            actual[truth, default: 0] += 1
            guard let prediction else { continue }
            chosen[prediction, default: 0] += 1
            if prediction == truth { right[truth, default: 0] += 1 }
        }
        return labels.map { label in
            LabelFigures(
                label: label, precision: chosen[label].map { Double(right[label] ?? 0) / Double($0) },
                recall: actual[label].map { Double(right[label] ?? 0) / Double($0) })
        }
    }

    /// The best precision among rules that cover at least `minCoverage`; ties go to coverage.
    static func recommend(_ rules: [RuleFigures], minCoverage: Double) -> String? {
        rules.filter { $0.coverage >= minCoverage && $0.precision != nil }
            .max { ($0.precision!, $0.coverage) < ($1.precision!, $1.coverage) }?.rule
    }
}

extension ConsensusRule {
    /// This rule for the panel without `judge`: a quorum or a minimum of votes shrinks with it.
    func without(_ judge: String, panel: [String]) -> ConsensusRule {
        var rule = self
        if let quorum { rule.quorum = max(1, min(quorum, panel.count - 1)) }
        if let minVotes { rule.minVotes = max(1, min(minVotes, panel.count - 1)) }
        rule.weights = weights?.filter { $0.key != judge }
        return rule
    }
}

/// A figure as the reports print it: three decimals.
func threeDecimals(_ value: Double) -> String {
    String(format: "%.3f", value)
}
