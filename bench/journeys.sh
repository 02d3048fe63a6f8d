#!/usr/bin/env bash
# Benchmark of the journey models' cost (figures, not a test).
#
#   bench/journeys.sh [MILLIONS_OF_EVENTS]    # default 10
#   RUNS=3 bench/journeys.sh 50               # the median of 3 runs of each step
#
# Runs `run` on the dataset without models, with `--models all` (markov included, on both
# dimensions) and with `--models all --spend` (the generator's daily spend), under the default
# memory cap and without one, and prints wall time, CPU time and peak RSS, and each with-models
# time as a ratio of the run without them (the journeys issue's target: at most 1.3).
source "$(dirname "$0")/common.sh"
runs=${RUNS:-1}
spend="$data/marketing_spend/marketing_spend.csv"
[[ -f $spend ]] || { echo "no $spend: regenerate the dataset (rm -rf $data)" >&2; exit 1; }
# median LABEL... -- COMMAND...: the measure line of the run with the median wall time.
median() {
  local lines=()
  for _ in $(seq "$runs"); do lines+=("$(measure "$@")"); done
  printf '%s\n' "${lines[@]}" | sort -t'|' -k4 -g | sed -n "$(( (runs + 1) / 2 ))p"
}
wall_of() { awk -F'|' '{ gsub(/ /, "", $4); print $4 }' <<< "$1"; }
echo "| memory | step | wall s | CPU s | peak RSS MiB | × without models |"
echo "|---|---|---|---|---|---|"
for cap in default none; do
  limit=()
  [[ $cap == none ]] && limit=(--memory-limit none)
  base=$(median "$cap" "run" -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" "${limit[@]}" --output "$out/r")
  echo "$base 1.00 |"
  for step in "models" "models+spend"; do
    extra=(--models all)
    [[ $step == models+spend ]] && extra+=(--spend "$spend")
    line=$(median "$cap" "run --$step" -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" "${limit[@]}" "${extra[@]}" --output "$out/r")
    echo "$line $(awk -v a="$(wall_of "$line")" -v b="$(wall_of "$base")" 'BEGIN { printf "%.2f", a / b }') |"
  done
done
