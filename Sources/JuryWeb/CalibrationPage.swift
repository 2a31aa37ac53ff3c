import Foundation
import JuryDomain
import JuryStore

/// The run's last `jury calibrate` report: each judge against people (accuracy, Cohen's
/// kappa, the confusion matrix as a heatmap), and each rule's precision against coverage with
/// the recommended one. An owner may run a new calibration from here.
enum CalibrationPage {
    static func page(run: String, calibration: Calibration?, session: ReviewerSession) -> HTML {
        var out = HTML(raw: "<h1>Calibration · ") + HTML(run) + HTML(raw: "</h1>")
        if session.reviewer.role.mayCalibrate {
            out =
                out + HTML(raw: #"<form method="post" action=""#) + HTML(HTML.runPath(run, "/calibration"))
                + HTML(raw: #"">"#) + Layout.csrfField(session)
                + HTML(raw: #"<button type="submit">Run a new calibration</button> "#)
                + HTML(
                    raw:
                        #"<span class="muted">on every example people labelled, as <code>jury calibrate</code> does.</span></form>"#
                )
        }
        guard let calibration else {
            return out
                + HTML(raw: "<p>This run has no calibration yet. Label a few hundred examples (review, or ")
                + HTML(raw: "<code>jury import-labels</code>), then run <code>jury calibrate</code>.</p>")
        }
        out =
            out + HTML(raw: "<p>")
            + HTML(
                "On \(Figures.count(calibration.examples)) examples people labelled. Fleiss' kappa \(Figures.decimal(calibration.fleissKappa, digits: 3)), "
                    + "Krippendorff's alpha \(Figures.decimal(calibration.krippendorffAlpha, digits: 3)).")
            + HTML(raw: "</p>")
        out =
            out + HTML(raw: "<h2>Judges against people</h2>")
            + Layout.table(
                caption: "Judges against people",
                headers: ["Judge", "Votes", "Invalid answers", "Accuracy", "Cohen's kappa"],
                numeric: [1, 2, 3, 4],
                rows: calibration.judges.map { judge in
                    [
                        HTML(judge.judge), HTML(Figures.count(judge.votes)), HTML(Figures.count(judge.invalidAnswers)),
                        HTML(Figures.percent(judge.accuracy)), HTML(Figures.decimal(judge.cohenKappa, digits: 3)),
                    ]
                })
        for weak in calibration.recommendation.weakJudges {
            out = out + HTML(raw: #"<p class="bad">"#) + HTML("\(weak.judge): \(weak.reason)") + HTML(raw: "</p>")
        }
        out = out + HTML(raw: "<h2>Rules: precision against coverage</h2>")
        if let rule = calibration.recommendation.rule {
            out =
                out + HTML(raw: "<p>Recommended: <strong>") + HTML(rule) + HTML(raw: "</strong> ")
                + HTML(
                    "(the best precision with coverage of at least \(Figures.percent(calibration.recommendation.minCoverage)))."
                )
                + HTML(raw: "</p>")
        } else {
            out =
                out + HTML(raw: "<p>")
                + HTML("No rule reaches coverage of \(Figures.percent(calibration.recommendation.minCoverage)).")
                + HTML(raw: "</p>")
        }
        out =
            out
            + Layout.table(
                caption: "Rules", headers: ["Rule", "Agreed", "Coverage", "Precision", "Acceptable refused"],
                numeric: [1, 2, 3, 4],
                rows: calibration.rules.map { rule in
                    [
                        HTML(rule.rule) + HTML(rule.rule == calibration.recommendation.rule ? " (recommended)" : ""),
                        HTML(Figures.count(rule.agreed)), HTML(Figures.percent(rule.coverage)),
                        HTML(Figures.percent(rule.precision)), HTML(Figures.percent(rule.refusalFalsePositiveRate)),
                    ]
                })
        out =
            out + HTML(raw: "<h2>Confusion matrices</h2>")
            + HTML(
                raw:
                    #"<p class="muted">Rows: people's label; columns: the judge's. Darker cells hold more examples.</p>"#
            )
        for judge in calibration.judges {
            out =
                out + HTML(raw: "<h3>") + HTML(judge.judge) + HTML(raw: "</h3>")
                + heatmap(judge.confusion, labels: calibration.labels, judge: judge.judge)
        }
        return out
    }

    /// A confusion matrix as a table whose cells are shaded by their share of the row's largest.
    static func heatmap(_ matrix: [[Int]], labels: [String], judge: String) -> HTML {
        let peak = max(1, matrix.flatMap { $0 }.max() ?? 1)
        var out =
            HTML(raw: #"<table class="heat"><caption class="sr-only">"#)
            + HTML("\(judge): people's labels in rows, the judge's in columns")
            + HTML(raw: "</caption><thead><tr><td></td>")
        for label in labels { out = out + HTML(raw: #"<th scope="col">"#) + HTML(label) + HTML(raw: "</th>") }
        out = out + HTML(raw: "</tr></thead><tbody>")
        for (row, label) in labels.enumerated() {
            out = out + HTML(raw: #"<tr><th scope="row">"#) + HTML(label) + HTML(raw: "</th>")
            for column in labels.indices {
                let count = row < matrix.count && column < matrix[row].count ? matrix[row][column] : 0
                let shade = count == 0 ? 0 : 1 + Int(Double(count) / Double(peak) * 5)
                out =
                    out + HTML(raw: #"<td class="h\#(min(shade, 6))">"#) + HTML(Figures.count(count))
                    + HTML(raw: "</td>")
            }
            out = out + HTML(raw: "</tr>")
        }
        return out + HTML(raw: "</tbody></table>")
    }
}
