import Foundation
import JuryDomain
import JuryStore

/// The dashboards: every run, and one run in detail. Both read the kept counters (the views
/// `jury status` reads), never the jobs or votes themselves, so they answer as fast at ten
/// million jobs as at ten.
enum RunPages {
    /// The part of the runs page that refreshes itself.
    static func runs(_ summaries: [Store.RunSummary], report: StatusReport) -> HTML {
        let lines = Dictionary(report.runs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let rows: [[HTML]] = summaries.map { run in
            let line = lines[run.name]
            let share = run.examples > 0 ? Double(run.decided) / Double(run.examples) : 0
            return [
                Layout.link(run.name, run: run.name),
                HTML(run.state.rawValue),
                Layout.bar(share, label: "\(Figures.percent(share)) decided") + HTML(" " + Figures.percent(share)),
                HTML("\(Figures.count(run.decided)) / \(Figures.count(run.examples))"),
                HTML(Figures.count(Int((line?.votesPerMinute ?? 0).rounded()))),
                HTML(StatusReport.eta(line?.etaSeconds, left: line?.remainingJobs ?? 0)),
                HTML(Figures.dollars(run.costUSD) + (run.budgetUSD.map { " of " + Figures.dollars($0) } ?? "")),
                HTML(Figures.count(run.disagreed + run.insufficient)),
            ]
        }
        let body =
            HTML(raw: #"<p class="muted">"#)
            + HTML("\(report.liveWorkers) live worker processes, \(report.callsInFlight) judge calls under way.")
            + HTML(raw: "</p>")
            + (summaries.isEmpty
                ? HTML(raw: "<p>No runs yet: create one with <code>jury run create --config FILE</code>.</p>")
                : Layout.table(
                    caption: "Runs",
                    headers: ["Run", "State", "Progress", "Decided", "Votes/min", "Time left", "Cost", "Not agreed"],
                    numeric: [3, 4, 7], rows: rows))
        return body
    }

    /// The runs page: the frame, with the part that refreshes itself (`live`) inside.
    static func runsFrame(live: HTML) -> HTML {
        HTML(raw: "<h1>Runs</h1>")
            + HTML(raw: #"<p id="live-status" class="muted" aria-live="polite">Refreshed every 5 seconds.</p>"#)
            + HTML(raw: #"<div data-live="5" data-source="/live">"#) + live + HTML(raw: "</div>")
    }

    /// The run's page: the frame, with the part that refreshes itself (`live`) inside.
    static func run(name: String, live: HTML, role: ReviewerRole) -> HTML {
        var links = Layout.link("Calibration", run: name, "/calibration")
        if role.mayCalibrate {
            links = Layout.link("Settle conflicts between people", run: name, "/adjudicate") + HTML(" · ") + links
        }
        if role.mayReview {
            links = Layout.link("Review the disagreements", run: name, "/review") + HTML(" · ") + links
        }
        return HTML(raw: "<h1>Run ") + HTML(name) + HTML(raw: "</h1><p>") + links + HTML(raw: "</p>")
            + HTML(raw: #"<p id="live-status" class="muted" aria-live="polite">Refreshed every 5 seconds.</p>"#)
            + HTML(raw: #"<div data-live="5" data-source=""#) + HTML(HTML.runPath(name, "/live"))
            + HTML(raw: #"">"#) + live + HTML(raw: "</div>")
    }

    /// What refreshes: progress, rates, cost, the judges' health (breakers, outages, the holds of
    /// their accounts after a 429, errors by class), the review queue, the last hour, the history.
    static func live(
        name: String, report: StatusReport, review: ReviewProgress, minutes: [(minute: Date, votes: Int)],
        history: [RunHistoryPoint] = [], holds: [String: Date] = [:]
    ) -> HTML {
        guard let run = report.runs.first(where: { $0.name == name }) else {
            return HTML(raw: "<p>This run has no examples yet.</p>")
        }
        let share = run.examples > 0 ? Double(run.decided) / Double(run.examples) : 0
        let cost = report.costs[name, default: [:]].values.reduce(0, +)
        let budget = report.budgets[name]
        var out = HTML(raw: #"<div class="figures">"#)
        func figure(_ title: String, _ value: HTML) {
            out =
                out + HTML(raw: "<div><span class=\"muted\">") + HTML(title) + HTML(raw: "</span><strong>") + value
                + HTML(raw: "</strong></div>")
        }
        figure("State", HTML(run.state.rawValue))
        figure("Decided", HTML("\(Figures.count(run.decided)) of \(Figures.count(run.examples))"))
        figure("Votes per minute", HTML(Figures.count(Int(run.votesPerMinute.rounded()))))
        figure("Time left", HTML(StatusReport.eta(run.etaSeconds, left: run.remainingJobs)))
        figure("Cost", HTML(Figures.dollars(cost) + (budget.map { " of " + Figures.dollars($0) } ?? "")))
        out =
            out + HTML(raw: "</div><p>") + Layout.bar(share, label: "\(Figures.percent(share)) decided")
            + HTML(" \(Figures.percent(share)) decided")
        if let budget, budget > 0 {
            out =
                out + HTML(raw: "<br>")
                + Layout.bar(cost / budget, label: "\(Figures.percent(cost / budget)) of the budget")
                + HTML(" \(Figures.percent(cost / budget)) of the budget spent")
        }
        out = out + HTML(raw: "</p>")

        out =
            out + HTML(raw: "<h2>Verdicts</h2>")
            + Layout.table(
                caption: "Verdicts",
                headers: ["Agreed", "Disagreed", "Insufficient", "Decided by people", "Voting", "Ready"],
                numeric: [0, 1, 2, 3, 4, 5],
                rows: [
                    [
                        HTML(Figures.count(run.agreed)), HTML(Figures.count(run.disagreed)),
                        HTML(Figures.count(run.insufficient)),
                        HTML(Figures.count(report.outcomes[name]?["decided_by_people"] ?? 0)),
                        HTML(Figures.count(run.voting)), HTML(Figures.count(run.ready)),
                    ]
                ])
        out =
            out + HTML(raw: "<h2>Review</h2><p>")
            + HTML(
                "\(Figures.count(review.waiting)) examples wait for people (held by a reviewer now: \(review.leased)), "
                    + "\(Figures.count(review.answered)) answered; \(Figures.count(review.conflicts)) conflicts between "
                    + "people wait for an owner.") + HTML(raw: "</p>")
        if review.doublyLabelled > 0 {
            out =
                out + HTML(raw: "<p>")
                + HTML(
                    "Agreement between people: Cohen's kappa \(Figures.decimal(review.peopleKappa, digits: 3)) "
                        + "on \(Figures.count(review.doublyLabelled)) examples two people labelled.")
                + HTML(raw: "</p>")
        }

        out = out + HTML(raw: "<h2>Judges</h2>")
        let stopped = report.stopped[name, default: [:]]
        let judgeRows: [[HTML]] = report.judges.filter { $0.run == name }.map { judge in
            var health = HTML(raw: "")
            if let reason = stopped[judge.judge] {
                health = HTML(raw: #"<span class="bad">stopped: "#) + HTML(reason) + HTML(raw: "</span>")
            } else if let seconds = judge.retryingSeconds {
                health =
                    HTML(raw: #"<span class="bad">"#) + HTML("retrying for \(Figures.duration(seconds))")
                    + HTML(raw: "</span>")
            } else {
                health = HTML(raw: #"<span class="good">ok</span>"#)
            }
            if let until = holds[judge.judge] {
                health =
                    health
                    + HTML("; its account is held after a 429 for \(Figures.duration(until.timeIntervalSinceNow)) more")
            }
            if judge.retryAfterCapped > 0 {
                health = health + HTML("; asked to wait longer than the cap \(judge.retryAfterCapped) times")
            }
            let errors = judge.errors.map { "\($0.errorClass): \($0.retrying) retrying, \($0.failed) failed" }
            return [
                HTML(judge.judge), health,
                HTML(Figures.count(judge.done)), HTML(Figures.count(judge.remaining)),
                HTML(Figures.count(judge.failed)),
                HTML(Figures.count(Int(judge.votesPerMinute.rounded()))),
                HTML(judge.averageLatencyMilliseconds.map { "\($0) ms" } ?? "–"),
                HTML(Figures.dollars(report.costs[name]?[judge.judge] ?? 0)),
                HTML(raw: #"<span class="text">"#) + HTML(errors.isEmpty ? "none" : errors.joined(separator: "\n"))
                    + HTML(raw: "</span>"),
            ]
        }
        out =
            out
            + Layout.table(
                caption: "Judges",
                headers: [
                    "Judge", "Health", "Votes", "Left", "Failed", "Votes/min", "Latency", "Cost", "Errors by class",
                ],
                numeric: [2, 3, 4, 5, 6, 7], rows: judgeRows)
        out = out + HTML(raw: "<h2>Votes per minute, last hour</h2>") + chart(minutes)
        if history.count >= 2 {
            let budget = report.budgets[name]
            out =
                out + HTML(raw: "<h2>Since the run began</h2>")
                + line(
                    history.map { ($0.minute, $0.examples > 0 ? Double($0.decided) / Double($0.examples) : 0) },
                    top: 1, label: "Share of examples decided", value: { Figures.percent($0) })
                + line(
                    history.map { ($0.minute, $0.costUSD) }, top: max(budget ?? 0, history.last?.costUSD ?? 0, 0.01),
                    label: budget.map { "Cost against the budget of \(Figures.dollars($0))" } ?? "Cost",
                    value: { Figures.dollars($0) }, ceiling: budget)
        }
        return out
    }

    /// A line over time, as SVG, from 0 to `top`; `ceiling` draws a limit (the budget) across.
    static func line(
        _ points: [(Date, Double)], top: Double, label: String, value: (Double) -> String, ceiling: Double? = nil
    ) -> HTML {
        guard let first = points.first?.0, let last = points.last?.0 else { return HTML(raw: "") }
        let span = max(last.timeIntervalSince(first), 1)
        func y(_ v: Double) -> String { String(format: "%.2f", 98 - min(max(v / top, 0), 1) * 96) }
        let path = points.map { point in
            String(format: "%.2f", point.0.timeIntervalSince(first) / span * 1000) + "," + y(point.1)
        }.joined(separator: " ")
        var svg = #"<polyline class="series" points="\#(path)"></polyline>"#
        if let ceiling {
            svg += #"<line class="limit" x1="0" x2="1000" y1="\#(y(ceiling))" y2="\#(y(ceiling))"></line>"#
        }
        let summary =
            "\(label): \(value(points.last?.1 ?? 0)) now, after \(Figures.duration(last.timeIntervalSince(first)))."
        return HTML(raw: "<h3>") + HTML(label) + HTML(raw: "</h3>")
            + HTML(
                raw: #"<svg class="chart" viewBox="0 0 1000 100" preserveAspectRatio="none" role="img" aria-label=""#)
            + HTML(summary) + HTML(raw: #"">"# + svg + "</svg>") + HTML(raw: #"<p class="muted">"#) + HTML(summary)
            + HTML(raw: "</p>")
    }

    /// Bars of votes per minute over the last 60 minutes, as SVG.
    static func chart(_ minutes: [(minute: Date, votes: Int)]) -> HTML {
        let now = Date()
        let peak = max(1, minutes.map(\.votes).max() ?? 1)
        var bars = ""
        for point in minutes {
            let age = Int(now.timeIntervalSince(point.minute) / 60)
            guard (0..<60).contains(age) else { continue }
            let height = Double(point.votes) / Double(peak) * 95
            bars +=
                #"<rect x="\#(59 - age)" y="\#(String(format: "%.2f", 100 - height))" width="0.8" height="\#(String(format: "%.2f", height))"></rect>"#
        }
        let total = minutes.reduce(0) { $0 + $1.votes }
        return HTML(raw: #"<svg class="chart" viewBox="0 0 60 100" preserveAspectRatio="none" role="img" aria-label=""#)
            + HTML("\(Figures.count(total)) votes in the last hour, at most \(Figures.count(peak)) in a minute")
            + HTML(raw: #"">"# + bars + "</svg>")
            + HTML(raw: #"<p class="muted">"#)
            + HTML("\(Figures.count(total)) votes in the last hour; the busiest minute had \(Figures.count(peak)).")
            + HTML(raw: "</p>")
    }
}
