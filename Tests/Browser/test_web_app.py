"""`jury serve` in a real headless Chromium, driven as a person would: sign in, label by
keyboard, undo; two reviewers at once; a hostile corpus; forged and refused requests; and
axe-core on every page. What the pages did is checked in PostgreSQL."""

import os
import re
import time
from pathlib import Path

import pytest
from conftest import RUN, sign_in

REVIEW = f"/runs/{RUN}/review"


def shown_example(page):
    """The id of the example the review page holds, from its answer form."""
    return int(page.locator('form.labels input[name="example"]').get_attribute("value"))


def no_script_ran(page):
    assert page.evaluate("() => window.__pwned") is None, "a script from the corpus ran"


def test_a_reviewer_labels_twenty_examples_by_keyboard_and_undoes_one(browser, jury):
    context, page = sign_in(browser, jury, "ada")
    page.goto(jury.url + REVIEW)
    labels = page.locator("form.labels button").evaluate_all("buttons => buttons.map(b => b.value)")
    assert len(labels) == 5
    answered = []
    for n in range(20):
        example = shown_example(page)
        key = str(n % 5 + 1)
        page.keyboard.press(key)
        page.wait_for_function(
            "previous => { const f = document.querySelector('form.labels input[name=example]');"
            " return !f || f.value !== previous; }",
            arg=str(example),
        )
        answered.append((example, labels[int(key) - 1]))
        no_script_ran(page)
    assert len({example for example, _ in answered}) == 20

    # Each answer is the example's verdict now, decided by people, with who and when.
    for example, label in answered:
        row = jury.value(
            "SELECT v.label || ',' || v.decided_by || ',' || e.human_label || ',' || (e.reviewed_at IS NOT NULL) "
            f"FROM verdicts v JOIN examples e ON e.id = v.example_id WHERE v.example_id = {example}"
        )
        assert row == f"{label},people,{label},true"
    assert jury.value(
        "SELECT count(*) FROM review_answers a JOIN reviewers r ON r.id = a.reviewer_id WHERE r.name = 'ada'"
    ) == "20"

    # u undoes the last: that example is shown again, and its verdict is the panel's once more.
    last, _ = answered[-1]
    page.keyboard.press("u")
    page.wait_for_function(
        "wanted => document.querySelector('form.labels input[name=example]')?.value === wanted", arg=str(last)
    )
    assert jury.value(f"SELECT decided_by FROM verdicts WHERE example_id = {last}") == "panel"
    assert jury.value(f"SELECT reviewed_at IS NULL FROM examples WHERE id = {last}") == "t"
    assert jury.value("SELECT count(*) FROM review_answers WHERE undone_at IS NOT NULL") == "1"
    assert jury.value("SELECT count(*) FROM verdicts WHERE decided_by = 'people'") == "19"
    # The panel's verdicts the answers replaced are kept.
    assert int(jury.value("SELECT count(*) FROM verdict_history")) >= 20

    # s skips: the next example is another, and the skipped one keeps the panel's verdict.
    page.keyboard.press("s")
    page.wait_for_function(
        "previous => document.querySelector('form.labels input[name=example]')?.value !== previous", arg=str(last)
    )
    assert jury.value(f"SELECT decided_by FROM verdicts WHERE example_id = {last}") == "panel"
    context.close()


def test_two_reviewers_at_once_never_see_the_same_example(browser, jury):
    first, page_a = sign_in(browser, jury, "bob")
    second, page_b = sign_in(browser, jury, "cy")
    seen_a, seen_b = [], []
    for _ in range(8):
        page_a.goto(jury.url + REVIEW)
        page_b.goto(jury.url + REVIEW)
        a, b = shown_example(page_a), shown_example(page_b)
        assert a != b
        seen_a.append(a)
        seen_b.append(b)
        # Both answer at the same moment.
        with page_a.expect_navigation(), page_b.expect_navigation():
            page_a.keyboard.press("1")
            page_b.keyboard.press("2")
    assert not set(seen_a) & set(seen_b)
    for name, seen in [("bob", seen_a), ("cy", seen_b)]:
        rows = jury.sql(
            "SELECT a.example_id FROM review_answers a JOIN reviewers r ON r.id = a.reviewer_id "
            f"WHERE r.name = '{name}' ORDER BY a.id"
        )
        assert [int(row) for row in rows] == seen
    first.close()
    second.close()


