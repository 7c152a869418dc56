#!/usr/bin/env bash
# `portico serve` under load (issue #24's figures, DESIGN §10): an account of CUSTOMERS
# customers with two contacts each (300,000 logins by default, every one with a pre-hashed
# password), applied, then on SQLite (and PostgreSQL with POSTGRES_URL):
#   - forward-auth checks per second and p50/p99 latency over 1,000 signed-in sessions:
#     at saturation (wrk, 2 threads, 32 and 8 connections, as fast as they go: the
#     load generator then takes half the two cores, and the tail is the scheduler's), and
#     paced at about 25,000 checks per second (40 connections, 1 ms between each one's
#     requests: the latency a portal sees at the target rate);
#   - correct sign-ins per second against the argon2 floor (every core hashing), measured
#     in turns with it;
#   - legitimate sign-in latency while wrong passwords flood in at FLOOD_RATE per second,
#     from one address (throttled) and from many (a distributed flood);
#   - the server's idle and peak memory (VmRSS, VmHWM).
# The load generators run on the same machine as the server. Not part of the test suite.
#
#   bash benches/serve.sh
#   CUSTOMERS=10000 SECONDS_EACH=5 bash benches/serve.sh
#   POSTGRES_URL=postgres://u:p@127.0.0.1:5432/postgres bash benches/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS=${CUSTOMERS:-100000}
SECONDS_EACH=${SECONDS_EACH:-10}
FLOOD_RATE=${FLOOD_RATE:-500}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }

source benches/lib.sh
bench_setup serve
PASSWORD=bench-password-0123
PATTERN='u{}@bench.example'

echo "== generating $CUSTOMERS customers ($((CUSTOMERS * 3)) logins)"
generate_account "$WORK/m" "$CUSTOMERS" "$PASSWORD" \
  "login_policy: { lockout: { max_failed_attempts: 5, duration_minutes: 30 } }
"

rss() { awk -v k="$2:" '$1 == k {print int($2/1024) " MB"}' "/proc/$1/status"; }

cat >"$WORK/auth.lua" <<'LUA'
local ids = {}
for line in io.lines(os.getenv("SESSIONS")) do ids[#ids + 1] = line end
local i = math.random(#ids)
request = function()
  i = i % #ids + 1
  return wrk.format("GET", "/auth/request", { ["Cookie"] = "portico-session=" .. ids[i] })
end
LUA
{ cat "$WORK/auth.lua"; echo 'delay = function() return 1 end'; } >"$WORK/paced.lua"

# Correct sign-ins, each connection going through the logins in turn (wrk: a driver far
# lighter than the server, so the cores go to the server); only a 303 is a sign-in.
cat >"$WORK/signins.lua" <<'LUA'
local n = tonumber(os.getenv("LOGINS"))
local password = os.getenv("PASSWORD")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; i = math.random(n) end
request = function()
  i = i % n + 1
  local body = "email=u" .. i .. "%40bench.example&password=" .. password .. "&csrf=bench"
  return wrk.format("POST", "/login", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "portico-csrf=bench"}, body)
end
function response(status, headers, body)
  if status == 303 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("wrk sign-ins: %d succeeded, %d refused, %.1f/s\n", o, b,
    o / (summary.duration / 1e6)))
end
LUA

"$LOAD" floor 5

run_engine() {
  local name=$1 url=$2
  echo
  echo "== $name: applying"
  /usr/bin/time -f "   apply: %e s, %M KB peak" "$BIN" apply -f "$WORK/m" --database "$url" \
    --auto-approve --no-notify >/dev/null
  start "$url" --failures-per-address 0
  sleep 1
  echo "   serve idle: $(rss "$SERVER" VmRSS)"
  "$LOAD" sessions "$ADDR" 1000 "$PATTERN" "$PASSWORD" "$WORK/sessions"
  # Each run three times: on two shared cores the tail moves a lot from run to run, so the
  # median p99 is the figure, with the range beside it.
  wrk_runs() { # LABEL SCRIPT CONNECTIONS
    local p99s=() line
    for run in 1 2 3; do
      SESSIONS=$WORK/sessions wrk -t2 -c"$3" -d"${SECONDS_EACH}s" --latency \
        -s "$WORK/$2" "$ADDR" >"$WORK/wrk.txt"
      line=$(awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=" NOT ALL 200"} END {printf "%s/s p50 %s p99 %s%s", r, p50, p99, bad}' "$WORK/wrk.txt")
      echo "   run $run: $line"
      p99s+=("$(awk '/^ +99%/ {v=$2; if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /us$/) {sub(/us$/, "", v); v=v/1000} else if (v ~ /s$/) {sub(/s$/, "", v); v=v*1000}; print v}' "$WORK/wrk.txt")")
    done
    printf '%s\n' "${p99s[@]}" | sort -g | awk '{v[NR]=$1} END {printf "   %s: median p99 %.2f ms (%.2f-%.2f)\n", "'"$1"'", v[2], v[1], v[3]}'
  }
  for connections in 32 8; do
    echo "== $name: forward-auth checks (wrk -t2 -c$connections -d${SECONDS_EACH}s, 1,000 sessions, as fast as they go)"
    wrk_runs "c$connections" auth.lua "$connections"
  done
  echo "== $name: forward-auth checks paced (wrk -t2 -c40, 1 ms between each connection's requests)"
  wrk_runs paced paced.lua 40
  echo "== $name: correct sign-ins (wrk, 8 at a time) against the argon2 floor, interleaved"
  # The machine's speed drifts from minute to minute (±10%): the floor and the sign-ins are
  # measured in turns, two seconds each, eight times, and the figure is the ratio of the
  # sums (each turn's ratio beside it).
  local floors=0 rates=0 floor rate
  for turn in 1 2 3 4 5 6 7 8; do
    floor=$("$LOAD" floor 2 | awk '{print $3}')
    rate=$(LOGINS=1000 PASSWORD=$PASSWORD wrk -t1 -c8 -d2s -s "$WORK/signins.lua" "$ADDR" |
      sed -n 's/.*refused, \([0-9.]*\)\/s/\1/p')
    echo "   turn $turn: $rate sign-ins/s, floor $floor/s ($(awk -v r="$rate" -v f="$floor" 'BEGIN {printf "%.0f", 100 * r / f}')%)"
    floors=$(awk -v a="$floors" -v b="$floor" 'BEGIN {print a + b}')
    rates=$(awk -v a="$rates" -v b="$rate" 'BEGIN {print a + b}')
  done
  awk -v r="$rates" -v f="$floors" 'BEGIN {printf "   sign-ins: %.1f%% of the floor (%.1f/s against %.1f/s)\n", 100 * r / f, r / 8, f / 8}'
  stop
  echo "== $name: a flood of wrong passwords at ${FLOOD_RATE}/s"
  start "$url" --trusted-proxy 127.0.0.1
  "$LOAD" flood "$ADDR" "$FLOOD_RATE" "$SECONDS_EACH" "$PATTERN" "$PASSWORD" one
  "$LOAD" flood "$ADDR" "$FLOOD_RATE" "$SECONDS_EACH" "$PATTERN" "$PASSWORD" many
  echo "   serve peak: $(rss "$SERVER" VmHWM)"
  stop
}

run_engine SQLite "sqlite://$WORK/live.db"
if [ -n "${POSTGRES_URL:-}" ]; then
  base=${POSTGRES_URL%/*}
  psql "$POSTGRES_URL" -qc 'DROP DATABASE IF EXISTS portico_serve_bench' -c 'CREATE DATABASE portico_serve_bench' >/dev/null
  run_engine PostgreSQL "$base/portico_serve_bench"
fi
