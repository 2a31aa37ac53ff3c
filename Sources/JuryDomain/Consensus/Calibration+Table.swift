import Foundation

extension Calibration {
    /// The report as people read it in a terminal.
    public var table: String {
        func cell(_ value: Double?) -> String { value.map(threeDecimals) ?? "-" }
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
        }
        func left(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
        }
        var out = "calibration of run \(run) on \(examples) examples labelled by people\n\n"
        let judgeWidth = max(5, judges.map(\.judge.count).max() ?? 0)
        out += pad("judge", judgeWidth) + "  votes  invalid  accuracy  kappa\n"
        for judge in judges {
            out +=
                pad(judge.judge, judgeWidth) + left("\(judge.votes)", 7) + left("\(judge.invalidAnswers)", 9)
                + left(cell(judge.accuracy), 10) + left(cell(judge.cohenKappa), 7) + "\n"
        }
        out += "\npanel: Fleiss' kappa \(cell(fleissKappa)), Krippendorff's alpha \(cell(krippendorffAlpha))\n"

        let labelWidth = max(6, labels.map(\.count).max() ?? 0)
        for judge in judges {
            out += "\nconfusion of \(judge.judge) (rows: people, columns: the judge, in the order of the rows)\n"
            for (row, label) in labels.enumerated() {
                out += pad(label, labelWidth) + judge.confusion[row].map { left("\($0)", 6) }.joined() + "\n"
            }
        }

        let ruleWidth = max(12, rules.map(\.rule.count).max() ?? 0)
        out += "\n" + pad("rule", ruleWidth) + "  agreed  coverage  precision  refusal FPR\n"
        for rule in rules {
            out +=
                pad(rule.rule, ruleWidth) + left("\(rule.agreed)", 8) + left(cell(rule.coverage), 10)
                + left(cell(rule.precision), 11) + left(cell(rule.refusalFalsePositiveRate), 13) + "\n"
        }
        out += "\nper label, precision / recall\n" + pad("rule", ruleWidth)
        let widths = labels.map { max($0.count, 11) }
        out += zip(labels, widths).map { "  " + left($0, $1) }.joined() + "\n"
        for rule in rules {
            out += pad(rule.rule, ruleWidth)
            for (figures, width) in zip(rule.perLabel, widths) {
                out += "  " + left("\(cell(figures.precision))/\(cell(figures.recall))", width)
            }
            out += "\n"
        }
        out += "\n"
        if let best = recommendation.rule {
            out += "recommended: \(best) (best precision with coverage at least \(cell(recommendation.minCoverage)))\n"
        } else {
            out += "recommended: none; no rule covers \(cell(recommendation.minCoverage)) of the examples\n"
        }
        for weak in recommendation.weakJudges {
            out += "weak judge: \(weak.judge): \(weak.reason)\n"
        }
        return out
    }
}
