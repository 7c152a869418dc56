#!/usr/bin/env bash
# The OpenID Connect provider's token endpoint under load (issue #25's figures): an account
# of CUSTOMERS customers with two contacts each and one confidential client, applied, then on
# SQLite (and PostgreSQL with POSTGRES_URL):
#   - token requests per second and p50/p99 latency (wrk, 2 threads, 16 connections as fast
#     as they go, then 8 connections each waiting 20 ms between requests: a steady load of
#     a few hundred a second, the latency an application sees), each
#     request a full exchange: client authentication (HTTP Basic), a code redeemed once,
#     PKCE checked, the login decided again, an access token stored, an ID token signed
#     (RS256). The codes are issued beforehand straight into the database (a code lives
#     60 seconds when `/oidc/authorize` makes it; these live an hour, for the run);
#   - the time from "revoke in git + apply" to the relying party's next userinfo refused.
# The load generator runs on the same machine as the server. Not part of the test suite.
# Usage:
#   bash benches/oidc.sh
#   CUSTOMERS=1000 SECONDS_EACH=5 bash benches/oidc.sh
#   POSTGRES_URL=postgres://u:p@127.0.0.1:5432/postgres bash benches/oidc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS=${CUSTOMERS:-10000}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)"; exit 1; }

source benches/lib.sh
bench_setup oidc
export PW=bench-password-0123 CLIENT_SECRET=bench-client-secret-0123456789-abcdef
REDIRECT=http://127.0.0.1:9/callback
VERIFIER=bench-verifier-0123456789-0123456789-0123456789
CODES=$((SECONDS_EACH * 4000 * 3 + 10000))

echo "== generating $CUSTOMERS customers ($((CUSTOMERS * 3)) logins) and a client"
generate_account "$WORK/m" "$CUSTOMERS" "$PW" "oidc_clients:
  - id: portal
    name: Portal
    redirect_uris: [\"$REDIRECT\"]
    secret: { env: CLIENT_SECRET }
"

# The codes: CODES rows for logins in turn, each bound to the client, the redirect URI and
# the one verifier's challenge; their plaintexts in a file wrk reads.
python3 - "$WORK" "$CODES" "$CUSTOMERS" "$REDIRECT" "$VERIFIER" <<'PY'
import base64, datetime, hashlib, sys
work, count, customers, redirect, verifier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
now = datetime.datetime.now(datetime.timezone.utc)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
with open(f"{work}/codes.txt", "w") as plain, open(f"{work}/codes.csv", "w") as rows:
    for i in range(count):
        code = f"bench-{i}-" + hashlib.sha256(f"{i}".encode()).hexdigest()[:24]
        plain.write(code + "\n")
        customer = f"C{i % customers}"
        rows.write(",".join([hashlib.sha256(code.encode()).hexdigest(), "portal", customer, "",
            redirect, challenge, "openid email profile access", "n", fmt(now), "pwd",
            fmt(now + datetime.timedelta(hours=1))]) + "\n")
PY

cat >"$WORK/token.lua" <<LUA
local codes = {}
for line in io.lines("$WORK/codes.txt") do codes[#codes + 1] = line end
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter); counter = counter + 1; table.insert(threads, thread)
end
function init(args) n = 0; ok = 0; bad = 0 end
local auth = "Basic " .. "$(printf 'portal:%s' "$CLIENT_SECRET" | base64 -w0)"
request = function()
  n = n + 1
  local code = codes[(n * 2 + id) % #codes + 1]
  local body = "grant_type=authorization_code&code=" .. code ..
    "&code_verifier=$VERIFIER&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback"
  return wrk.format("POST", "/oidc/token", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth}, body)
end
function response(status) if status == 200 then ok = ok + 1 else bad = bad + 1 end end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("tokens: %d issued, %d refused\n", o, b))
end
LUA

{ cat "$WORK/token.lua"; echo 'delay = function() return 20 end'; } >"$WORK/paced.lua"

# load_codes ENGINE URL: the codes into oidc_codes (a fresh set per run).
load_codes() {
  local columns="code_hash, client_id, customer_id, contact, redirect_uri, code_challenge, scope, nonce, auth_time, amr, expires_at"
  if [ "$1" = SQLite ]; then
    python3 - "${2#sqlite://}" "$WORK/codes.csv" "$columns" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DELETE FROM oidc_codes"); db.execute("DELETE FROM oidc_tokens")
with open(sys.argv[2]) as f:
    db.executemany(f"INSERT INTO oidc_codes ({sys.argv[3]}) VALUES ({','.join('?' * 11)})", csv.reader(f))
db.commit()
PY
  else
    psql "$2" -qc "DELETE FROM oidc_codes" -c "DELETE FROM oidc_tokens" \
      -c "\\copy oidc_codes ($columns) FROM '$WORK/codes.csv' WITH (FORMAT csv, FORCE_NOT_NULL (contact))"
  fi
}

