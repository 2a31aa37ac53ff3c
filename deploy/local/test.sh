#!/usr/bin/env bash
# Runs Jury's tests: builds, checks deploy/ (scripts/check-deploy), checks the providers'
# requests and answers against their official SDKs (Tests/Conformance), the web app in a real
# browser (Tests/Browser), a short chaos run, then
# `swift test` against a real PostgreSQL (all but the last are skipped when arguments are given
# to swift test, as in `test.sh --filter X`).
# Set JURY_TEST_DATABASE_URL to use a server of yours (the role needs CREATEDB); otherwise
# the tests start a throwaway server in a temporary directory and remove it when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
JURY_SETUP_FOR_TESTS=1 source deploy/local/setup.sh
# One build for all: the process tests and the chaos run use its jury binary, swift test the rest.
swift build --build-tests
# With arguments (test.sh --filter X), only swift test with them.
if [[ $# -gt 0 ]]; then
    swift test "$@"
    exit
fi
# What deploy/ ships: Dockerfile, Kubernetes manifests, compose, systemd units, Prometheus rules.
scripts/check-deploy
# Jury's requests and its reading of answers, against the providers' official SDKs (from PyPI,
# in a virtualenv kept under .build/ until requirements.txt changes).
venv=.build/conformance-venv
python_venv "$venv" Tests/Conformance/requirements.txt
JURY_BINARY="$(swift build --show-bin-path)/jury" PYTHONDONTWRITEBYTECODE=1 \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Conformance
# The web app (jury serve) in a real headless Chromium, through Playwright, with axe-core.
venv=.build/browser-venv
python_venv "$venv" Tests/Browser/requirements.txt
JURY_BINARY="$(swift build --show-bin-path)/jury" PYTHONDONTWRITEBYTECODE=1 \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Browser
# A short chaos run: processes killed, PostgreSQL restarted, faulty judges; then SQL checks.
JURY_BINARY="$(swift build --show-bin-path)/jury" scripts/chaos --short
# The tests of how processes stop bound how long a stop takes: beside the whole suite on two
# cores they can miss those bounds. So the suite that bounds cancellation runs alone, then the
# other stop tests (stop signals, drains, an interrupted bench) together, then everything else
# in parallel.
stopping='StopSignal|aStopCancelsCalls|anInterrupted'
swift test --filter Cancellation
swift test --filter "$stopping"
swift test --skip "Cancellation|$stopping"
