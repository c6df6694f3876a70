#!/usr/bin/env bash
# Third-party Bybit clients (ccxt 4.5.x, pybit 5.x), unmodified but for their base URL, against
# `keel venue`. Makes its own virtualenv (reused from $KEEL_CLIENTS_VENV or target/), starts the
# venue on a free loopback port, runs tests/clients/conformance.py and stops the venue.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${KEEL_CLIENTS_VENV:-target/clients-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check 'ccxt>=4.5,<4.6' 'pybit>=5,<6'

keel="${KEEL_BIN:-target/release/keel}"
if [ ! -x "$keel" ]; then
  cargo build --release -p keel-runtime --bin keel
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A key pair made for this run only.
key="suite$(date +%s%N | tail -c 9)"
secret="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
KEEL_VENUE_API_KEY="$key" KEEL_VENUE_API_SECRET="$secret" \
  "$keel" venue --addr "127.0.0.1:$port" --duration 300 --balance USDT=100000 --balance BTC=1 \
  > target/clients-venue.log 2>&1 &
venue=$!
trap 'kill "$venue" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v5/market/time', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
"$venv/bin/python" tests/clients/conformance.py "http://127.0.0.1:$port" "$key" "$secret"
