import Foundation
import JuryDomain
import JuryStore

/// One example at a time: its fields, the production label, every judge's label and
/// rationale, and the taxonomy to answer from. Keys 1 to 9 pick a label, s skips, u undoes.
enum ReviewPage {
    /// `adjudicate`: an owner settles a conflict between people, seeing each one's label.
    static func page(
        run: StoredRun, item: ReviewItem?, progress: ReviewProgress, session: ReviewerSession, adjudicate: Bool
    ) -> HTML {
        // Every form posts back to this page's own address, with the session's CSRF token.
        func form(_ action: String, classes: String = "") -> HTML {
            let attributes = classes.isEmpty ? "" : #" class="\#(classes)""#
            return HTML(raw: "<form\(attributes)" + #" method="post" action=""#)
                + HTML(HTML.runPath(run.name, adjudicate ? "/adjudicate" : "/review")) + HTML(raw: #"">"#)
                + Layout.csrfField(session) + HTML(raw: #"<input type="hidden" name="action" value="\#(action)">"#)
        }
        let perItem = run.config.reviewersPerItem
        let queue =
            adjudicate
            ? "\(Figures.count(progress.conflicts)) examples wait for an owner: the people who labelled them did not agree. "
            : "\(Figures.count(progress.waiting)) examples wait for people; you answered "
                + "\(Figures.count(progress.answeredByReviewer)). "
                + (perItem > 1 ? "Each is labelled blind by \(perItem) people before it is decided. " : "")
        var out =
            HTML(raw: adjudicate ? "<h1>Adjudicate · " : "<h1>Review · ") + HTML(run.name) + HTML(raw: "</h1>")
            + HTML(raw: #"<p class="muted">"#)
            + HTML(
                queue + "Keys: 1–\(min(9, run.config.taxonomy.count)) pick a label, s skips, u undoes your last answer."
            )
            + HTML(raw: "</p>")
        let undo =
            form("undo")
            + HTML(raw: #"<button type="submit" data-key="u"><kbd>u</kbd>Undo my last answer</button></form>"#)
        guard let item else {
            let empty =
                adjudicate
                ? "No conflict between people is waiting in this run."
                : "Nothing is left for you to review in this run."
            return out + HTML(raw: "<p>") + HTML(empty) + HTML(raw: #"</p><div class="actions">"#) + undo
                + HTML(raw: "</div>")
        }
        let held =
            HTML(raw: #"<input type="hidden" name="example" value="\#(item.exampleID)">"#)
            + HTML(raw: #"<input type="hidden" name="lease" value=""#) + HTML(item.leaseToken) + HTML(raw: #"">"#)
        out =
            out + HTML(raw: #"<div class="review"><section aria-labelledby="example-heading">"#)
            + HTML(raw: #"<h2 id="example-heading">Example "#) + HTML(item.externalID)
            + HTML(raw: #" <span class="muted">(batch "#) + HTML(item.batch) + HTML(raw: ")</span></h2>")
            + fields(item.payload)
            + HTML(raw: "<p>Production label: <strong>") + HTML(item.sourceLabel ?? "none") + HTML(raw: "</strong>. ")
            + HTML("Panel: \(item.panelStatus)") + HTML(item.panelLabel.map { " on “\($0)”" } ?? "")
            + HTML(", agreement \(Figures.percent(item.agreement)).") + HTML(raw: "</p>")
            + HTML(raw: "<h2>The judges</h2>")
        for vote in item.votes {
            out =
                out + HTML(raw: #"<div class="vote"><strong>"#) + HTML(vote.judge) + HTML(raw: "</strong>: ")
                + HTML(vote.label) + HTML(raw: #"<div class="text muted">"#) + HTML(vote.rationale ?? "(no rationale)")
                + HTML(raw: "</div></div>")
        }
        if item.votes.isEmpty { out = out + HTML(raw: "<p>No judge gave a valid answer.</p>") }
        if !item.answers.isEmpty {
            out = out + HTML(raw: "<h2>The people</h2>")
            for answer in item.answers {
                out =
                    out + HTML(raw: #"<div class="vote"><strong>"#) + HTML(answer.reviewer) + HTML(raw: "</strong>: ")
                    + HTML(answer.label) + HTML(raw: "</div>")
            }
        }
        out =
            out + HTML(raw: "</section>")
            + HTML(raw: #"<section aria-labelledby="labels-heading"><h2 id="labels-heading">Your label</h2>"#)
            + form("answer", classes: "labels") + held
        for (index, label) in run.config.taxonomy.enumerated() {
            let key = index < 9 ? "\(index + 1)" : nil
            out =
                out + HTML(raw: #"<button type="submit" name="label" value=""#) + HTML(label.label) + HTML(raw: #"""#)
                + HTML(raw: key.map { #" data-key="\#($0)""# } ?? "") + HTML(raw: ">")
                + HTML(raw: key.map { "<kbd>\($0)</kbd>" } ?? "") + HTML(label.label)
                + HTML(raw: #"<span class="description">"#) + HTML(label.description) + HTML(raw: "</span></button>")
        }
        out =
            out + HTML(raw: "</form>") + HTML(raw: #"<div class="actions">"#) + form("skip") + held
            + HTML(raw: #"<button type="submit" data-key="s"><kbd>s</kbd>Skip</button></form>"#) + undo
            + HTML(raw: "</div>")
            + HTML(raw: #"<p class="muted">"#)
            + HTML("Held for you until \(timeOfDay(item.leasedUntil)) UTC; after that it goes back to the queue.")
            + HTML(raw: "</p></section></div>")
        return out
    }

    /// The example's fields as text, each under its name; a value that is not a string is
    /// shown as its JSON.
    static func fields(_ payload: String) -> HTML {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else {
            return HTML(raw: #"<pre class="text">"#) + HTML(payload) + HTML(raw: "</pre>")
        }
        var out = HTML(raw: #"<dl class="field">"#)
        for key in object.keys.sorted() {
            let value: String
            if let text = object[key] as? String {
                value = text
            } else if let data = try? JSONSerialization.data(
                withJSONObject: object[key] ?? NSNull(), options: [.fragmentsAllowed, .prettyPrinted, .sortedKeys])
            {
                value = String(decoding: data, as: UTF8.self)
            } else {
                value = "\(object[key] ?? "")"
            }
            out =
                out + HTML(raw: "<dt>") + HTML(key) + HTML(raw: #"</dt><dd class="field-value">"#) + HTML(value)
                + HTML(raw: "</dd>")
        }
        return out + HTML(raw: "</dl>")
    }

    static func timeOfDay(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970) % 86400
        return String(format: "%02d:%02d", seconds / 3600, seconds % 3600 / 60)
    }
}
