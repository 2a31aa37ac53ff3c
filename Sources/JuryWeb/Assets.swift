/// The web app's stylesheet and script, served from the binary: nothing is fetched from
/// elsewhere, and the Content-Security-Policy allows no other (and no inline) script or style.
enum Assets {
    static let stylesheet = """
        :root { --ink: #1b1f24; --muted: #4a5560; --line: #d4d9de; --accent: #0b5cad; --bad: #a4141f;
                --good: #17663a; --paper: #ffffff; --shade: #f3f5f7; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
               background: var(--paper); }
        header.top { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem;
                     border-bottom: 1px solid var(--line); background: var(--shade); }
        header.top .brand { font-weight: 700; color: var(--ink); text-decoration: none; }
        header.top nav { display: flex; gap: 1rem; flex: 1; }
        header.top form { margin: 0; }
        main { padding: 1rem 1.2rem 3rem; max-width: 78rem; }
        a { color: var(--accent); }
        h1 { font-size: 1.4rem; margin: .4rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
        table { border-collapse: collapse; margin: .4rem 0 1rem; }
        th, td { text-align: left; padding: .3rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        .muted { color: var(--muted); }
        .notice { padding: .6rem .9rem; border-left: 4px solid var(--accent); background: var(--shade); margin: .8rem 0; }
        .notice.error { border-color: var(--bad); }
        .bad { color: var(--bad); }
        .good { color: var(--good); }
        .bar { width: 14rem; height: .8rem; background: var(--shade); border: 1px solid var(--line); display: inline-block;
               vertical-align: middle; }
        .bar svg { display: block; width: 100%; height: 100%; }
        .figures { display: flex; flex-wrap: wrap; gap: 1.6rem; margin: .6rem 0 1rem; }
        .figures div { min-width: 8rem; }
        .figures strong { display: block; font-size: 1.3rem; }
        .text, .field-value { white-space: pre-wrap; overflow-wrap: anywhere; unicode-bidi: isolate; }
        .field { margin: 0 0 .8rem; }
        .field dt { font-weight: 600; color: var(--muted); }
        .field dd { margin: .2rem 0 0; padding: .5rem .7rem; background: var(--shade); border-radius: 4px;
                    max-height: 24rem; overflow: auto; }
        .review { display: grid; grid-template-columns: minmax(0, 3fr) minmax(16rem, 2fr); gap: 1.5rem; }
        .labels button { display: block; width: 100%; text-align: left; margin: 0 0 .4rem; padding: .5rem .7rem;
                         border: 1px solid var(--line); border-radius: 4px; background: var(--paper); color: var(--ink);
                         font: inherit; cursor: pointer; }
        .labels button:hover, .labels button:focus { border-color: var(--accent); outline: 2px solid var(--accent); }
        .labels kbd, .actions kbd { display: inline-block; min-width: 1.4rem; text-align: center; font-weight: 700;
                                    border: 1px solid var(--line); border-radius: 3px; margin-right: .5rem; }
        .labels .description { display: block; color: var(--muted); font-size: .9rem; }
        .actions { display: flex; gap: .6rem; margin-top: .6rem; }
        .actions button, form.inline button, .signin button { padding: .4rem .9rem; font: inherit; cursor: pointer; }
        .vote { border-top: 1px solid var(--line); padding: .5rem 0; }
        .heat td { text-align: center; min-width: 2.6rem; }
        .h0 { background: #ffffff; } .h1 { background: #e3eef9; } .h2 { background: #c6dcf2; } .h3 { background: #9fc3e8; }
        .h4 { background: #6fa3d8; color: #fff; } .h5 { background: #3f7fc2; color: #fff; } .h6 { background: #0b5cad; color: #fff; }
        .chart { width: 100%; max-width: 48rem; height: 8rem; border: 1px solid var(--line); }
        .chart rect, .bar rect { fill: var(--accent); }
        .chart polyline.series { fill: none; stroke: var(--accent); stroke-width: 2; vector-effect: non-scaling-stroke; }
        .chart line.limit { stroke: var(--bad); stroke-dasharray: 6 4; stroke-width: 1; vector-effect: non-scaling-stroke; }
        .signin { max-width: 26rem; }
        .signin input { width: 100%; padding: .4rem; font: inherit; margin: .3rem 0 .8rem; }
        .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        """

    /// Keys on the review page (1 to 9 pick a label, s skips, u undoes), and the live refresh of
    /// the run pages. Buttons say which key they answer to (`data-key`); typing in a field is
    /// left alone.
    static let script = """
        "use strict";
        document.addEventListener("keydown", function (event) {
          if (event.ctrlKey || event.metaKey || event.altKey) { return; }
          var target = event.target;
          if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) { return; }
          var button = document.querySelector('button[data-key="' + event.key.toLowerCase() + '"]');
          if (button && !button.disabled) { event.preventDefault(); button.click(); }
        });
        document.addEventListener("submit", function (event) {
          // One answer per page: a second key press while the first is on its way does nothing.
          var form = event.target;
          if (form.dataset.sent) { event.preventDefault(); return; }
          form.dataset.sent = "1";
        });
        (function () {
          var live = document.querySelector("[data-live]");
          if (!live) { return; }
          var every = Number(live.getAttribute("data-live")) * 1000 || 5000;
          function refresh() {
            fetch(live.getAttribute("data-source"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
              .then(function (response) {
                if (!response.ok) { throw new Error(String(response.status)); }
                return response.text();
              })
              .then(function (html) { live.innerHTML = html; live.removeAttribute("aria-busy"); })
              .catch(function () {
                var note = document.getElementById("live-status");
                if (note) { note.textContent = "Could not refresh; retrying."; }
              })
              .then(function () { setTimeout(refresh, every); });
          }
          setTimeout(refresh, every);
        })();
        """
}
