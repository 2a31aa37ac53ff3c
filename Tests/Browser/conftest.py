"""The world the browser tests share: a throwaway PostgreSQL, a run judged by mock judges over
a corpus whose every field is hostile, reviewers of each role, and `jury serve` in front.

Everything is made by the jury binary itself (JURY_BINARY), as a user would; the database is
read with psql to check what the pages did."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JURY = os.environ.get("JURY_BINARY", str(ROOT / ".build/debug/jury"))
RUN = "browser"

# Each is a way to run script from text; none may, on any page. The flag they would set is
# what the tests look for.
HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    '<img src=x onerror="window.__pwned = \'onerror\'">',
    '"><svg onload="window.__pwned = \'svg\'">',
    "javascript:window.__pwned = 'url'",
    '<a href="javascript:window.__pwned = \'link\'">click me</a>',
    "</textarea></dd><iframe srcdoc=\"<script>parent.__pwned = 'iframe'</script>\"></iframe>",
    "\u202eexe.segmentation\u202c customers \u2067who\u2069 \u200f",
    "{{7*7}} ${7*7} <% 7*7 %>",
    "".join(chr(c) for c in range(1, 32)) + "\u007f\ufffe\U0001f600",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostile_corpus(path, count):
    requests = [
        "Customers who bought bike helmets",
        "Show me the loyal ones",
        "Refund order #1711",
        "Female customers who bought notebooks",
        "Customers in Paris this spring",
    ]
    with open(path, "w") as out:
        for n in range(count):
            row = {
                "id": f"ex-{n:04d}",
                "request": requests[n % len(requests)] + " " + HOSTILE[n % len(HOSTILE)],
                "store": HOSTILE[(n + 3) % len(HOSTILE)],
                "note": ("very long line " * 400) if n % 7 == 0 else HOSTILE[(n + 5) % len(HOSTILE)],
                "source_label": "valid",
            }
            out.write(json.dumps(row) + "\n")


def run_config(path, mock_port):
    text = (ROOT / "deploy/demo/run.yaml").read_text()
    text = text.replace("name: demo", f"name: {RUN}").replace("127.0.0.1:8089", f"127.0.0.1:{mock_port}")
    # A label's description is shown on the review page too.
    text = text.replace(
        "description: A segmentation request with several reasonable readings (which Paris, which spring, and or or).",
        "description: 'Several readings <img src=x onerror=\"window.__pwned = 1\"> (which Paris, which spring).'",
    )
    text = text.replace("rule: unanimous", "rule: unanimous\n  early_decision: false")
    path.write_text(text)


MOCK_JUDGES = """
judges:
  - { model: mock-alpha, seed: 11, accuracy: 0.7, latency_ms: { median: 2, p95: 5 },
      faults: { rationale: "<script>window.__pwned = 'rationale'</script> because \\u202eevil" } }
  - { model: mock-bravo, seed: 23, accuracy: 0.7, bias: { label: needs_more_context, weight: 0.6 },
      latency_ms: { median: 2, p95: 5 } }
  - { model: mock-charlie, seed: 37, accuracy: 0.7, bias: { label: ambiguous, weight: 0.5 },
      latency_ms: { median: 2, p95: 5 } }
  - { model: mock-delta, seed: 41, accuracy: 0.7, latency_ms: { median: 2, p95: 5 } }
"""


class Jury:
    """The database and the app, and what the tests ask of them."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.processes = []
        self.database = None
        self.url = None
        self.tokens = {}

    def jury(self, *args, check=True):
        result = subprocess.run(
            [JURY, *args, "--log-level", "warning"], env=self.env(), capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise AssertionError(f"jury {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def env(self):
        return {**os.environ, "DATABASE_URL": self.database}

    def sql(self, query):
        """The first column of each row of a query, as text."""
        result = subprocess.run(
            ["psql", self.database, "-v", "ON_ERROR_STOP=1", "-AtXc", query], capture_output=True, text=True, check=True
        )
        return [line for line in result.stdout.split("\n") if line != ""]

    def value(self, query):
        rows = self.sql(query)
        return rows[0] if rows else None

    def start(self, args, ready, log):
        handle = open(self.workdir / log, "w+")
        process = subprocess.Popen([JURY, *args], env=self.env(), stdout=handle, stderr=subprocess.STDOUT)
        self.processes.append(process)
        deadline = time.time() + 60
        while time.time() < deadline:
            handle.seek(0)
            match = re.search(ready, handle.read())
            if match:
                return match
            if process.poll() is not None:
                break
            time.sleep(0.1)
        handle.seek(0)
        raise AssertionError(f"jury {args[0]} did not start: {handle.read()}")

    def postgres(self, command):
        """Stops or starts the database under the app (same directory, same port)."""
        subprocess.run(
            [str(ROOT / "deploy/local/postgres.sh"), command, str(self.pgdata)], capture_output=True, check=True
        )

    def stop(self, process):
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        self.processes.remove(process)


@pytest.fixture(scope="session")
def jury():
    workdir = tempfile.mkdtemp(prefix="jury-browser-")
    # PostgreSQL runs as its own user (as root, postgres.sh runs it as postgres): it must reach its data.
    os.chmod(workdir, 0o755)
    world = Jury(workdir)
    pgdata = Path(workdir) / "postgres"
    world.pgdata = pgdata
    started = subprocess.run(
        [str(ROOT / "deploy/local/postgres.sh"), "start", str(pgdata)], capture_output=True, text=True, check=True
    )
    world.database = started.stdout.strip().split("\n")[-1]
    try:
        world.jury("migrate")
        mock_port = free_port()
        (Path(workdir) / "mock.yaml").write_text(MOCK_JUDGES)
        run_config(Path(workdir) / "run.yaml", mock_port)
        hostile_corpus(Path(workdir) / "corpus.jsonl", 240)
        world.jury("run", "create", "--config", str(Path(workdir) / "run.yaml"))
        world.jury("enqueue", "--run", RUN, str(Path(workdir) / "corpus.jsonl"))
        world.start(
            ["mock-judge", "--port", str(mock_port), "--config", str(Path(workdir) / "mock.yaml")],
            "listening",
            "mock.log",
        )
        worker = world.start(["worker", "--run", RUN, "--concurrency", "32"], "", "worker.log")
        reducer = world.start(["reducer", "--run", RUN], "", "reducer.log")
        deadline = time.time() + 240
        while world.value(f"SELECT state FROM jury_runs WHERE run = '{RUN}'") != "done":
            assert time.time() < deadline, "the run did not finish in 4 minutes"
            time.sleep(0.5)
        for process in list(world.processes[1:]):
            world.stop(process)
        for name, role in [("ada", "reviewer"), ("bob", "reviewer"), ("cy", "reviewer"), ("vic", "viewer"),
                           ("own", "owner")]:
            world.tokens[name] = world.jury("reviewer", "add", name, "--role", role).strip().split("\n")[-1]
        match = world.start(["serve", "--port", "0", "--lease-seconds", "600", "--client-address-header", "X-Forwarded-For"], r"serving on (http://\S+)/", "serve.log")
        world.url = match.group(1)
        yield world
    finally:
        for process in list(world.processes):
            world.stop(process)
        subprocess.run([str(ROOT / "deploy/local/postgres.sh"), "stop", str(pgdata)], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def sign_in(browser, jury, name):
    """A new browser context (its own cookies), signed in as `name`, watching for script."""
    context = browser.new_context()
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(jury.url + "/signin")
    page.fill("#token", jury.tokens[name])
    page.keyboard.press("Enter")
    page.wait_for_url(jury.url + "/")
    return context, page
