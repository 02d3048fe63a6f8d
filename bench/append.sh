#!/usr/bin/env bash
# Benchmark of a warehouse that grows by conversions (figures, not a test).
#
#   bench/append.sh [MILLIONS_OF_EVENTS]    # default 10
#
# Generates once (cached under bench/data/append-MILLIONSM/) about MILLIONS million events
# over 101 days, each export file split into all/ (the 101 days), base/ (the first 100 days
# but every 50th row), spread/ (those rows: 2 % of the rows, spread over the 100 days) and
# day/ (the 101st day). Then times: a full convert of all/ into a new warehouse; base/ into
# another, spread/ added to it and day/ added to that (each updating the stored projection
# incrementally); day/ added to a copy with --recompute (the projection from everything); and
# `period` (whole, September 2020, one day) from the stored projection. Prints each step's
# wall time, CPU time and peak RSS, and the appends' share of the full convert. With
# OLD_BIN=PATH (a binary of an earlier version), all/ is converted by it too and the same
# periods are timed on its warehouse, for comparison. RUNS=N runs each step N times (median).
OWN_DATASET=1
source "$(dirname "$0")/common.sh"
data="bench/data/append-${millions}M"
if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data"
  # 135 days generated so that users start evenly over the first 101 (a user's activity
  # lasts days); what falls after the 101st day is left out.
  "$bin" generate --users "$((millions * 72000))" --days 135 --files 8 --seed 3 --no-truth \
    --output "$data/generated"
  python3 - "$data" <<'PY'
import gzip, os, re, sys
root = sys.argv[1]
last = "2020-12-03"  # the 101st day from 2020-08-25
date = re.compile(rb"\d{4}-\d{2}-\d{2}")
for table in ["mobile_app_clickstream", "user_purchases"]:
    src = os.path.join(root, "generated", table)
    for name in sorted(os.listdir(src)):
        outs = {}
        for part in ["all", "base", "spread", "day"]:
            os.makedirs(os.path.join(root, part, table), exist_ok=True)
            outs[part] = gzip.open(os.path.join(root, part, table, name), "wb", compresslevel=1)
        with gzip.open(os.path.join(src, name), "rb") as f:
            header = f.readline()
            for out in outs.values():
                out.write(header)
            for n, line in enumerate(f):
                m = date.search(line)
                d = m.group(0).decode() if m else last
                if d > last:
                    continue
                outs["all"].write(line)
                if d == last:
                    outs["day"].write(line)
                elif n % 50 == 49:
                    outs["spread"].write(line)
                else:
                    outs["base"].write(line)
        for out in outs.values():
            out.close()
PY
  rm -rf "$data/generated"
  touch "$data/.complete"
fi
for part in all base spread day; do
  n=$(zcat "$data/$part/mobile_app_clickstream"/*.gz | wc -l)
  echo "$part: $((n - 8)) clickstream rows"
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; profile $profile"
echo
# The arguments converting PART into WAREHOUSE (measure runs a command, not a function).
exports() {
  echo --clickstream "$data/$1/mobile_app_clickstream" --purchases "$data/$1/user_purchases" \
    --warehouse "$2"
}
# This machine's speed drifts between runs minutes apart: each step runs RUNS times (default
# 3), each run on fresh warehouses, and the table shows the run of median wall time.
runs=${RUNS:-3}
# step ID LABEL -- COMMAND...: measures COMMAND, keeping its line for the median.
step() {
  local id=$1 label=$2
  shift 3
  measure "$label" -- "$@" >> "$out/$id.lines"
}
# The line of median wall time of step ID.
median() { sort -t'|' -k3,3n "$out/$1.lines" | sed -n "$(( ($(wc -l < "$out/$1.lines") + 1) / 2 ))p"; }
wall() { awk -F'|' '{ gsub(/ /, "", $3); print $3 }' <<< "$1"; }
ranges=("--from 2020-01-01 --to 2021-12-31" "--from 2020-09-01 --to 2020-09-30" "--day 2020-11-11")
for run in $(seq "$runs"); do
  w="$out/run-$run"
  step full "full convert, 101 days" -- "$bin" -q convert $(exports all "$w/full")
  step base "convert base (98 % of 100 days)" -- "$bin" -q convert $(exports base "$w/grown")
  step spread "append 2 % spread over the 100 days" -- "$bin" -q convert $(exports spread "$w/grown")
  cp -r "$w/grown" "$w/recompute"
  step day "append one more day" -- "$bin" -q convert $(exports day "$w/grown")
  step recompute "append one more day, --recompute" -- \
    "$bin" -q convert $(exports day "$w/recompute") --recompute
  for i in 0 1 2; do
    read -r -a args <<< "${ranges[$i]}"
    step "period$i" "stored projection, ${ranges[$i]}" -- \
      "$bin" -q period --warehouse "$w/grown" "${args[@]}" --output "$w/p"
  done
  if [[ -n ${OLD_BIN:-} ]]; then
    step old "$OLD_BIN: full convert, 101 days" -- "$OLD_BIN" -q convert $(exports all "$w/old")
    for i in 0 1 2; do
      read -r -a args <<< "${ranges[$i]}"
      step "oldperiod$i" "$OLD_BIN: stored projection, ${ranges[$i]}" -- \
        "$OLD_BIN" -q period --warehouse "$w/old" "${args[@]}" --output "$w/p"
    done
  fi
  rm -rf "$w"
done
full_s=$(wall "$(median full)")
echo "Medians of $runs runs."
echo
echo "| step | wall s | CPU s | peak RSS MiB | × full convert |"
echo "|---|---|---|---|---|"
for id in full base spread day recompute; do
  line=$(median "$id")
  echo "$line $(awk -v a="$(wall "$line")" -v b="$full_s" 'BEGIN { printf "%.3f", a / b }') |"
done
echo
echo "| period | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|"
for id in period0 period1 period2 old oldperiod0 oldperiod1 oldperiod2; do
  [[ -f "$out/$id.lines" ]] && median "$id"
done
