#!/usr/bin/env bash
# Adoption at scale: apply a generated account, export it, plan the export (the round trip
# must show no changes), and import a NetSuite-style CSV touching every customer. Prints
# wall time and peak memory of each step. Not part of the test suite.
#
#   bash benches/adopt.sh [CUSTOMERS]      # default 100000 (with 2 contacts each)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build --release --quiet
BIN=$PWD/target/release/portico
WORK=$(mktemp -d /tmp/portico-adopt.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
export NO_COLOR=1 PORTICO_NO_NOTIFY=true PORTICO_DATABASE_URL="sqlite://$WORK/live.db"

python3 - "$N" "$WORK" <<'PY'
import sys, os
n, work = int(sys.argv[1]), sys.argv[2]
os.makedirs(f"{work}/m/customers")
with open(f"{work}/m/account.yaml", "w") as f:
    f.write("features: { customer_access: true, websites: true }\n"
            "notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n"
            "websites: [{ id: eu, name: EU Store, url: https://eu.example }]\n"
            "roles: [{ id: no-pay, name: No Payments, permissions: { customer_payment: none } }]\n")
per = 5000
for start in range(0, n, per):
    with open(f"{work}/m/customers/c{start // per:04}.yaml", "w") as f:
        f.write("customers:\n")
        for i in range(start, min(n, start + per)):
            role = "no-pay" if i % 3 == 0 else "customer_center"
            f.write(f"  - id: C{i:07}\n    name: Customer {i}\n    email: c{i}@x.example\n"
                    f"    access: {{ give_access: true, role: {role}, website: eu, notify: true }}\n"
                    f"    contacts:\n"
                    f"      - {{ email: a{i}@x.example, name: Ann {i}, access: true, notify: true }}\n"
                    f"      - {{ email: b{i}@x.example, name: Bob {i}, notify: true }}\n")
with open(f"{work}/access.csv", "w") as f:
    f.write("Internal ID,Company Name,Give Access,Role,Assigned Website,"
            "Contact Access 1 : Email,Contact Access 1 : Access\r\n")
    for i in range(n):
        f.write(f"C{i:07},Customer {i} Ltd,Yes,Customer Center,EU Store,b{i}@x.example,Yes\r\n")
PY

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; exit 1; }
  read -r secs kb < "$WORK/t"
  printf '| %-34s | %8.1f s | %7.0f MiB |\n' "$label" "$secs" "$((kb / 1024))"
}

echo "| step ($N customers, $((2 * N)) contacts) | wall | peak RSS |"
echo "|---|---|---|"
measure "apply (first, generated account)" "$BIN" apply -f "$WORK/m" --auto-approve --max-destroy 0
measure "export" "$BIN" export --out "$WORK/exported"
measure "plan of the export (round trip)" "$BIN" plan -f "$WORK/exported" --detailed-exitcode
grep -q "No changes" "$WORK/out" || { echo "round trip is not empty"; tail "$WORK/out"; exit 1; }
measure "import-csv (every customer)" "$BIN" import-csv "$WORK/access.csv" -f "$WORK/exported"
measure "plan after the import" "$BIN" plan -f "$WORK/exported"
grep '^Plan:' "$WORK/out"
