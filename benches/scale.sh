#!/usr/bin/env bash
# portico at scale (issue #11 targets, DESIGN §7): generates accounts (deterministic, 2
# contacts per customer, notifications queued so no password hashing), and prints one table
# per size: each step's wall time and peak memory, and its ratio to floors measured in the
# same run:
#   parse floor  = reading every manifest into a generic YAML value, one thread, same library
#                  (benches/parse_floor.rs);
#   load floor   = the sqlite3 shell loading a .dump of the managed tables.
# Nothing is built in the timed part. Not part of the test suite.
#
#   bash benches/scale.sh                 # 10,000 and 100,000 customers
#   bash benches/scale.sh 5000            # one size
#   bash benches/scale.sh --huge          # also 1,000,000 customers
#   DRIFT=5 bash benches/scale.sh         # drift plan with 5% of customers changed (default 1)
#   REPEAT=5 bash benches/scale.sh        # each step and floor run 5 times, the median shown
#                                         # (default 3; peak RSS is the largest of the runs)
#   POSTGRES_URL=postgres://u:p@host:port/db bash benches/scale.sh
#                                         # also PostgreSQL's first apply, full-read plan and
#                                         # 10-login plan and apply (in a database
#                                         # portico_scale it creates there)
#   The parse floor is measured again before each step it is compared with (the machine drifts).
#   PORTICO_TIMINGS=1 shows each step's phases (parse, read live, validate, diff, write…)
#   SHAPES="default wide files"           # account shapes to run (default: all three), then
#                                         # the worst ratio of each step over them:
#     default  1 custom role, 1 website, 2 contacts a customer, every login notified, short
#              names, 5,000 customers a file (the shape the targets were first met on);
#     wide     40 roles, 12 websites, pre-hashed passwords (argon2) on every login, 90% of
#              logins notified too, 2–4 contacts a customer, names of 60–80 characters,
#              1,000 customers a file;
#     files    the default shape with one customer a file, every file in one folder
#              (100,000 files at 100,000 customers).
#   Each account's folders (the base, the drift and the 10-login change) are fresh git clones,
#   as CI plans from; the parse floor reads the same files.
#   The database line compares the file with the floor database (the managed tables' rows
#   loaded by the sqlite3 shell): target <= 1.6x.
#   For PostgreSQL as production runs it, give a server with its default (durable) settings.
#   EXTRAS=0                             # without email delivery (benches/email.sh, on both
#                                         # engines with POSTGRES_URL) and import-csv
#                                         # (benches/adopt.sh at the largest size), whose
#                                         # figures otherwise end the last table
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=()
for arg in "$@"; do
  case "$arg" in
    --huge) SIZES+=(10000 100000 1000000) ;;
    *) SIZES+=("$arg") ;;
  esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
DRIFT=${DRIFT:-1}
REPEAT=${REPEAT:-3}
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 shell (apt-get install sqlite3)"; exit 1; }

