#!/usr/bin/env bash
# Benchmark of raw CSV vs the Parquet warehouse (figures, not a test).
#
#   bench/warehouse.sh [MILLIONS_OF_EVENTS]    # default 10
#
# Converts the dataset into a warehouse (timed; it stores the projection too), then computes
# both marts for the whole dataset, for September 2020 and for 2020-11-11, from raw CSV, from the
# warehouse's stored projection and from its partitions (`--recompute`), and prints wall time,
# CPU time, bytes read and peak RSS. Bytes read: the compressed CSV files (all of them, whatever
# the period), the stored projection's partitions of the period, or the clickstream and
# purchases partitions the period needs (look-back included).
source "$(dirname "$0")/common.sh"
wh="$data/warehouse"
rm -rf "$wh"
echo "| step | input | wall s | CPU s | peak RSS MiB | bytes read |"
echo "|---|---|---|---|---|---|"
csv_bytes=$(du -cb "$clicks" "$purchases" | tail -1 | cut -f1)
line=$(measure convert "csv → parquet" -- "$bin" -q convert --clickstream "$clicks" --purchases "$purchases" --warehouse "$wh")
echo "$line $(numfmt --to=iec "$csv_bytes") |"
# Bytes of the partitions of TABLE whose date is within FROM..TO.
partition_bytes() {
  find "$wh/$1" -name '*.parquet' -printf '%h %s\n' | awk -v f="$2" -v t="$3" \
    '{ d = substr($1, index($1, "date=") + 5, 10); if (d >= f && d <= t) s += $2 } END { print s + 0 }'
}
for q in "whole:--from 2020-01-01 --to 2021-12-31:2019-12-31:2020-01-01:2021-12-31" \
         "september 2020:--from 2020-09-01 --to 2020-09-30:2020-08-31:2020-09-01:2020-09-30" \
         "2020-11-11:--day 2020-11-11:2020-11-10:2020-11-11:2020-11-11"; do
  IFS=: read -r name range lookfrom from to <<< "$q"
  read -r -a args <<< "$range"
  line=$(measure "$name" csv -- "$bin" -q period --clickstream "$clicks" --purchases "$purchases" "${args[@]}" --output "$out/p")
  echo "$line $(numfmt --to=iec "$csv_bytes") |"
  bytes=$(partition_bytes projection "$from" "$to")
  line=$(measure "$name" "warehouse, stored projection" -- "$bin" -q period --warehouse "$wh" "${args[@]}" --output "$out/p")
  echo "$line $(numfmt --to=iec "$bytes") |"
  bytes=$(( $(partition_bytes clickstream "$lookfrom" "$to") + $(partition_bytes purchases "$from" "$to") ))
  line=$(measure "$name" "warehouse, --recompute" -- "$bin" -q period --warehouse "$wh" "${args[@]}" --recompute --output "$out/p")
  echo "$line $(numfmt --to=iec "$bytes") |"
done
