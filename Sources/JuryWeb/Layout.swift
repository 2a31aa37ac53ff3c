import JuryStore

/// The frame of every page: the header with the reviewer and a sign-out button, then `main`.
enum Layout {
    static func page(title: String, session: ReviewerSession?, notice: Notice? = nil, _ content: HTML) -> HTML {
        var header = HTML(raw: #"<header class="top"><a class="brand" href="/">Jury</a><nav aria-label="Main">"#)
        if let session {
            header =
                header + HTML(raw: #"<a href="/">Runs</a></nav><span>"#) + HTML(session.reviewer.name)
                + HTML(raw: #" <span class="muted">("#) + HTML(session.reviewer.role.rawValue)
                + HTML(raw: ")</span></span>")
                + HTML(raw: #"<form class="inline" method="post" action="/signout">"#) + csrfField(session)
                + HTML(raw: #"<button type="submit">Sign out</button></form>"#)
        } else {
            header = header + HTML(raw: "</nav>")
        }
        header = header + HTML(raw: "</header>")
        return HTML(raw: #"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">"#)
            + HTML(raw: #"<meta name="viewport" content="width=device-width, initial-scale=1"><title>"#) + HTML(title)
            + HTML(raw: #" · Jury</title><link rel="stylesheet" href="/assets/jury.css">"#)
            + HTML(raw: #"<script src="/assets/jury.js" defer></script></head><body>"#) + header
            + HTML(raw: "<main>") + (notice.map(\.html) ?? HTML(raw: "")) + content + HTML(raw: "</main></body></html>")
    }

    /// The hidden field every form of a signed-in page carries.
    static func csrfField(_ session: ReviewerSession) -> HTML {
        HTML(raw: #"<input type="hidden" name="csrf" value=""#) + HTML(session.csrfToken) + HTML(raw: #"">"#)
    }

    /// A line said above the page's content.
    struct Notice {
        let text: String
        let isError: Bool

        var html: HTML {
            HTML(raw: isError ? #"<p class="notice error" role="alert">"# : #"<p class="notice" role="status">"#)
                + HTML(text) + HTML(raw: "</p>")
        }
    }

    /// A table: headers, then rows of cells already made; `numeric` columns align right.
    static func table(caption: String? = nil, headers: [String], numeric: Set<Int> = [], rows: [[HTML]]) -> HTML {
        var out = HTML(raw: "<table>")
        if let caption {
            out = out + HTML(raw: #"<caption class="sr-only">"#) + HTML(caption) + HTML(raw: "</caption>")
        }
        out = out + HTML(raw: "<thead><tr>")
        for (index, header) in headers.enumerated() {
            out =
                out + HTML(raw: numeric.contains(index) ? #"<th scope="col" class="n">"# : #"<th scope="col">"#)
                + HTML(header) + HTML(raw: "</th>")
        }
        out = out + HTML(raw: "</tr></thead><tbody>")
        for row in rows {
            out = out + HTML(raw: "<tr>")
            for (index, cell) in row.enumerated() {
                out = out + HTML(raw: numeric.contains(index) ? #"<td class="n">"# : "<td>") + cell + HTML(raw: "</td>")
            }
            out = out + HTML(raw: "</tr>")
        }
        return out + HTML(raw: "</tbody></table>")
    }

    /// A bar filled to `share` (0 to 1), drawn as SVG: the policy allows no inline style.
    static func bar(_ share: Double, label: String) -> HTML {
        let width = Int((min(max(share.isFinite ? share : 0, 0), 1) * 1000).rounded())
        return HTML(
            raw: #"<span class="bar"><svg viewBox="0 0 1000 10" preserveAspectRatio="none" role="img" aria-label=""#)
            + HTML(label) + HTML(raw: #""><rect x="0" y="0" height="10" width="\#(width)"></rect></svg></span>"#)
    }

    static func link(_ text: String, run: String, _ suffix: String = "") -> HTML {
        HTML(raw: #"<a href=""#) + HTML(HTML.runPath(run, suffix)) + HTML(raw: #"">"#)
            + HTML(text) + HTML(raw: "</a>")
    }
}