source benches/lib.sh
cargo build --release --quiet
FLOOR=$(bench_binary parse_floor)
HASH=$("$(bench_binary serve_load)" hash "a-scale-benchmark-password")
SHAPES=${SHAPES:-default wide files}
BIN=$PWD/target/release/portico
WORK=$(mktemp -d /tmp/portico-scale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
WORST="$WORK/worst"
export NO_COLOR=1 PORTICO_NO_NOTIFY=true

# generate SHAPE DIR CUSTOMERS DRIFT_PERCENT CHANGED_LOGINS
generate() {
  python3 - "$@" "$HASH" <<'PY'
import sys, os
shape, out, n, drift, changed, hash_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
wide = shape == "wide"
roles = 40 if wide else 1
websites = 12 if wide else 1
files = shape == "files"
per = 1 if files else 1000 if wide else 5000
os.makedirs(f"{out}/customers", exist_ok=True)
with open(f"{out}/account.yaml", "w") as f:
    f.write("features: { customer_access: true, websites: true }\n"
            "notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n"
            "websites:\n")
    for w in range(websites):
        f.write(f"  - {{ id: w{w}, name: Store {w}, url: https://w{w}.example }}\n")
    f.write("roles:\n")
    for r in range(roles):
        f.write(f"  - {{ id: r{r}, name: Role {r}, base: customer_center, permissions: "
                f"{{ customer_payment: none, invoice: {'view' if r % 2 else 'none'} }} }}\n")
every = int(100 / drift) if drift else 0
def name(kind, i):
    base = f"{kind} {i}"
    return base + (" of the " + "Northern Regional Wholesale Trading Company"[: 20 + i % 20] if wide else "")
def access(i, k):
    # wide: pre-hashed passwords, and 90% notified; default: every login notified
    notify = "true" if not wide or (i + k) % 10 else "false"
    password = f', password: {{ argon2: "{hash_}" }}' if wide else ""
    return notify, password
for start in range(0, n, per):
    with open(f"{out}/customers/c{start // per:0{7 if files else 4}}.yaml", "w") as f:
        f.write("customers:\n")
        for i in range(start, min(n, start + per)):
            renamed = " (renamed)" if every and i % every == 0 else ""
            role = f"r{i % roles}" if i % 3 == 0 else "customer_center"
            website = f"w{i % websites}"
            notify, password = access(i, 0)
            f.write(f"  - id: C{i:07}\n    name: {name('Customer', i)}{renamed}\n    email: c{i}@x.example\n"
                    f"    access: {{ give_access: true, role: {role}, website: {website}, notify: {notify}{password} }}\n"
                    f"    contacts:\n")
            contacts = 2 + i % 3 if wide else 2
            for k in range(contacts):
                b_access = "true" if k == 0 or (k == 1 and i < changed) or k > 1 else "false"
                notify, password = access(i, k + 1)
                f.write(f"      - {{ email: p{k}.{i}@x.example, name: {name('Person', i)}, "
                        f"access: {b_access}, notify: {notify}{password} }}\n")
PY
}

# as_checkout DIR: DIR becomes what CI plans from, a fresh clone of a commit of its files
# (git's index written by the checkout: a plan takes the files it lists with their stat
# data unchanged as unchanged, without reading them). The commit does not pack in the
# background (`gc.auto=0`): with 100,000 new objects it did, and was still writing in .git
# when the folder was removed ("Directory not empty").
as_checkout() {
  local dir=$1
  git -C "$dir" init -q
  git -C "$dir" add -A
  git -C "$dir" -c gc.auto=0 -c user.name=bench -c user.email=bench@example.com commit -q -m "$(basename "$dir")"
  git clone -q "$dir" "$dir.checkout"
  rm -rf "$dir"
  mv "$dir.checkout" "$dir"
}

# median of the numbers given, one per line
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# measure LABEL RESET CMD... → runs CMD $REPEAT times, RESET (shell code, or "") before each
# run; sets SECONDS_TAKEN to the median wall time (to a tenth of a millisecond: a 10-login
# plan takes about 20 ms, and whole milliseconds moved its apply's ratio by 5%) and KB to the largest
# peak RSS. The median of a few runs, because this machine's speed drifts.
measure() {
  local label=$1 reset=$2; shift 2
  local times=() kb=0 start end k
  for _ in $(seq "$REPEAT"); do
    if [ -n "$reset" ]; then eval "$reset"; fi
    start=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/time" "$@" > "$WORK/out" 2> "$WORK/err" || {
      code=$?
      # plan --detailed-exitcode exits 2 on changes
      if [ "$code" -ne 2 ]; then echo "$label failed ($code):"; tail -5 "$WORK/err"; exit 1; fi
    }
    end=$(date +%s%N)
    times+=("$(( (end - start) / 100000 ))")
    k=$(tail -n 1 "$WORK/time")
    if [ "$k" -gt "$kb" ]; then kb=$k; fi
  done
  SECONDS_TAKEN=$(printf '%s\n' "${times[@]}" | median | awk '{ printf "%.4f", $1 / 10000 }')
  KB=$kb
}

