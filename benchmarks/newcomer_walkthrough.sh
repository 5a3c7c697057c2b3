#!/bin/bash
# The README's install and "first five minutes", timed from a fresh clone of this repository:
#   benchmarks/newcomer_walkthrough.sh [REPO] [WORK]     (defaults: this repository, /tmp/zsmie_newcomer)
# Clones REPO into WORK, runs `make demo` (it installs .venv first), writes the README's
# posts.jsonl, runs `data check` and `predict` as written, starts `zsmie serve` and waits until
# the page answers; prints the seconds since the start after each step. Reading time is not in it.
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
WORK=${2:-/tmp/zsmie_newcomer}
rm -rf "$WORK" && T0=$(date +%s)
step() { echo "$1: $(( $(date +%s) - T0 )) s"; }
git clone -q "$REPO" "$WORK" && cd "$WORK" && step clone
make demo > demo.log 2>&1 && step "make demo (install + train)"
cat > posts.jsonl <<'EOP'
{"id": "post-1", "text": "Violinist Clara Weiss was born in Vienna in 1990", "head": "Clara Weiss", "tail": "Vienna"}
{"id": "post-2", "text": "Northwind Air is now owned by Global Aviation Group", "head": "Northwind Air", "tail": "Global Aviation Group"}
EOP
.venv/bin/zsmie data check posts.jsonl
.venv/bin/zsmie predict --run runs/demo --input posts.jsonl \
    --labels "place_of_birth,subsidiary,spouse,employer" --top-k 2
step predict
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/zsmie serve --run runs/demo --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2> /dev/null' EXIT
until curl -sf "http://127.0.0.1:$PORT/health" > /dev/null; do sleep 1; done
curl -sf "http://127.0.0.1:$PORT/" | grep -q "<html" && step "page answers"
