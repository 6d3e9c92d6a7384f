#!/usr/bin/env bash
# Run a command with its memory capped by a cgroup, the way a container limit caps it:
#   sudo scripts/run_capped.sh 4G python -m benchmarks.duplicates --scale 1000000
# Page cache (memory-mapped vector files) counts towards the cap and is reclaimed under it;
# anonymous memory is not, so a run that needs more than the cap is OOM-killed. A finished
# run therefore proves the job fits in that much memory. Needs root and a cgroup memory
# controller (v2 at /sys/fs/cgroup, or v1 at /sys/fs/cgroup/memory).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LIMIT(e.g. 4G) COMMAND..." >&2; exit 2; }
limit=$1; shift
bytes=$(numfmt --from=iec "$limit")
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  group=/sys/fs/cgroup/simimg-cap-$$
  mkdir "$group"; echo "$bytes" > "$group/memory.max"; echo 0 > "$group/memory.swap.max" || true
  peak_file=$group/memory.peak; events=$group/memory.events
elif [ -d /sys/fs/cgroup/memory ]; then
  group=/sys/fs/cgroup/memory/simimg-cap-$$
  mkdir "$group"; echo "$bytes" > "$group/memory.limit_in_bytes"
  peak_file=$group/memory.max_usage_in_bytes; events=$group/memory.failcnt
else
  echo "run_capped: no cgroup memory controller here" >&2; exit 2
fi
trap 'rmdir "$group" 2>/dev/null || true' EXIT
started=$(date +%s)
status=0
bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$group" "$@" || status=$?
echo "run_capped: limit $limit, exit $status after $(( $(date +%s) - started )) s," \
     "peak charged $(numfmt --to=iec "$(cat "$peak_file")") (page cache included)," \
     "limit events: $(tr '\n' ' ' < "$events")" >&2
exit "$status"