for SHAPE in $SHAPES; do
for N in "${SIZES[@]}"; do
  D="$WORK/$N"; rm -rf "$D"; mkdir -p "$D"
  generate "$SHAPE" "$D/base" "$N" 0 0
  generate "$SHAPE" "$D/drift" "$N" "$DRIFT" 0
  generate "$SHAPE" "$D/pr" "$N" 0 10
  for tree in base drift pr; do as_checkout "$D/$tree"; done
  DB="sqlite://$D/live.db"
  rows=()
  # row STEP SECONDS KB RATIO_TEXT: a table row, and the ratio kept for the worst-of table.
  row() {
    rows+=("$(printf '| %-34s | %8.3f s | %7d MiB | %s |' "$1" "$2" "$(( $3 / 1024 ))" "$4")")
    echo "$N|$1|${4%%x *}|$SHAPE|$(( $3 / 1024 ))" >> "$WORST"
  }
  ratio() { python3 -c "print(f'{($1) / ($2):.2f}x $3')"; }

  # The machine's speed drifts within a run, so the parse floor is measured again right
  # before each step it is compared with; the table shows the first and the range.
  floors=()
  fresh_floor() {
    parse=$(for _ in $(seq "$REPEAT"); do "$FLOOR" "$D/base" 2>/dev/null; done | median)
    floors+=("$parse")
  }
  fresh_floor
  measure validate "" "$BIN" validate -f "$D/base"
  row "validate" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$parse" 'parse floor (target <= 0.6x)')"
  fresh_floor
  measure apply "rm -f '$D/live.db' '$D/live.db.lock'" \
    "$BIN" apply -f "$D/base" --auto-approve --database "$DB"
  apply_s=$SECONDS_TAKEN; apply_kb=$KB
  # The load floor: the managed tables dumped and loaded by the sqlite3 shell.
  sqlite3 "$D/live.db" ".dump features websites login_policy notification_settings roles role_permissions customers logins policies" > "$D/dump.sql"
  load=$(for _ in $(seq "$REPEAT"); do
    rm -f "$D/floor.db"
    start=$(date +%s%N); sqlite3 "$D/floor.db" < "$D/dump.sql"; end=$(date +%s%N)
    echo "$(( (end - start) / 1000000 ))"
  done | median | awk '{ printf "%.3f", $1 / 1000 }')
  row "first apply" "$apply_s" "$apply_kb" "$(ratio "$apply_s" "$parse + $load" 'parse + load floor (target <= 1.5x)')"
  # The size floor holds the managed columns only: the drift digests kept in the login rows
  # (migration 0017) are portico's bookkeeping, counted against it like `applied_objects`.
  sqlite3 "$D/floor.db" "ALTER TABLE logins DROP COLUMN applied_digest;
    ALTER TABLE logins DROP COLUMN applied_apply_id; VACUUM;"
  db_bytes=$(stat -c %s "$D/live.db"); floor_bytes=$(stat -c %s "$D/floor.db")
  logins=$(sqlite3 "$D/live.db" "SELECT count(*) FROM logins")
  rows+=("$(printf '| %-34s | %10s | %7d MiB | %s |' "database after the first apply" "" "$(( db_bytes / 1048576 ))" "$(ratio "$db_bytes" "$floor_bytes" "the managed rows alone, $(( floor_bytes / 1048576 )) MiB (target <= 1.6x)")")")
  echo "$N|database size|$(python3 -c "print(f'{$db_bytes / $floor_bytes:.2f}')")|$SHAPE|$(( db_bytes / 1048576 ))" >> "$WORST"
  fresh_floor
  measure plan "" "$BIN" plan -f "$D/base" --database "$DB" --detailed-exitcode --no-incremental
  plan_s=$SECONDS_TAKEN
  row "no-change plan, full read" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$parse" 'parse floor (target <= 1.0x)')"
  measure plan-incremental "" "$BIN" plan -f "$D/base" --database "$DB" --detailed-exitcode
  row "no-change plan" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$parse" 'parse floor (target <= 0.1x)')"
  fresh_floor
  measure drift "" "$BIN" plan -f "$D/drift" --database "$DB" --detailed-exitcode
  row "${DRIFT}%-drift plan" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$parse" 'parse floor (target <= 1.0x)')"
  measure drift-full "" "$BIN" plan -f "$D/drift" --database "$DB" --detailed-exitcode --no-incremental
  row "${DRIFT}%-drift plan, full read" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$parse" 'parse floor (target <= 1.0x)')"
  fresh_floor
  # The 10-login plan and its apply take a tenth of a second: they run alternately, at least
  # fifteen times each (see below), so the machine's drift
  # falls on both alike. The database copied back before each apply is flushed to disk
  # first: otherwise the apply's commit (an fsync of the file) writes out the whole copy,
  # 70-160 MB, and is timed doing so. The copies made before a plan are flushed too: the
  # plan then ran while the kernel could still be writing out the copy made just before it
  # (files shape, two runs half an hour apart: 0.168 s, then 0.157 s with the copy flushed;
  # by hand, flushed, 0.14 s).
  # The apply runs as in CI, where variables name the commit (GIT_COMMIT here; GITHUB_SHA
  # on GitHub) and who applies (USER here; GITHUB_ACTOR on GitHub, and USER=runner too).
  # Without them, portico asks git for the commit, whether the manifests differ from it
  # (`git status`, which reads every file's stat data again) and, when no user variable is
  # set either (as in some containers), git's author (`git var`, an exec of git beside the
  # hashing: about 1 ms): measured too, with the environment as it is.
  # Thirty-one alternations (REPEAT more if larger): with nine (five left a ratio 0.4 off),
  # the same build's ratio moved between 1.16x and 1.37x from one run to the next on this
  # machine; with fifteen, the apply measured right after its plan came out 1.28x while its
  # twin measured after it, doing more (git asked), came out 1.17x, and by hand, twenty-one
  # alternations right after, 1.12x and 1.17x. The order alternates too.
  cp "$D/live.db" "$D/before-pr.db" && sync "$D/before-pr.db"
  commit=$(git -C "$D/pr" rev-parse HEAD)
  ALTERNATIONS=$(( REPEAT > 31 ? REPEAT : 31 ))
  pr_times=(); apply_times=(); local_times=(); pr_kb=0; apply_kb=0
  pr_plan_once() {
    REPEAT=1 measure pr "" "$BIN" plan -f "$D/pr" --database "$DB" --detailed-exitcode
    pr_times+=("$SECONDS_TAKEN"); if [ "$KB" -gt "$pr_kb" ]; then pr_kb=$KB; fi
  }
  pr_applies_once() {
    # The variable is given to the apply itself: through `env`, the apply paid an exec more
    # than its plan (0.75 ms, 3% of a 22 ms plan).
    USER=ci GIT_COMMIT="$commit" REPEAT=1 measure pr-apply "cp '$D/before-pr.db' '$D/live.db' && sync '$D/live.db'" \
      "$BIN" apply -f "$D/pr" --auto-approve --database "$DB"
    apply_times+=("$SECONDS_TAKEN"); if [ "$KB" -gt "$apply_kb" ]; then apply_kb=$KB; fi
    REPEAT=1 measure pr-apply-local "cp '$D/before-pr.db' '$D/live.db' && sync '$D/live.db'" \
      "$BIN" apply -f "$D/pr" --auto-approve --database "$DB"
    local_times+=("$SECONDS_TAKEN")
    cp "$D/before-pr.db" "$D/live.db" && sync "$D/live.db"
  }
  for i in $(seq "$ALTERNATIONS"); do
    # The plan first, then after its applies, in turn: whatever the step before leaves
    # behind (the kernel's writes of a copy, a warmer cache) falls on both alike.
    if (( i % 2 )); then pr_plan_once; pr_applies_once; else pr_applies_once; pr_plan_once; fi
  done
  pr_plan=$(printf '%s\n' "${pr_times[@]}" | median)
  pr_apply=$(printf '%s\n' "${apply_times[@]}" | median)
  pr_local=$(printf '%s\n' "${local_times[@]}" | median)
  row "10-login change: plan" "$pr_plan" "$pr_kb" "$(ratio "$pr_plan" "$parse" 'parse floor (target <= 0.1x)')"
  row "10-login change: apply" "$pr_apply" "$apply_kb" "$(ratio "$pr_apply" "$pr_plan" 'its plan (target <= 1.2x)')"
  row "10-login apply, git asked (no CI)" "$pr_local" "$apply_kb" "$(ratio "$pr_local" "$pr_plan" 'its plan, for information')"
  # What the disk alone makes an apply pay: the same kind of write (ten logins changed) by
  # the SQLite library itself, timed from BEGIN IMMEDIATE to the end of its COMMIT, on the
  # same copy, in the same (rollback-journal, fully synchronous) mode. The commit syncs the
  # journal, its folder, the journal's header and the file, then unlinks the journal: on a
  # disk whose flush takes a millisecond it is most of a 10-login apply's 20%.
  commit_floor=$(python3 - "$D" "$ALTERNATIONS" <<'PY'
import shutil, sqlite3, statistics, subprocess, sys, time
d, n = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(n):
    shutil.copyfile(f"{d}/before-pr.db", f"{d}/commit-floor.db")
    subprocess.run(["sync", f"{d}/commit-floor.db"], check=True)
    db = sqlite3.connect(f"{d}/commit-floor.db", isolation_level=None)
    db.execute("PRAGMA synchronous = FULL")
    start = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE logins SET name = coalesce(name, '') || '.' WHERE rowid IN (SELECT rowid FROM logins LIMIT 10)")
    db.execute("COMMIT")
    times.append(time.perf_counter() - start)
    db.close()
print(f"{statistics.median(times):.4f}")
PY
)
  rm -f "$D/commit-floor.db"
  over_ms=$(python3 -c "print(f'{($pr_apply - $pr_plan) * 1000:.1f}')")
  floor_ms=$(python3 -c "print(f'{$commit_floor * 1000:.1f}')")
  rows+=("$(printf '| %-34s | %8.1f ms | %11s | %s |' "10-login apply over its plan" "$over_ms" "" "of which a durable commit alone takes $floor_ms ms on this disk (SQLite by itself), for information")")
  if [ -n "${POSTGRES_URL:-}" ]; then
    PG="${POSTGRES_URL%/*}/portico_scale"
    measure pg-apply "psql -q '$POSTGRES_URL' -c 'DROP DATABASE IF EXISTS portico_scale' -c 'CREATE DATABASE portico_scale' >/dev/null 2>&1" \
      "$BIN" apply -f "$D/base" --auto-approve --database "$PG"
    row "PostgreSQL first apply" "$SECONDS_TAKEN" "$KB" "$(ratio "$SECONDS_TAKEN" "$apply_s" "SQLite (target <= 1.5x)")"
    # Against SQLite's full read measured alternately with it, here: right after a large
    # apply the machine stays slower for a while (the server's and the kernel's writes of
    # what it committed), which slowed SQLite's plans as much as PostgreSQL's when both were
    # run then; the SQLite plan measured earlier, in a quiet minute, made a poor yardstick.
    pg_times=(); sq_times=(); pg_kb=0
    for _ in $(seq "$REPEAT"); do
      REPEAT=1 measure pg-plan-sqlite "" "$BIN" plan -f "$D/base" --database "$DB" --detailed-exitcode --no-incremental
      sq_times+=("$SECONDS_TAKEN")
      REPEAT=1 measure pg-plan "" "$BIN" plan -f "$D/base" --database "$PG" --detailed-exitcode --no-incremental
      pg_times+=("$SECONDS_TAKEN"); [ "$KB" -gt "$pg_kb" ] && pg_kb=$KB
    done
    pg_plan=$(printf '%s\n' "${pg_times[@]}" | median)
    sq_plan=$(printf '%s\n' "${sq_times[@]}" | median)
    row "PostgreSQL no-change plan, full read" "$pg_plan" "$pg_kb" "$(ratio "$pg_plan" "$sq_plan" "SQLite, measured alternately (target <= 1.2x)")"
    # As on SQLite, alternately; the account is put back by applying the base files again.
    pr_times=(); apply_times=(); pr_kb=0; apply_kb=0
    pg_plan_once() {
      REPEAT=1 measure pg-pr "" "$BIN" plan -f "$D/pr" --database "$PG" --detailed-exitcode
      pr_times+=("$SECONDS_TAKEN"); if [ "$KB" -gt "$pr_kb" ]; then pr_kb=$KB; fi
    }
    pg_apply_once() {
      USER=ci GIT_COMMIT="$commit" REPEAT=1 measure pg-pr-apply "" "$BIN" apply -f "$D/pr" --auto-approve --database "$PG"
      apply_times+=("$SECONDS_TAKEN"); if [ "$KB" -gt "$apply_kb" ]; then apply_kb=$KB; fi
      "$BIN" apply -f "$D/base" --auto-approve --database "$PG" > /dev/null
    }
    for i in $(seq "$ALTERNATIONS"); do
      if (( i % 2 )); then pg_plan_once; pg_apply_once; else pg_apply_once; pg_plan_once; fi
    done
    pr_plan=$(printf '%s\n' "${pr_times[@]}" | median)
    pr_apply=$(printf '%s\n' "${apply_times[@]}" | median)
    row "PostgreSQL 10-login change: plan" "$pr_plan" "$pr_kb" "$(ratio "$pr_plan" "$parse" 'parse floor (target <= 0.1x)')"
    row "PostgreSQL 10-login change: apply" "$pr_apply" "$apply_kb" "$(ratio "$pr_apply" "$pr_plan" 'its plan (target <= 1.2x)')"
    psql -q "$POSTGRES_URL" -c "DROP DATABASE portico_scale" >/dev/null
  fi
  history=$(sqlite3 "$D/live.db" "SELECT length(CAST(changes AS BLOB)) + coalesce(length(changes_z), 0) FROM applies WHERE id = 1")
  size=$(du -m "$D/live.db" | cut -f1)
  echo
  echo "### $SHAPE shape: $N customers ($logins logins, $(du -sh --exclude=.git "$D/base" | cut -f1) of YAML)"
  echo
  echo "each step: the median wall time of $REPEAT runs, the largest peak RSS"
  echo "floors: parse $(printf '%s s, ' "${floors[@]}" | sed 's/, $//') (one thread, median of $REPEAT, measured before each step), sqlite3 load ${load} s, a durable 10-login commit $(python3 -c "print(f'{$commit_floor * 1000:.1f}')") ms; database ${size} MiB, history of the first apply $((history / 1024)) KiB"
  echo
  echo "| step | wall | peak RSS | ratio |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  rm -rf "$D"
