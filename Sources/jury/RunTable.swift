import Foundation
import JuryDomain
import JuryStore

/// `jury run list` as text: one row per run, columns aligned.
struct RunTable {
    let text: String

    init(_ runs: [Store.RunSummary]) {
        guard !runs.isEmpty else {
            text = "no runs yet; create one with `jury run create CONFIG`\n"
            return
        }
        let header = [
            "run", "state", "examples", "decided", "left", "agreed", "disagreed", "insufficient", "failed jobs",
            "cost", "created", "finished",
        ]
        let rows = runs.map { run in
            [
                run.name, run.state.rawValue, "\(run.examples)", "\(run.decided)", "\(run.undecided)", "\(run.agreed)",
                "\(run.disagreed)", "\(run.insufficient)", "\(run.jobsFailed)", Self.cost(run),
                Self.time(run.createdAt), run.finishedAt.map(Self.time) ?? "-",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        // Names and states read left to right; figures line up on the right.
        let readLeftToRight: Set<Int> = [0, 1, 10, 11]
        text = ([header] + rows).map { row in
            row.indices.map { column in
                readLeftToRight.contains(column)
                    ? row[column].leftAligned(widths[column]) : row[column].rightAligned(widths[column])
            }.joined(separator: "  ").trimmingTrailingSpaces() + "\n"
        }.joined()
    }

    private static func cost(_ run: Store.RunSummary) -> String {
        let spent = "$" + String(format: "%.2f", run.costUSD)
        return run.budgetUSD.map { spent + " of $" + String(format: "%.2f", $0) } ?? spent
    }

    private static func time(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var trimmed = self
        while trimmed.last == " " { trimmed.removeLast() }
        return trimmed
    }
}
