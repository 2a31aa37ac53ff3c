#!/usr/bin/env bash
# Installs what building and running Jury needs on Debian, when it is missing:
# PostgreSQL (server and pgbench), libpq's headers, pkg-config; for the tests also PgBouncer,
# Prometheus's promtool, Python's venv and Chromium (JURY_SETUP_FOR_TESTS=1). Sourced by demo.sh and test.sh.
missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists libpq 2>/dev/null || missing+=(libpq-dev)
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then missing+=(postgresql postgresql-contrib); fi
if [[ ${JURY_SETUP_FOR_TESTS:-} ]] && ! [[ -x /usr/sbin/pgbouncer ]] && ! command -v pgbouncer >/dev/null; then
    missing+=(pgbouncer)
fi
if [[ ${JURY_SETUP_FOR_TESTS:-} ]] && ! command -v promtool >/dev/null; then missing+=(prometheus); fi
# The conformance tests run the providers' SDKs in a virtualenv.
if [[ ${JURY_SETUP_FOR_TESTS:-} ]] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3 python3-venv)
fi
# The web app's tests drive Debian's Chromium.
if [[ ${JURY_SETUP_FOR_TESTS:-} ]] && ! command -v chromium >/dev/null; then missing+=(chromium); fi
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    sudo_cmd=()
    [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || [[ -x /opt/swift/usr/bin/swift ]] || { echo "Swift 6 is needed: https://swift.org/install" >&2; exit 1; }
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH

# A Python virtualenv at $1 with the packages that requirements file $2 lists, made anew when
# the file changes (the tests' SDKs, Playwright).
python_venv() {
    local venv=$1 requirements=$2
    if ! cmp -s "$requirements" "$venv/requirements.txt"; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$venv/requirements.txt"
    fi
}
