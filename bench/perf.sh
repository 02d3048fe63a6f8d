#!/usr/bin/env bash
# Whole-pipeline benchmark against the peers (figures, not a test).
#
#   bench/perf.sh [MILLIONS ...]        # default: 5 50
#   STEPS="floor duckdb udaf-capped" CAP=1536M bench/perf.sh 50
#   RUNS=3 bench/perf.sh 5 10           # the median of 3 runs of every step
#
# For each size: generates (once, cached under bench/data/) a messy dataset of about MILLIONS
# million clickstream rows with our generator; measures the decompression floor (two zcat in
# parallel, one per half of the files), `run` with both engines, and the DuckDB and Polars peers
# of ../shared/bench/peers/ (in a venv this script makes, bench/.venv) on the same files; prints
# wall time, CPU time and peak RSS with the ratios of the performance issue, and writes the
# table to docs/performance.md (between the BEGIN/END markers). Steps: floor, duckdb, polars,
# sql, udaf, and sql-capped / udaf-capped (`--memory-limit $CAP`, default 1536M); STEPS picks
# them (floor and duckdb are needed for the ratios); default all but the capped ones. RUNS (default
# 1) runs every step that many times and keeps the run with the median wall time: the machine
# is noisy. Rows of sizes not measured this time are kept from the table already in the doc.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(5 50)
peers=../shared/bench/peers
cargo build --release --quiet
bin=$PWD/target/release/marketing-analytics
source bench/dataset.sh
if [[ ! -x bench/.venv/bin/python ]]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet duckdb polars
fi
py=bench/.venv/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The DuckDB peer stops at the short rows real exports have (and our generator writes) unless
# its CSV reader pads them with nulls: run a copy with null_padding on, the peer unchanged.
sed "s/csv_opts = \"header = true,/csv_opts = \"null_padding = true, header = true,/" \
  "$peers/duckdb_pipeline.py" > "$out/duckdb_pipeline.py"
grep -q "null_padding = true" "$out/duckdb_pipeline.py"

runs=${RUNS:-1}

# measure NAME -- COMMAND...: sets wall, cpu, rss (MiB) of COMMAND and its children: those of
# the run with the median wall time of RUNS runs.
measure() {
  local name=$1 results=()
  for _ in $(seq "$runs"); do
    measure_once "$@"
    results+=("$wall $cpu $rss")
  done
  read -r wall cpu rss < <(printf '%s\n' "${results[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
}

# measure_once NAME -- COMMAND...: sets wall, cpu, rss (MiB) of one run.
measure_once() {
  local name=$1; shift; shift
  if ! /usr/bin/time -f "%e %U %S %M" -o "$out/time" "$@" > "$out/$name.out" 2> "$out/$name.err"; then
    echo "$name failed: $(tail -3 "$out/$name.err")" >&2
    wall=NaN cpu=NaN rss=NaN
    return 0
  fi
  read -r wall user sys rss_kb < <(tail -1 "$out/time")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
  rss=$((rss_kb / 1024))
}

table="$out/table.md"
{
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d); $([[ $runs == 1 ]] && echo "one run each" || echo "median of $runs runs")."
  echo
  echo "| events | step | wall s | CPU s | peak RSS MiB | wall / DuckDB | wall / floor |"
  echo "|---|---|---|---|---|---|---|"
} > "$table"

for m in "${sizes[@]}"; do
  dataset "$m"
  rows=$(zcat "$clicks"/*.gz | wc -l)
  echo "dataset $data: $((rows - 8)) clickstream rows, $(du -sh "$clicks" | cut -f1) gzip" >&2
  files=("$clicks"/*.gz "$purchases"/*.gz)
  half=$(( ${#files[@]} / 2 ))
  measure floor -- bash -c "zcat ${files[*]:0:$half} > /dev/null & zcat ${files[*]:$half} > /dev/null; wait"
  declare -A walls=()
  rows_out=()
  for step in ${STEPS:-floor duckdb polars sql udaf}; do
    case $step in
      floor) : ;;
      duckdb) measure duckdb -- "$py" "$out/duckdb_pipeline.py" "$clicks" "$purchases" "$out/duckdb" ;;
      polars) measure polars -- "$py" "$peers/polars_pipeline.py" "$clicks" "$purchases" "$out/polars" ;;
      sql|udaf) measure "$step" -- "$bin" -q run --engine "$step" --clickstream "$clicks" \
                  --purchases "$purchases" --output "$out/run-$step" ;;
      sql-capped|udaf-capped) measure "$step" -- "$bin" -q run --engine "${step%-capped}" \
                  --memory-limit "${CAP:-1536M}" --clickstream "$clicks" --purchases "$purchases" \
                  --output "$out/run-$step" ;;
      *) echo "unknown step $step" >&2; exit 2 ;;
    esac
    walls[$step]=$wall
    label=$step
    [[ $step == *-capped ]] && label="${step%-capped} --memory-limit ${CAP:-1536M}"
    rows_out+=("${label// /_} $wall $cpu $rss")
  done
  for r in "${rows_out[@]}"; do
    read -r step w c s <<< "$r"
    step=${step//_/ }
    awk -v m="$m" -v st="$step" -v w="$w" -v c="$c" -v s="$s" -v d="${walls[duckdb]}" -v f="${walls[floor]}" \
      'BEGIN { printf "| %sM | %s | %s | %s | %s | %.2f | %.2f |\n", m, st, w, c, s, w / d, w / f }' >> "$table"
  done
done
doc=docs/performance.md
if [[ -f $doc ]] && grep -q "BEGIN bench/perf.sh" "$doc"; then
  # Keep the rows of the sizes not measured now, with the date they were measured.
  kept=$(awk -v sizes=" ${sizes[*]} " '
    /BEGIN bench\/perf.sh/ { inside = 1; next }
    /END bench\/perf.sh/ { inside = 0 }
    inside && /^Machine:/ { when = $0; sub(/.*GiB; /, "", when); sub(/;.*/, "", when) }
    inside && /^\| [0-9]+M \|/ { m = $2; sub(/M$/, "", m); if (index(sizes, " " m " ") == 0) print m "\t" when "\t" $0 }' "$doc")
  if [[ -n $kept ]]; then
    new_rows=$(grep '^| [0-9]*M |' "$table" | awk '{ m = $2; sub(/M$/, "", m); print m "\tnow\t" $0 }')
    head -4 "$table" > "$out/header"
    {
      cat "$out/header"
      printf '%s\n%s\n' "$kept" "$new_rows" | sort -s -n -k1,1 | cut -f3-
      echo
      echo "Kept from an earlier run: $(printf '%s\n' "$kept" | cut -f1,2 | sort -u -n | awk -F'\t' '{ printf "%s%sM (%s)", s, $1, $2; s = ", " }')."
    } > "$out/merged" && cp "$out/merged" "$table"
  fi
fi
cat "$table"
if [[ -f $doc ]] && grep -q "BEGIN bench/perf.sh" "$doc"; then
  awk -v t="$table" '
    /BEGIN bench\/perf.sh/ { print; while ((getline l < t) > 0) print l; skip = 1; next }
    /END bench\/perf.sh/ { skip = 0 }
    !skip' "$doc" > "$out/doc" && cp "$out/doc" "$doc"
fi