# give_access true|false: the first customer's own login (C0) given or revoked, in git.
give_access() {
  python3 - "$WORK/m/customers/c0000.yaml" "$1" <<'PY'
import sys
path, to = sys.argv[1], sys.argv[2]
text = open(path).read()
old, new = ("give_access: false", "give_access: true") if to == "true" else ("give_access: true", "give_access: false")
open(path, "w").write(text.replace(old, new, 1))
PY
}

# warm: the server's first requests, not measured: the first signing key is made (or read),
# and the client's secret is proved once (argon2, about 20 ms a core; `serve` then keeps the
# proof). Without it, a run's first CONNECTIONS requests all wait for argon2 at once, which
# alone is the paced p99 of a 5-second run.
warm() {
  curl -fs "$ADDR/oidc/jwks" >/dev/null
  curl -s -o /dev/null -u "portal:$CLIENT_SECRET" -d grant_type=client_credentials "$ADDR/oidc/token"
}

run_engine() {
  local name=$1 url=$2
  echo
  echo "== $name: applying"
  "$BIN" apply -f "$WORK/m" --database "$url" --auto-approve --no-notify >/dev/null
  start "$url" --failures-per-address 0
  warm
  echo "== $name: token endpoint (wrk -t2 -c$CONNECTIONS -d${SECONDS_EACH}s), three runs"
  for run in 1 2 3; do
    stop; load_codes "$name" "$url"; start "$url" --failures-per-address 0; warm
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$WORK/token.lua" "$ADDR" >"$WORK/wrk.txt"
    awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /^tokens:/ {t=$0} END {printf "   run %s: %s/s p50 %s p99 %s (%s)\n", "'"$run"'", r, p50, p99, t}' "$WORK/wrk.txt"
  done
  echo "== $name: token endpoint paced (wrk -t2 -c8, 20 ms between each connection's requests), three runs"
  for run in 1 2 3; do
    stop; load_codes "$name" "$url"; start "$url" --failures-per-address 0; warm
    wrk -t2 -c8 -d"${SECONDS_EACH}s" --latency -s "$WORK/paced.lua" "$ADDR" >"$WORK/wrk.txt"
    awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /^tokens:/ {t=$0} END {printf "   run %s: %s/s p50 %s p99 %s (%s)\n", "'"$run"'", r, p50, p99, t}' "$WORK/wrk.txt"
  done
  echo "== $name: revoke in git + apply → userinfo refused"
  stop; load_codes "$name" "$url"; start "$url" --failures-per-address 0
  local code; code=$(sed -n 1p "$WORK/codes.txt")
  local token; token=$(curl -fs -u "portal:$CLIENT_SECRET" -d grant_type=authorization_code \
    -d "code=$code" -d "code_verifier=$VERIFIER" --data-urlencode "redirect_uri=$REDIRECT" \
    "$ADDR/oidc/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$ADDR/oidc/userinfo")" = 200 ]
  give_access false
  local started; started=$(date +%s.%N)
  "$BIN" apply -f "$WORK/m" --database "$url" --auto-approve --no-notify >/dev/null
  local applied; applied=$(date +%s.%N)
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$ADDR/oidc/userinfo")" = 401 ]; do sleep 0.01; done
  local refused; refused=$(date +%s.%N)
  awk -v s="$started" -v a="$applied" -v r="$refused" 'BEGIN {printf "   %.0f ms (the apply %.0f ms, then %.0f ms to the refusal)\n", (r-s)*1000, (a-s)*1000, (r-a)*1000}'
  give_access true
  stop
}

run_engine SQLite "sqlite://$WORK/live.db"
if [ -n "${POSTGRES_URL:-}" ]; then
  base=${POSTGRES_URL%/*}
  psql "$POSTGRES_URL" -qc 'DROP DATABASE IF EXISTS portico_oidc_bench' -c 'CREATE DATABASE portico_oidc_bench' >/dev/null
  run_engine PostgreSQL "$base/portico_oidc_bench"
fi
