# Shared by the benchmarks (serve.sh and oidc.sh use all of it, scale.sh `bench_binary`): the release build, a work
# folder removed on exit, an account of logins with one pre-hashed password, and `serve`
# started on a free port. Sourced, not run.

# bench_setup NAME: builds the release binary (BIN) and the load helper (LOAD), makes WORK
# and removes it (and stops the server) on exit, and sets the environment every run shares.
bench_setup() {
  cargo build --release --quiet
  LOAD=$(bench_binary serve_load)
  BIN=$PWD/target/release/portico
  WORK=$(mktemp -d "/tmp/portico-$1-bench.XXXXXX")
  SERVER=
  trap 'bench_cleanup' EXIT
  export NO_COLOR=1 PORTICO_NO_NOTIFY=true PORTICO_SECRET_KEY=$(head -c 32 /dev/urandom | base64)
}

# bench_binary NAME: builds the `[[bench]]` NAME (release) and prints its executable's path.
bench_binary() {
  cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m["target"]["name"] == sys.argv[1]: print(m["executable"])' "$1"
}

bench_cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }

# generate_account DIR CUSTOMERS PASSWORD HEADER: DIR/account.yaml (the features line, a
# No Payments role, then HEADER) and DIR/customers/c*.yaml, 5,000 customers a file, each
# with two contacts, every login given PASSWORD pre-hashed (u<n>@bench.example, n from 0).
generate_account() {
  local hash; hash=$("$LOAD" hash "$3")
  python3 - "$1" "$2" "$hash" "$4" <<'PY'
import sys, os
out, n, hash_, header = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
pw = f'password: {{ argon2: "{hash_}" }}'
os.makedirs(f"{out}/customers", exist_ok=True)
with open(f"{out}/account.yaml", "w") as f:
    f.write("features: { customer_access: true }\n"
            "roles: [{ id: no-pay, name: No Payments, permissions: { customer_payment: none, invoice: view } }]\n"
            + header)
per = 5000
for start in range(0, n, per):
    with open(f"{out}/customers/c{start // per:04}.yaml", "w") as f:
        f.write("customers:\n")
        for i in range(start, min(n, start + per)):
            f.write(f"  - id: C{i}\n    name: Customer {i}\n    email: u{3*i}@bench.example\n"
                    f"    access: {{ give_access: true, role: no-pay, {pw} }}\n    contacts:\n")
            for k in (1, 2):
                f.write(f"      - {{ email: u{3*i+k}@bench.example, access: true, {pw} }}\n")
PY
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start URL [ARGS…]: starts serve on a free port; sets SERVER (pid) and ADDR.
start() {
  local url=$1; shift
  local p; p=$(port)
  ADDR=http://127.0.0.1:$p
  "$BIN" serve --database "$url" --listen "127.0.0.1:$p" --insecure-cookies --no-deliver \
    "$@" 2>"$WORK/serve.log" &
  SERVER=$!
  for _ in $(seq 100); do curl -fs "$ADDR/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "serve did not start"; cat "$WORK/serve.log"; exit 1
}

stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
