#!/usr/bin/env bash
# CI check that the README's main command works on a fresh machine:
#   1. clone the committed HEAD of this repository into a temporary folder;
#   2. run `bash scripts/demo.sh --no-serve` there: a fresh ./.venv made by the app install
#      alone (no test extras), sample photos, ingest, train, cluster, sample searches;
#   3. start `simimg-admin serve` from that clone on a free loopback port, check that the page
#      answers HTTP 200 on / and that one search through its API (from this checkout's test
#      venv: gradio_client) finds the demo's query original first. The server is always stopped.
#   scripts/check_main_command.sh [--rev REV]   check commit REV instead of HEAD
# SIMIMG_CHECK_KEEP=1 keeps the temporary folder. Exit 0 when all steps pass.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
REV=HEAD
if [[ "${1:-}" == "--rev" && -n "${2:-}" ]]; then
    REV="$2"
elif [[ $# -gt 0 ]]; then
    echo "usage: scripts/check_main_command.sh [--rev REV]" >&2
    exit 2
fi

T0=$SECONDS
step() { printf '[main-command %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { printf '[main-command %4ds] FAILED: %s\n' $((SECONDS - T0)) "$*" >&2; exit 1; }

CHECK_PY="$REPO/.venv/bin/python"  # the test venv: gradio_client and psutil
"$CHECK_PY" -c "import gradio_client, psutil" 2>/dev/null \
    || fail "$CHECK_PY lacks gradio_client/psutil: run bash scripts/install.sh --test first"
SHA="$(git -C "$REPO" rev-parse --verify "$REV^{commit}")" || fail "no commit $REV in $REPO"
if [[ "$REV" == HEAD ]] && [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]]
then
    step "note: uncommitted changes in $REPO are not part of this check"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/simimg-main-command.XXXXXX")"
CLONE="$WORK/simimg"
SERVER_PID=""
cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        step "server (pid $SERVER_PID) stopped"
    fi
    if [[ "${SIMIMG_CHECK_KEEP:-0}" == 1 ]]; then
        step "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The user's environment, without simimg/Qdrant settings or another venv leaking in.
clean_env=(env -u PYTHONPATH -u VIRTUAL_ENV)
while IFS= read -r name; do clean_env+=(-u "$name"); done \
    < <(compgen -e | grep -E '^(SIMIMG_|QDRANT_)' || true)

step "clone ${SHA:0:12} into $CLONE"
git clone -q --no-checkout "$REPO" "$CLONE"
git -C "$CLONE" checkout -q --detach "$SHA"

step "run the README's main command there: bash scripts/demo.sh --no-serve (fresh .venv)"
DEMO_START=$SECONDS
set +e
(cd "$CLONE" && exec "${clean_env[@]}" bash scripts/demo.sh --no-serve </dev/null 2>&1) \
    | while IFS= read -r line; do printf '  %4ds | %s\n' $((SECONDS - DEMO_START)) "$line"; done \
    | tee "$WORK/demo.log"
DEMO_STATUS=${PIPESTATUS[0]}
set -e
DEMO_SECONDS=$((SECONDS - DEMO_START))
INSTALL_SECONDS="$(grep -m1 'simimg installed in .venv' "$WORK/demo.log" | awk '{print $1}')"
[[ "$DEMO_STATUS" == 0 ]] \
    || fail "bash scripts/demo.sh --no-serve exited $DEMO_STATUS after ${DEMO_SECONDS}s: $(
        grep -v '^ *[0-9]*s | *$' "$WORK/demo.log" | tail -n1 | sed 's/^ *[0-9]*s | //')"
step "main command exited 0 in ${DEMO_SECONDS}s (app install ${INSTALL_SECONDS:-?})"
"$CLONE/.venv/bin/python" -c "import pytest" 2>/dev/null \
    && fail "the clone's venv has test tools: the app install must not bring them"

PORT="$("$CHECK_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT/"
SERVE_START=$SECONDS
step "start simimg-admin serve --host 127.0.0.1 --port $PORT (log: $WORK/serve.log)"
(cd "$CLONE" && exec "${clean_env[@]}" .venv/bin/simimg-admin serve --host 127.0.0.1 \
    --port "$PORT" </dev/null >"$WORK/serve.log" 2>&1) &
SERVER_PID=$!

step "check the page and one search through its API"
QUERY="$CLONE/samples/queries/edited-copy.jpg"
if ! "$CHECK_PY" "$REPO/scripts/check_served_page.py" "$URL" "$QUERY" \
        --expect-first imagenet_05_853.jpg --pid "$SERVER_PID" --timeout 300; then
    sed 's/^/  serve | /' "$WORK/serve.log" | tail -n 20 >&2
    fail "the served page at $URL did not pass (see the error line above)"
fi
step "serve check passed in $((SECONDS - SERVE_START))s"
step "OK: main command and served page work on a fresh clone (total $((SECONDS - T0))s)"
