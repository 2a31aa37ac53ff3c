#!/usr/bin/env bash
# Runs Jury's tests: builds, then `swift test` against a real PostgreSQL.
# Set JURY_TEST_DATABASE_URL to use a server of yours (the role needs CREATEDB); otherwise
# the tests start a throwaway server in a temporary directory and remove it when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/local/setup.sh
# The process tests run the jury binary itself.
swift build
swift test "$@"
