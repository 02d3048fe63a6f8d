#!/usr/bin/env bash
# Benchmark of cluster mode against a local run on the same machine (figures, not a test).
#
#   bench/cluster.sh [MILLIONS_OF_EVENTS]      # default 10
#
# Starts a scheduler and two executors (one task each: the machine has 2 cores) from the release
# binary on 127.0.0.1, runs the whole pipeline (`run`) locally and on the cluster with both
# engines, and prints wall time, the client's CPU time and peak RSS, and the executors' peak RSS.
source "$(dirname "$0")/common.sh"
port=$((20000 + RANDOM % 20000))
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out"; }
trap stop EXIT
"$bin" -q cluster scheduler --bind "127.0.0.1:$port" > "$out/scheduler.log" 2>&1 &
pids+=($!)
sleep 1
for i in 1 2; do
  "$bin" -q cluster executor --scheduler "127.0.0.1:$port" --bind "127.0.0.1:$((port + i))" \
    --concurrent-tasks 1 --work-dir "$out/executor-$i" > "$out/executor-$i.log" 2>&1 &
  pids+=($!)
done
sleep 3
executors=("${pids[@]:1}")

# Peak RSS (VmHWM) of the executors so far, MiB.
executors_rss() {
  for p in "${executors[@]}"; do awk '/VmHWM/ { printf "%d ", $2 / 1024 }' "/proc/$p/status"; done
}

echo "| where | engine | wall s | client CPU s | client peak RSS MiB | executors' peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for engine in sql udaf; do
  row=$(measure local "$engine" -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" \
    --output "$out/run" --engine "$engine")
  echo "$row |"
done
for engine in sql udaf; do
  row=$(measure "2 executors" "$engine" -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" \
    --output "$out/run" --engine "$engine" --cluster "df://127.0.0.1:$port")
  echo "$row $(executors_rss)|"
done
