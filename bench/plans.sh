#!/usr/bin/env bash
# Regenerates docs/plans/: the plans (with EXPLAIN ANALYZE metrics) of the attribution's
# session step for September 2020 and for 2020-11-11, on raw CSV and on the Parquet warehouse,
# for a generated dataset (seed 7, 20,000 users over 130 days).
#
#   bench/plans.sh [BINARY]      # default: target/release/marketing-analytics (built if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/marketing-analytics}
[[ -x "$bin" ]] || cargo build --release --quiet
data=bench/data/plans
if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data"
  "$bin" generate --users 20000 --days 130 --seed 7 --no-truth --output "$data"
  "$bin" -q convert --clickstream "$data/mobile_app_clickstream" --purchases "$data/user_purchases" \
    --warehouse "$data/warehouse"
  touch "$data/.complete"
fi
raw=(--clickstream "$data/mobile_app_clickstream" --purchases "$data/user_purchases")
wh=(--warehouse "$data/warehouse")
for period in "september-2020:--from 2020-09-01 --to 2020-09-30" "2020-11-11:--day 2020-11-11"; do
  name=${period%%:*}
  read -r -a range <<< "${period#*:}"
  "$bin" -q explain attribution "${raw[@]}" "${range[@]}" --analyze --threads 2 --markdown "docs/plans/csv-$name.md"
  "$bin" -q explain attribution "${wh[@]}" "${range[@]}" --analyze --threads 2 --markdown "docs/plans/warehouse-$name.md"
done
# Paths in the plans are relative to this machine: keep them relative to the repository.
sed -i "s|${PWD#/}/||g" docs/plans/*.md
ls -l docs/plans
