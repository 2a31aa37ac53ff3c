import Foundation
import JuryDomain
import JuryStore

/// `jury status --watch`: the status report as one screen, redrawn in place.
enum StatusDashboard {
    /// Clears the terminal and puts the cursor at the top left (ANSI).
    static let clearScreen = "\u{1B}[H\u{1B}[2J"

    static func render(_ report: StatusReport, interval: Double) -> String {
        var out = "jury status  \(clock(report.generatedAt))  (every \(number(interval))s; Ctrl-C to stop)\n\n"
        if report.runs.isEmpty { out += "no runs yet; create one with `jury run create --config FILE`\n" }
        for run in report.runs {
            let share = run.examples == 0 ? 0 : Double(run.decided) / Double(run.examples)
            out += "\(run.name)  \(run.state.rawValue)  \(bar(share, width: 24)) \(percent(share))  "
            out += "\(grouped(run.decided)) of \(grouped(run.examples)) examples decided"
            out +=
                "   \(number(run.votesPerMinute)) votes/min   ETA \(StatusReport.eta(run.etaSeconds, left: run.remainingJobs))\n"
            out += "  verdicts  agreed \(grouped(run.agreed))  disagreed \(grouped(run.disagreed))"
            out += "  insufficient \(grouped(run.insufficient))"
            let spent = report.costs[run.name]?.values.reduce(0, +) ?? 0
            out += "   tokens \(grouped(run.tokens))   cost " + dollars(spent)
            if let budget = report.budgets[run.name] { out += " of " + dollars(budget) }
            out += "\n"
            let judges = report.judges.filter { $0.run == run.name }
            let width = max(5, judges.map(\.judge.count).max() ?? 5)
            // Columns as in the rows below: bar and percent, closed/total, rate, ETA, latency, errors.
            out += "  " + "judge".leftAligned(width) + "  " + "progress".leftAligned(27)
            out += "  " + "closed/total".rightAligned(12) + "  " + "votes/min".rightAligned(9)
            out += "  " + "ETA".leftAligned(8) + "  " + "avg ms".rightAligned(6) + "  errors now\n"
            for judge in judges {
                let share = judge.total == 0 ? 0 : Double(judge.closed) / Double(judge.total)
                out += "  " + judge.judge.leftAligned(width) + "  " + bar(share, width: 20) + " " + percent(share)
                out += "  " + "\(grouped(judge.closed))/\(grouped(judge.total))".rightAligned(12)
                out += "  " + number(judge.votesPerMinute).rightAligned(9)
                out += "  " + StatusReport.eta(judge.etaSeconds, left: judge.remaining).leftAligned(8)
                out += "  " + (judge.averageLatencyMilliseconds.map(String.init) ?? "-").rightAligned(6)
                out += "  " + errors(judge) + "\n"
                if let reason = report.stopped[run.name]?[judge.judge] {
                    out += "  " + "".leftAligned(width) + "  STOPPED on every worker: \(reason)\n"
                }
            }
            out += "\n"
        }
        out += "live: \(report.liveWorkers) workers and reducers; judge calls in flight at their last heartbeat: "
        out += "\(report.callsInFlight)\n"
        return out
    }

    /// The errors a judge's jobs carry now, by class, most first.
    private static func errors(_ judge: StatusReport.JudgeLine) -> String {
        guard !judge.errors.isEmpty else { return "-" }
        return judge.errors.prefix(3).map { error in
            var parts: [String] = []
            if error.retrying > 0 { parts.append("\(error.retrying) retrying") }
            if error.failed > 0 { parts.append("\(error.failed) failed") }
            return "\(error.errorClass) (\(parts.joined(separator: ", ")))"
        }.joined(separator: "; ")
    }

    static func bar(_ share: Double, width: Int) -> String {
        let filled = Int((min(max(share, 0), 1) * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    static func percent(_ share: Double) -> String { "\(Int((share * 100).rounded(.down)))%".rightAligned(4) }

    static func grouped(_ value: Int) -> String {
        value.formatted(.number.grouping(.automatic).locale(.init(identifier: "en_US")))
    }

    /// Whole numbers from 10 up, one decimal below (a slow judge's 0.5 votes a minute is not 0).
    static func number(_ value: Double) -> String {
        value >= 10 || value == value.rounded() ? grouped(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func dollars(_ value: Double) -> String { String(format: value < 10 ? "$%.4f" : "$%.2f", value) }

    static func clock(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }
}
