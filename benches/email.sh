#!/usr/bin/env bash
# Email delivery (issue #26): MESSAGES new-access messages, each with a set-password link,
# queued by `apply --no-notify`, then delivered by `portico notify` (4 SMTP connections, the
# default) to a real SMTP server on 127.0.0.1: aiosmtpd (tests/smtp_server.py), which parses
# every message and keeps it as a file, as the email tests do. Prints messages per second
# and checks every message arrived once. On SQLite (and PostgreSQL with POSTGRES_URL).
# The SMTP server runs on the same two cores. Not part of the test suite.
#   bash benches/email.sh
#   MESSAGES=5000 POSTGRES_URL=postgres://u:p@127.0.0.1:5432/postgres bash benches/email.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-2000}
PARALLEL=${PARALLEL:-4}
source benches/lib.sh
# The SMTP server is aiosmtpd from PyPI, installed as the test command installs it.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "== installing aiosmtpd (pip), the SMTP server the messages are delivered to"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore aiosmtpd
fi
bench_setup email

run_engine() {
  local name=$1 url=$2
  local mails="$WORK/mails-$name"; mkdir -p "$mails"
  exec {smtp_in}> >(python3 tests/smtp_server.py --dir "$mails" >"$WORK/smtp-port" 2>"$WORK/smtp.log")
  for _ in $(seq 100); do [ -s "$WORK/smtp-port" ] && break; sleep 0.1; done
  local port; port=$(awk '{print $2}' "$WORK/smtp-port")
  # Without a port every message would go to port 25 and fail one by one.
  [ -n "$port" ] || { echo "the SMTP server (tests/smtp_server.py) did not start:"; cat "$WORK/smtp.log"; exit 1; }
  rm -rf "$WORK/m"; mkdir -p "$WORK/m"
  python3 - "$WORK/m/account.yaml" "$MESSAGES" "$port" <<'PY'
import sys
path, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    f.write("features: { customer_access: true }\n"
            "notifications:\n"
            f"  smtp: {{ url: \"smtp://127.0.0.1:{port}?tls=none\" }}\n"
            "  from: portico@bench.example\n"
            "  login_url: https://portal.bench.example/login\n"
            "customers:\n")
    for i in range(n):
        f.write(f"  - {{ id: C{i}, name: Customer {i}, email: u{i}@bench.example, "
                "access: { give_access: true, notify: true } }\n")
PY
  echo
  echo "== $name: queueing $MESSAGES messages (apply --no-notify)"
  "$BIN" apply -f "$WORK/m" --database "$url" --auto-approve --no-notify >/dev/null
  echo "== $name: portico notify --notify-parallel $PARALLEL"
  local started; started=$(date +%s.%N)
  "$BIN" notify --database "$url" --notify-parallel "$PARALLEL" >"$WORK/notify.out" 2>&1 || {
    cat "$WORK/notify.out"; exit 1; }
  local ended; ended=$(date +%s.%N)
  local got; got=$(find "$mails" -name '*.json' | wc -l)
  [ "$got" = "$MESSAGES" ] || { echo "the SMTP server got $got of $MESSAGES"; exit 1; }
  awk -v s="$started" -v e="$ended" -v n="$MESSAGES" \
    'BEGIN {printf "   %d messages in %.2f s: %.0f messages/s\n", n, e - s, n / (e - s)}'
  exec {smtp_in}>&-
  rm -f "$WORK/smtp-port"
}

run_engine SQLite "sqlite://$WORK/live.db"
if [ -n "${POSTGRES_URL:-}" ]; then
  base=${POSTGRES_URL%/*}
  psql "$POSTGRES_URL" -qc 'DROP DATABASE IF EXISTS portico_email_bench' -c 'CREATE DATABASE portico_email_bench' >/dev/null
  run_engine PostgreSQL "$base/portico_email_bench"
fi
