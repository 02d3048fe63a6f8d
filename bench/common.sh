# Shared by the bench scripts: builds the release binary and generates (once, cached under
# bench/data/) a messy dataset of about MILLIONS million clickstream rows over 130 days.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
millions=${1:-10}
# PROFILE=profiling measures a build that rebuilds in minutes (no LTO), to compare variants.
profile=${PROFILE:-release}
cargo build --profile "$profile" --quiet
bin=target/$profile/marketing-analytics
source bench/dataset.sh
# A script with a dataset of its own sets OWN_DATASET=1 before sourcing this file.
if [[ -z ${OWN_DATASET:-} ]]; then
  dataset "$millions"
  rows=$(zcat "$clicks"/*.gz | wc -l)
  echo "dataset: $data, $((rows - 8)) clickstream rows, $(du -sh "$clicks" | cut -f1) gzip CSV; machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# measure LABEL... -- COMMAND...: runs COMMAND and prints "| LABEL... | wall s | CPU s | peak RSS MiB |".
measure() {
  local labels=()
  while [[ $1 != -- ]]; do labels+=("$1"); shift; done
  shift
  local IFS='|'
  if ! /usr/bin/time -f "%e %U %S %M" -o "$out/time" "$@" > /dev/null 2> "$out/stderr"; then
    awk -v l="${labels[*]}" -v e="$(grep -m1 -o 'Resources exhausted\|error: .*' "$out/stderr" | cut -c1-60)" \
      'BEGIN { gsub(/\|/, " | ", l); printf "| %s | fails: %s | | |\n", l, e }'
    return 0
  fi
  IFS=" " read -r wall user sys rss < <(tail -1 "$out/time")
  awk -v l="${labels[*]}" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
    'BEGIN { gsub(/\|/, " | ", l); printf "| %s | %s | %.1f | %d |\n", l, w, u + s, r / 1024 }'
}