def test_refused_requests_change_no_verdict(browser, jury):
    context, page = sign_in(browser, jury, "ada")
    page.goto(jury.url + REVIEW)
    example = shown_example(page)
    lease = page.locator('form.labels input[name="lease"]').get_attribute("value")
    csrf = page.locator('form.labels input[name="csrf"]').get_attribute("value")
    before = jury.value("SELECT count(*) || '/' || sum(hashtext(label || decided_by)) FROM verdicts")

    def post(form):
        return page.request.post(jury.url + REVIEW, form=form, max_redirects=0)

    good = {"csrf": csrf, "action": "answer", "example": str(example), "lease": lease, "label": "valid"}
    forged = post({**good, "csrf": "forged"})
    assert forged.status == 403 and "did not come from a page of this session" in forged.text()
    missing = post({k: v for k, v in good.items() if k != "csrf"})
    assert missing.status == 403
    outside = post({**good, "label": "<script>window.__pwned=1</script>"})
    assert outside.status == 409 and "is not a label of run" in outside.text()
    assert "<script>window.__pwned=1</script>" not in outside.text()
    stale = post({**good, "lease": "00000000-0000-0000-0000-000000000000"})
    assert stale.status == 409 and "no longer hold" in stale.text()
    assert jury.value("SELECT count(*) || '/' || sum(hashtext(label || decided_by)) FROM verdicts") == before

    # A double submit: the first answer counts, the second is refused.
    assert post(good).status == 303
    twice = post(good)
    assert twice.status == 409 and "nothing was changed" in twice.text()
    assert jury.value(f"SELECT count(*) FROM review_answers WHERE example_id = {example}") == "1"

    # A request without the session cookie (what a form on another site sends, the cookie being
    # SameSite=Strict) is sent to sign in, and changes nothing.
    stranger = page.context.browser.new_context()
    response = stranger.request.post(jury.url + REVIEW, form=good, max_redirects=0)
    assert response.status == 303 and response.headers["location"].startswith("/signin")
    stranger.close()

    # A viewer sees the dashboards, and not the queue.
    viewer, viewer_page = sign_in(browser, jury, "vic")
    response = viewer_page.goto(jury.url + REVIEW)
    assert response.status == 403 and "viewer" in viewer_page.content()
    assert viewer_page.goto(jury.url + f"/runs/{RUN}").status == 200
    viewer.close()
    context.close()


def test_sign_in_is_refused_without_the_right_token_and_rate_limited(browser, jury):
    context = browser.new_context()
    page = context.new_page()
    statuses = []
    for _ in range(11):
        page.goto(jury.url + "/signin")
        page.fill("#token", "jury_not-a-token")
        with page.expect_navigation() as navigation:
            page.keyboard.press("Enter")
        statuses.append(navigation.value.status)
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    assert "Too many failed sign-ins" in page.content()
    # Nobody gets in with the right token from that address now either, until the window passes.
    page.goto(jury.url + "/signin")
    page.fill("#token", jury.tokens["ada"])
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    assert navigation.value.status == 429
    # Another client behind the same proxy is not locked out with it: the proxy names each.
    form_page = page.request.get(jury.url + "/signin").text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form_page).group(1)
    other = page.request.post(
        jury.url + "/signin",
        form={"csrf": csrf, "token": jury.tokens["ada"], "next": "/"},
        headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.7"},
        max_redirects=0,
    )
    assert other.status == 303
    context.clear_cookies()
    jury.sql("DELETE FROM signin_failures")
    # Without a session every page sends the browser to sign in.
    assert page.goto(jury.url + f"/runs/{RUN}").url.startswith(jury.url + "/signin")
    context.close()


def test_a_judge_held_by_its_provider_shows_on_the_run_page(browser, jury):
    key = jury.value(f"SELECT config -> 'judges' -> 0 ->> 'limit_key' FROM runs WHERE name = '{RUN}'")
    judge = jury.value(f"SELECT config -> 'judges' -> 0 ->> 'name' FROM runs WHERE name = '{RUN}'")
    jury.sql(
        "INSERT INTO account_limits (limit_key, held_until) VALUES "
        f"('{key}', now() + interval '5 minutes') "
        "ON CONFLICT (limit_key) DO UPDATE SET held_until = excluded.held_until"
    )
    try:
        context, page = sign_in(browser, jury, "vic")
        page.goto(jury.url + f"/runs/{RUN}")
        row = page.locator("tr", has=page.locator("td", has_text=re.compile(f"^{judge}$"))).inner_text()
        assert "held after a 429" in row
        context.close()
    finally:
        jury.sql(f"UPDATE account_limits SET held_until = NULL WHERE limit_key = '{key}'")


def test_the_database_going_away_is_said_and_survived(browser, jury):
    context, page = sign_in(browser, jury, "cy")
    page.goto(jury.url + REVIEW)
    example = shown_example(page)
    answers = jury.value("SELECT count(*) FROM review_answers")
    jury.postgres("stop")
    try:
        # The answer given while the database is down is refused, and the page says why.
        with page.expect_navigation() as navigation:
            page.keyboard.press("2")
        assert navigation.value.status == 503
        assert "The database is not answering" in page.content()
        assert page.goto(jury.url + f"/runs/{RUN}").status == 503
        assert page.request.get(jury.url + "/readyz").status == 503
        assert page.request.get(jury.url + "/healthz").status == 200
    finally:
        jury.postgres("start")
    # Back: the pages answer again, and the example is still the reviewer's to answer, once.
    deadline = time.time() + 30
    while page.goto(jury.url + REVIEW).status != 200:
        assert time.time() < deadline, "the app did not recover"
        time.sleep(0.5)
    assert shown_example(page) == example
    assert jury.value("SELECT count(*) FROM review_answers") == answers
    with page.expect_navigation():
        page.keyboard.press("2")
    assert jury.value(f"SELECT count(*) FROM review_answers WHERE example_id = {example}") == "1"
    assert page.request.get(jury.url + "/readyz").status == 200
    metrics = page.request.get(jury.url + "/metrics").text()
    assert 'jury_web_requests_total{route="review_answer",code="503"}' in metrics
    assert "process_resident_memory_bytes" in metrics and "jury_review_answers_total" in metrics
    context.close()


