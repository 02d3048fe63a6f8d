#!/usr/bin/env bash
# Benchmark of the attribution engines and mart APIs (not a test: it prints figures).
#
#   bench/engines.sh [MILLIONS_OF_EVENTS]      # default 10
#
# Builds the release binary, generates (once, cached under bench/data/) a messy dataset of about
# that many million clickstream rows with the project's generator, then runs the whole pipeline
# (`run`: projection + both marts + Parquet writes) once per engine × API and prints wall time,
# CPU time and peak RSS as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
millions=${1:-10}
users=$((millions * 68000))
data="bench/data/events-${millions}M"
cargo build --release --quiet
bin=target/release/marketing-analytics
if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data"
  "$bin" generate --users "$users" --files 8 --seed 1 --no-truth --out "$data"
  touch "$data/.complete"
fi
rows=$(zcat "$data"/mobile_app_clickstream/*.gz | wc -l)
size=$(du -sh "$data/mobile_app_clickstream" | cut -f1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "dataset: $data, $((rows - 8)) clickstream rows, $size gzip; machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
echo
echo "| engine | api | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for engine in sql udaf; do
  for api in sql dataframe; do
    /usr/bin/time -f "%e %U %S %M" -o "$out/time" \
      "$bin" -q run --clickstream "$data/mobile_app_clickstream" --purchases "$data/user_purchases" \
      --output "$out/run" --engine "$engine" --api "$api" > /dev/null
    read -r wall user sys rss < "$out/time"
    awk -v e="$engine" -v a="$api" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
      'BEGIN { printf "| %s | %s | %s | %.1f | %d |\n", e, a, w, u + s, r / 1024 }'
  done
done
