# dataset MILLIONS: generates once (cached under bench/data/) a messy dataset of about MILLIONS
# million clickstream rows over 130 days with the release binary $bin, and sets data, clicks
# and purchases to its paths.
dataset() {
  data="bench/data/events-${1}M"
  if [[ ! -f "$data/.complete" ]]; then
    rm -rf "$data"
    "$bin" generate --users "$(($1 * 68000))" --days 130 --files 8 --seed 1 --no-truth --output "$data"
    touch "$data/.complete"
  fi
  clicks="$data/mobile_app_clickstream"
  purchases="$data/user_purchases"
}
