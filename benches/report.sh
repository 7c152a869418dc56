#!/usr/bin/env bash
# The access report at scale: apply a generated account (CUSTOMERS customers, 2 contacts
# each), write the HTML report, and open it in headless Chromium through ChromeDriver,
# timing each step. Not part of the test suite (needs chromium and chromium-driver).
#
#   bash benches/report.sh [CUSTOMERS]      # default 100000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build --release --quiet
BIN=$PWD/target/release/portico
WORK=$(mktemp -d /tmp/portico-report.XXXXXX)
trap 'rm -rf "$WORK"; kill "$DRIVER" 2>/dev/null || true' EXIT
export NO_COLOR=1 PORTICO_NO_NOTIFY=true PORTICO_DATABASE_URL="sqlite://$WORK/live.db"

python3 - "$N" "$WORK" <<'PY'
import sys, os
n, work = int(sys.argv[1]), sys.argv[2]
os.makedirs(f"{work}/m")
with open(f"{work}/m/account.yaml", "w") as f:
    f.write("features: { customer_access: true, websites: true }\n"
            "notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n"
            "websites: [{ id: eu, name: EU Store, url: https://eu.example }]\n"
            "roles: [{ id: no-pay, name: No Payments, permissions: { customer_payment: none } }]\n"
            "customers:\n")
    for i in range(n):
        role = "no-pay" if i % 3 == 0 else "customer_center"
        f.write(f"  - id: C{i:07}\n    name: Customer {i}\n    email: c{i}@x.example\n"
                f"    access: {{ give_access: true, role: {role}, website: eu, notify: true }}\n"
                f"    contacts:\n"
                f"      - {{ email: a{i}@x.example, name: Ann {i}, access: true, notify: true }}\n"
                f"      - {{ email: b{i}@x.example, name: Bob {i}, access: true, notify: true, expires: 2099-01-01 }}\n")
PY
step() { local what=$1; shift; /usr/bin/time -f "$what: %e s, %M KB peak" "$@" > /dev/null; }
step "apply ($N customers, $((N * 3)) logins)" "$BIN" apply -f "$WORK/m" --auto-approve
step "report (HTML)" "$BIN" report --out "$WORK/report.html"
echo "report size: $(du -h "$WORK/report.html" | cut -f1)"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chromedriver --port="$PORT" > /dev/null 2>&1 &
DRIVER=$!
python3 - "$PORT" "$WORK" <<'PY'
import json, sys, time, urllib.request
port, work = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))["value"]
for _ in range(100):
    try:
        if call("GET", "/status")["ready"]: break
    except Exception: time.sleep(0.1)
args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={work}/profile"]
s = call("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome",
         "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
t = time.time()
call("POST", f"/session/{s}/url", {"url": f"file://{work}/report.html"})
while call("POST", f"/session/{s}/execute/sync", {"script": "return document.body.getAttribute('data-ready')", "args": []}) != "1":
    time.sleep(0.05)
opened = time.time() - t
count = call("POST", f"/session/{s}/execute/sync", {"script": "return document.getElementById('count').textContent", "args": []})
t = time.time()
call("POST", f"/session/{s}/execute/sync", {"script": "var e = document.getElementById('search'); e.value = 'b99999@'; e.dispatchEvent(new Event('input')); return 1", "args": []})
rows = call("POST", f"/session/{s}/execute/sync", {"script": "return document.querySelectorAll('#rows tr').length", "args": []})
searched = time.time() - t
print(f"browser: opened in {opened:.1f} s ({count}); a search over every login answered in {searched:.2f} s ({rows} row)")
call("DELETE", f"/session/{s}")
PY