done
done

# Email delivery and adoption have their own benchmarks (benches/email.sh, benches/adopt.sh:
# their own servers and accounts); their figures join the table below (EXTRAS=0 skips them).
EXTRAS_ROWS="$WORK/extras"
EXTRAS_FAILED=0
: > "$EXTRAS_ROWS"
if [ "${EXTRAS:-1}" = 1 ]; then
  largest=${SIZES[${#SIZES[@]}-1]}
  # A failed extra is shown and marked in the table; the shapes' figures are still summed up,
  # and the script exits non-zero at the end.
  if ! out=$(bash benches/email.sh 2>&1); then
    echo "$out"; EXTRAS_FAILED=1
    echo "| | email delivery | **failed** (its output is above the table) | | |" >> "$EXTRAS_ROWS"
  fi
  echo "$out" | awk '/^== .*: portico notify/ { engine = $2; sub(":", "", engine) }
    /messages\/s/ { printf "| %s messages | email delivery, %s, 4 connections | %s msg/s (target >= 200) | | |\n", $1, engine, $(NF - 1) }' >> "$EXTRAS_ROWS"
  if out=$(bash benches/adopt.sh "$largest" 2>&1); then
    mib() { echo "$out" | awk -F'|' -v step="$1" 'index($2, step) { gsub(/[ MiB]/, "", $4); print $4 }'; }
    import=$(mib "import-csv"); after=$(mib "plan after the import")
    ratio=$(awk -v a="$import" -v b="$after" 'BEGIN { printf "%.2f", a / b }')
    echo "| $largest | import-csv of every customer: peak RSS | ${ratio}x the plan after it (target <= 1.0x) | adopt | $import MiB |" >> "$EXTRAS_ROWS"
  else
    echo "$out"; EXTRAS_FAILED=1
    echo "| $largest | import-csv of every customer | **failed** (its output is above the table) | | |" >> "$EXTRAS_ROWS"
  fi
fi

# The worst ratio of each step over the shapes, per size.
echo
echo "### the worst shape for each step"
python3 - "$WORST" <<'PY'
import sys
worst = {}
order = []
for line in open(sys.argv[1]):
    n, step, ratio, shape, mib = line.rstrip("\n").split("|")
    key = (int(n), step)
    if key not in worst:
        order.append(key)
    if key not in worst or float(ratio) > float(worst[key][0]):
        worst[key] = (ratio, shape, mib)
print()
print("| customers | step | worst ratio | shape | its peak RSS or size |")
print("|---|---|---|---|---|")
for key in order:
    ratio, shape, mib = worst[key]
    print(f"| {key[0]} | {key[1]} | {ratio}x | {shape} | {mib} MiB |")
PY
cat "$EXTRAS_ROWS"
exit "$EXTRAS_FAILED"
