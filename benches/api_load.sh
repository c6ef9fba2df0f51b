#!/usr/bin/env bash
# API under load: GET account, GET list and /health under wrk while 100 logins (argon2id) run at
# the same time, against `tgfleet serve --sandbox` (release build). Needs wrk (Debian: apt-get
# install wrk). Load generator and server share the machine, so figures are lower bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q
dir=$(mktemp -d)
port=${API_LOAD_PORT:-18100}
B=http://127.0.0.1:$port/api/v1
json='content-type: application/json'
(cd "$dir" && TGFLEET__API__LISTEN=127.0.0.1:$port TGFLEET__METRICS__LISTEN=127.0.0.1:$((port + 1)) \
  TGFLEET__AUTH__USER_RATE_PER_SECOND=1000000 TGFLEET__AUTH__AUTH_RATE_PER_MINUTE=1000000 \
  TGFLEET__LOG__LEVEL=warn exec "$OLDPWD/target/release/tgfleet" serve --sandbox) &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do curl -sf "$B/health" >/dev/null && break; sleep 0.2; done
for i in $(seq 1 100); do
  curl -s -XPOST "$B/auth/register" -H "$json" -d "{\"email\":\"u$i@example.org\",\"password\":\"correct horse battery\"}" >/dev/null
done
token=$(curl -s -XPOST "$B/auth/login" -H "$json" -d '{"email":"u1@example.org","password":"correct horse battery"}' \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
for _ in $(seq 1 20); do
  curl -s -XPOST "$B/telegram/accounts" -H "authorization: Bearer $token" -H "$json" -d '{"kind":"user"}' >/dev/null
done
logins() {
  seq 1 100 | xargs -P 100 -I{} curl -s -o /dev/null -w "%{http_code}\n" -XPOST "$B/auth/login" -H "$json" \
    -d '{"email":"u{}@example.org","password":"correct horse battery"}' | sort | uniq -c | tr '\n' ' '
}
for conns in 32 4; do
  for path in "telegram/accounts/1" "telegram/accounts?limit=20" "health"; do
    logins >"$dir/logins" &
    lp=$!
    out=$(wrk -t2 -c"$conns" -d10s --latency -H "Authorization: Bearer $token" "$B/$path")
    wait $lp
    echo "== GET /api/v1/$path, $conns connections, with 100 logins: $(cat "$dir/logins")"
    echo "$out" | grep -E "Requests/sec|^ +(50|99)%|Non-2xx"
  done
done
