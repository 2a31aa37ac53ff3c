#!/usr/bin/env bash
# The demo: 1,200 merchant requests labelled by four mock judges, end to end, no API keys:
# two cheap judges first, the two dear ones only where those agree; then calibration against
# the 300 examples people labelled, and the exports (JSONL, fine-tuning chat, review).
# Uses DATABASE_URL when set; otherwise starts a throwaway PostgreSQL under .demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/local/setup.sh

echo "== building"
# A debug build: it is shared with the tests and plenty fast for 1,200 examples.
swift build 2>&1 | tail -1
jury=$(swift build --show-bin-path)/jury

if [[ -z "${DATABASE_URL:-}" ]]; then
    echo "== starting a throwaway PostgreSQL in .demo/postgres"
    DATABASE_URL=$(deploy/local/postgres.sh start "$PWD/.demo/postgres")
    started_postgres=1
fi
export DATABASE_URL
mkdir -p .demo/logs demo-output

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== migrating, creating the run, enqueueing the corpus"
"$jury" migrate --log-level warning
"$jury" run create --config deploy/demo/run.yaml --log-level warning
"$jury" enqueue --run demo deploy/demo/corpus.jsonl --log-level warning

echo "== starting the mock judges, 3 workers and a reducer"
if (exec 3<>/dev/tcp/127.0.0.1/8089) 2>/dev/null; then
    echo "port 8089 is taken; the demo's judges (deploy/demo/run.yaml) expect the mock there" >&2
    exit 1
fi
"$jury" mock-judge --port 8089 --config deploy/demo/mock-judges.yaml >.demo/logs/mock-judge.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening .demo/logs/mock-judge.log && break; sleep 0.1; done
for n in 1 2 3; do
    "$jury" worker --run demo --concurrency 48 >".demo/logs/worker-$n.log" 2>&1 &
    pids+=($!)
done
"$jury" reducer --run demo >.demo/logs/reducer.log 2>&1 &
pids+=($!)

echo "== progress"
while true; do
    line=$("$jury" status --run demo | head -1)
    echo "  $line"
    # The reducer marks the run done once its last example is decided.
    [[ $(psql "$DATABASE_URL" -Atc "SELECT state FROM jury_runs WHERE run = 'demo'") == done ]] && break
    sleep 2
done
cleanup
pids=()

echo
"$jury" status --run demo
echo
"$jury" run list
echo
echo "== calibration: the panel against the 300 examples people labelled"
"$jury" calibrate --run demo --log-level warning
echo
psql "$DATABASE_URL" -P footer=off -c "SELECT * FROM jury_early_decisions WHERE run = 'demo'"

"$jury" export --run demo --status agreed demo-output/curated.jsonl --log-level warning
"$jury" export --run demo --format chat demo-output/training-chat.jsonl --log-level warning
"$jury" export --run demo --review demo-output/for-review.jsonl --log-level warning
echo
echo "training data: demo-output/curated.jsonl (JSONL with every vote), demo-output/training-chat.jsonl"
echo "  (OpenAI fine-tuning chat: refusals and clarifying questions); each with a .manifest.json"
echo "for people: demo-output/for-review.jsonl; fill in human_label, then"
echo "  jury import-labels --run demo demo-output/for-review.jsonl"
echo "logs: .demo/logs/; the database: DATABASE_URL=$DATABASE_URL (try: psql \"\$DATABASE_URL\" -c 'SELECT * FROM jury_judge_health')"
if [[ -n "${started_postgres:-}" ]]; then
    echo "stop the demo database with: deploy/local/postgres.sh stop $PWD/.demo/postgres"
fi
