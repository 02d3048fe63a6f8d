#!/usr/bin/env bash
# Benchmark of the attribution engines and mart APIs (figures, not a test).
#
#   bench/engines.sh [MILLIONS_OF_EVENTS]      # default 10
#
# Runs the whole pipeline (`run`: projection + both marts + Parquet writes) once per engine ×
# API, then under memory caps, and prints wall time, CPU time and peak RSS (a failed run says why).
source "$(dirname "$0")/common.sh"
echo "| engine | api | memory cap | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for engine in sql udaf; do
  for api in sql dataframe; do
    measure "$engine" "$api" none -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" \
      --output "$out/run" --engine "$engine" --api "$api"
  done
done
for capped in sql:512M udaf:512M; do
  measure "${capped%:*}" sql "${capped#*:}" -- "$bin" -q run --clickstream "$clicks" --purchases "$purchases" \
    --output "$out/run" --engine "${capped%:*}" --memory-limit "${capped#*:}"
done
