#!/usr/bin/env bash
# Start the API, wait until it answers, start the UI (when present), and stop both on Ctrl-C.
set -euo pipefail
BIN=$1 HOST=$2 PORT=$3 UI_PORT=$4
API="http://$HOST:$PORT"
WORKERS=${WORKERS:-1}
T0=${RUN_T0:-$(date +%s.%N)}
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
"$BIN/dossier" serve --host "$HOST" --port "$PORT" --workers "$WORKERS" &
API_PID=$!
trap 'kill $API_PID ${UI_PID:-} 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 300); do
  curl -fsS "$API/healthz" >/dev/null 2>&1 && break
  kill -0 $API_PID 2>/dev/null || { echo "the API failed to start" >&2; exit 1; }
  sleep 0.2
done
echo "[timing] API ready            ($(since) s since start)" >&2
# The example question, asked once, so the first answer's time is measured, not assumed.
FIRST=$(curl -fsS "$API/v1/ask" -H 'content-type: application/json' \
  -d '{"question": "Why did Albania expel Iranian diplomats?"}' | head -c 160 || true)
echo "[timing] first answer         ($(since) s since start): ${FIRST}…" >&2
cat <<MSG

Dossier API:  $API   (OpenAPI docs: $API/docs)
Try:
  curl -s $API/v1/ask -H 'content-type: application/json' \\
       -d '{"question": "Why did Albania expel Iranian diplomats?"}'
MSG
if [ -f ui/app.py ]; then
  # The UI reaches the API only over HTTP, at DOSSIER_API_URL.
  DOSSIER_API_URL="$API" "$BIN/streamlit" run ui/app.py --server.address "$HOST" \
    --server.port "$UI_PORT" --server.headless true --browser.gatherUsageStats false \
    --client.toolbarMode minimal &
  UI_PID=$!
  for _ in $(seq 1 60); do
    curl -fsS "http://$HOST:$UI_PORT/_stcore/health" >/dev/null 2>&1 && break
    kill -0 $UI_PID 2>/dev/null || { echo "the UI failed to start" >&2; exit 1; }
    sleep 0.5
  done
  echo "[timing] UI ready             ($(since) s since start)" >&2
  echo "Dossier UI:   http://$HOST:$UI_PORT   (talks to $API)"
fi
echo "Ctrl-C stops everything."
wait
