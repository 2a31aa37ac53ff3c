#!/usr/bin/env bash
# Runs Jury's tests: builds, checks deploy/ (scripts/check-deploy), a short chaos run, then
# `swift test` against a real PostgreSQL (the first two are skipped when arguments are given to
# swift test, as in `test.sh --filter X`).
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
# A short chaos run: processes killed, PostgreSQL restarted, faulty judges; then SQL checks.
JURY_BINARY="$(swift build --show-bin-path)/jury" scripts/chaos --short
# The suite that bounds how long a stop takes runs alone, then everything else in parallel.
swift test --filter Cancellation
swift test --skip Cancellation
