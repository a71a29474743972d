#!/usr/bin/env bash
# Run `stilts taplint` (all stages) against gunicorn serving a demo archive.
# Prints the report; exits non-zero if taplint reports any error (taplint itself
# exits 0 even then, so the Totals line is parsed).
#
#   .ci/taplint.sh [DATA_DIR]      # default: a fresh demo archive in a temporary dir
#   STAGES='TMV TME CAP' .ci/taplint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v stilts >/dev/null || { echo "taplint needs STILTS: apt-get install stilts" >&2; exit 2; }

workdir=$(mktemp -d)
gunicorn_pid=""
cleanup() {
    if [ -n "$gunicorn_pid" ]; then kill "$gunicorn_pid" 2>/dev/null || true; wait "$gunicorn_pid" 2>/dev/null || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

data_dir=${1:-}
if [ -z "$data_dir" ]; then
    data_dir="$workdir/archive"
    python -c "import sys; from archive.cli import main; sys.exit(main(sys.argv[1:]))" \
        --data-dir "$data_dir" demo --rows 3000 >&2
fi

port=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
EXTRAS_ARCHIVE_DATA_DIR="$data_dir" python -m gunicorn --workers 2 --threads 4 \
    --bind "127.0.0.1:$port" --timeout 120 wsgi:app >"$workdir/gunicorn.log" 2>&1 &
gunicorn_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
    if python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "$base/tap/availability" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$gunicorn_pid" 2>/dev/null; then cat "$workdir/gunicorn.log" >&2; exit 2; fi
    sleep 0.5
done

stages=${STAGES:-}
args=("tapurl=$base/tap" "report=EW" "maxrepeat=5")
if [ -n "$stages" ]; then args+=("stages=$stages"); fi
stilts taplint "${args[@]}" | tee "$workdir/taplint.txt"

totals=$(grep '^Totals:' "$workdir/taplint.txt" || true)
if [ -z "$totals" ]; then echo "taplint printed no Totals line" >&2; exit 2; fi
errors=$(sed -E 's/^Totals: Errors: ([0-9]+);.*/\1/' <<<"$totals")
if [ "$errors" -ne 0 ]; then
    echo "taplint: $errors error(s)" >&2
    exit 1
fi
echo "taplint: no errors ($totals)"
