#!/usr/bin/env bash
# A page as headless Chromium shows it, for the screenshots in experiments/ (Debian: apt-get install chromium).
#   bash experiments/screenshot.sh URL OUT.png WIDTH,HEIGHT [milliseconds of virtual time for the page's scripts]
set -euo pipefail
url=$1 out=$2 size=$3 budget=${4:-15000}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --virtual-time-budget="$budget" --window-size="$size" --screenshot="$out" "$url"
