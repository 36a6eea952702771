#!/usr/bin/env bash
# Run one set-up step and print how long it took, and the time since `make` started
# (RUN_T0, seconds since the epoch), so a first `make run` shows where its time goes.
set -euo pipefail
label=$1; shift
t0=$(date +%s.%N)
"$@"
t1=$(date +%s.%N)
awk -v l="$label" -v a="$t0" -v b="$t1" -v z="${RUN_T0:-$t0}" \
  'BEGIN { printf "[timing] %-20s %6.1f s   (%.1f s since start)\n", l, b - a, b - z }' >&2
