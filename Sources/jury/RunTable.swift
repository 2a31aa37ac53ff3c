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
        // Names, states and times read left to right; figures line up on the right.
        text = columns(header, rows, figures: [2, 3, 4, 5, 6, 7, 8, 9])
    }

    private static func cost(_ run: Store.RunSummary) -> String {
        let spent = "$" + String(format: "%.2f", run.costUSD)
        return run.budgetUSD.map { spent + " of $" + String(format: "%.2f", $0) } ?? spent
    }

    private static func time(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