def test_two_people_label_blind_and_an_owner_settles_their_conflict(browser, jury):
    # The run now asks two people per example (review.per_item, which `jury run update` changes).
    config = jury.workdir / "run.yaml"
    config.write_text(config.read_text() + "\nreview:\n  per_item: 2\n")
    assert "review.per_item: (none) -> 2" in jury.jury("run", "update", RUN, "--config", str(config))
    jury.sql("DELETE FROM review_leases")  # what each held from earlier tests goes back
    bob, page_b = sign_in(browser, jury, "bob")
    cy, page_c = sign_in(browser, jury, "cy")
    page_b.goto(jury.url + REVIEW)
    page_c.goto(jury.url + REVIEW)
    example = shown_example(page_b)
    assert shown_example(page_c) == example
    assert "The people" not in page_c.content()  # blind: neither sees the other's label
    with page_b.expect_navigation():
        page_b.keyboard.press("1")
    assert jury.value(f"SELECT decided_by FROM verdicts WHERE example_id = {example}") == "panel"
    with page_c.expect_navigation():
        page_c.keyboard.press("2")
    assert jury.value(f"SELECT decided_by FROM verdicts WHERE example_id = {example}") == "panel"

    # The owner sees both labels, by name, and settles it.
    owner, page_o = sign_in(browser, jury, "own")
    page_o.goto(jury.url + f"/runs/{RUN}/adjudicate")
    assert shown_example(page_o) == example
    people = page_o.locator("main").inner_text()
    assert "bob: valid" in people and "cy: needs_more_context" in people
    with page_o.expect_navigation():
        page_o.keyboard.press("3")
    assert jury.value(
        f"SELECT decided_by || ':' || label FROM verdicts WHERE example_id = {example}"
    ) == "people:missing_capability"
    # A reviewer may not settle conflicts.
    assert page_b.goto(jury.url + f"/runs/{RUN}/adjudicate").status == 403
    page_o.goto(jury.url + f"/runs/{RUN}")
    assert "Agreement between people: Cohen's kappa" in page_o.locator("main").inner_text()
    for context in (bob, cy, owner):
        context.close()


PAGES = ["/", f"/runs/{RUN}", REVIEW, f"/runs/{RUN}/adjudicate", f"/runs/{RUN}/calibration"]


def test_the_hostile_corpus_runs_no_script_on_any_page(browser, jury):
    context, page = sign_in(browser, jury, "own")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(jury.url + f"/runs/{RUN}/calibration")
    with page.expect_navigation():
        page.get_by_role("button", name="Run a new calibration").click()
    assert page.locator("table.heat").count() == 4
    for path in PAGES:
        response = page.goto(jury.url + path)
        assert response.status == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        no_script_ran(page)
        assert page.locator("iframe, img, svg[onload], a[href^='javascript:']").count() == 0, path
    # The review page shows the hostile text as text.
    page.goto(jury.url + REVIEW)
    text = page.locator("main").inner_text()
    assert "<script>window.__pwned" in text or "onerror=" in text
    # The runs and run pages refresh themselves: the fragment is fetched and put in place, and
    # still runs nothing.
    for path, fragment in [("/", "/live"), (f"/runs/{RUN}", f"/runs/{RUN}/live")]:
        page.goto(jury.url + path)
        with page.expect_response(lambda r: r.url == jury.url + fragment, timeout=15000) as refreshed:
            pass
        assert refreshed.value.status == 200
        page.wait_for_timeout(200)
        assert page.locator("[data-live] table").count() >= 1
        no_script_ran(page)
    assert errors == []
    context.close()


def test_every_page_passes_axe_core(browser, jury):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    context, page = sign_in(browser, jury, "own")
    shots = os.environ.get("JURY_SCREENSHOTS")
    found = {}
    for path in ["/signin", *PAGES]:
        if path == "/signin":
            signed_out = browser.new_context()
            target = signed_out.new_page()
        else:
            target = page
        target.set_viewport_size({"width": 1280, "height": 900})
        target.goto(jury.url + path)
        results = axe.run(target)
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        found[path] = serious
        if shots:
            name = {"/": "runs", "/signin": "signin"}.get(path) or path.rstrip("/").split("/")[-1]
            name = "run" if name == RUN else name
            target.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)
        if path == "/signin":
            signed_out.close()
    assert all(not violations for violations in found.values()), found
    context.close()
