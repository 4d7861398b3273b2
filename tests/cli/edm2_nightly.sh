#!/usr/bin/env bash
# edm2-nightly on two tiny trained runs (test-micro, 8x8) with a val-loss sweep of 3 EMA lengths on
# their own IDX data: the first pass sweeps each run's newest snapshot, a second pass does nothing
# (0 evaluated, 0 models), a new snapshot is swept alone on the next pass, a pass killed by SIGKILL
# in the middle of a sweep is completed by the next one (no duplicate row, no lost row), a held
# lock gives exit status 75; then bad input, each named in one line: a run with an empty
# snapshots/ (exit 1, the other runs still swept), a metric whose weights are missing (no row of
# that metric), a corrupt database (left byte for byte), configuration errors (exit 2).
# Needs: EDM2_NIGHTLY, EDM2_TRAIN (set by meson); /usr/bin/python3 (standard library only:
# sqlite3, zipfile); flock (util-linux) for the lock check (python's fcntl otherwise).
. "$(dirname "$0")/lib.sh"
: "${EDM2_NIGHTLY:?}" "${EDM2_TRAIN:?}" "${EDM2_PLOT:?}"
export EDM2_PLOT
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import sqlite3, zipfile' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with sqlite3 is not installed"
  exit 77
fi
W=$WORK
N=$EDM2_NIGHTLY
R=$W/runs
mkdir -p "$R"

# --- data, runs and configurations --------------------------------------------------------------
# 64 IDX images in 3 classes (as tests/cli/edm2_generate.sh); fd_dinov2 reference statistics as a
# pytorch-fid .npz (mu = 0, sigma = I, 1024-dimensional), written without numpy.
"$PY" "$(dirname "$0")/testdata.py" idx "$W/data" 64 3 || exit 1
"$PY" "$(dirname "$0")/testdata.py" npz-identity "$W/dino.npz" 1024 || exit 1

# 2Ki images of 8 per step with a snapshot every 1Ki: snapshots at 1Ki and 2Ki (and 0).
T=(--preset test-micro --batch 8 --rampup 64 --decay 64 --status 0 --snapshot 1Ki --checkpoint 0 --threads 1 --quiet)
train() { # train NAME DURATION: trains or resumes R/NAME
  if "$EDM2_TRAIN" "${T[@]}" --data "$W/data" --outdir "$R/$1" --duration "$2" >"$OUT" 2>"$ERR" &&
    [ -f "$R/$1/snapshots/snapshot-$(printf %012d $(($2)))".h5 ]; then
    ok "train $1 to $2"
  else
    not_ok "train $1 to $2" "edm2-train failed"
    echo "Bail out! no run to sweep"
    exit 1
  fi
}
train a 2048
train b 2048

cat >"$W/cfg.json" <<EOF
{"sweeps": [{"kind": "ema", "metric": "val-loss", "sigma_rel": "0.05,0.10,0.15", "num": 16,
             "val_data": "$W/data"}],
 "threads": 1}
EOF

check() { # check NAME COMMAND...: run a check and record it
  name=$1
  shift
  if "$@" >"$ERR" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}
# sql DB QUERY: one value (or rows, '|'-separated) of a query, read-only
sql() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for r in c.execute(sys.argv[2]): print("|".join(str(v) for v in r))
PYEOF
}
# rows RUN [WHERE]: the number of rows in RUN's database
rows() { sql "$R/$1/results.sqlite" "SELECT count(*) FROM results ${2:+WHERE $2}"; }
# dups RUN: rows sharing a unique key (none expected)
dups() {
  sql "$R/$1/results.sqlite" "SELECT run, metric, guidance, gnet, nimg, tensor_rule, sigma_rel, half_life, repeat,
    num, seed, count(*) FROM results GROUP BY run, metric, guidance, gnet, nimg, tensor_rule, sigma_rel, half_life,
    repeat, num, seed HAVING count(*) > 1"
}
is() { # is WHAT GOT WANT
  [ "$2" = "$3" ] || { echo "$1: got '$2', expected '$3'"; return 1; }
}
export -f is # for the bash -c checks
# last_end FIELD: that field of the log's last "end" line
last_end() {
  "$PY" - "$R/edm2-nightly.log" "$1" <<'PYEOF'
import json, sys
end = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["event"] == "end"][-1]
print(end[sys.argv[2]])
PYEOF
}

# --- passes -----------------------------------------------------------------------------------
expect "first pass" 0 "" -- "$N" --runs "$R" --config "$W/cfg.json"
check "first pass: 3 rows at 2Ki in each run" bash -c '
  is a "$1" 3 && is b "$2" 3 && is "a at 2048" "$3" 3 && grep -q "^a: 3 evaluated" "$4" && grep -q "^b: 3 evaluated" "$4"' _ \
  "$(rows a)" "$(rows b)" "$(rows a nimg=2048)" "$OUT"
check "first pass: log" bash -c 'is evaluated "$1" 6 && is models "$2" 6 && is exit "$3" 0 &&
  [ "$(grep -c "\"event\":\"figures\".*\"status\":\"done\"" "$4")" = 2 ]' _ \
  "$(last_end evaluated)" "$(last_end models)" "$(last_end exit)" "$R/edm2-nightly.log"
check "first pass: each run's report and figures" test -s "$R/a/report/index.html" -a -s "$R/b/report/index.html" \
  -a -s "$R/a/figures/loss.png"
report_time=$(stat -c %Y "$R/a/report/index.html")
check "lock file and log under DIR" test -f "$R/.edm2-nightly.lock" -a -s "$R/edm2-nightly.log"

expect "second pass" 0 "" -- "$N" --runs "$R" --config "$W/cfg.json"
check "second pass does nothing" bash -c 'is evaluated "$1" 0 && is models "$2" 0 && is skipped "$3" 6 &&
  is rows "$4$5" 33 && grep -q "^a: nothing to do" "$6" && grep -q "^b: nothing to do" "$6"' _ \
  "$(last_end evaluated)" "$(last_end models)" "$(last_end skipped)" "$(rows a)" "$(rows b)" "$OUT"
check "second pass: the report is not redrawn" test "$(stat -c %Y "$R/a/report/index.html")" = "$report_time"

train a 3072 # resumes: a new snapshot at 3Ki
expect "pass after a new snapshot" 0 "" -- "$N" --runs "$R" --config "$W/cfg.json"
check "only the new snapshot is swept" bash -c 'is "a at 3072" "$1" 3 && is a "$2" 6 && is b "$3" 3 &&
  is evaluated "$4" 3 && grep -q "^a: 3 evaluated.* at 3Ki" "$5" && grep -q "^b: nothing to do" "$5"' _ \
  "$(rows a nimg=3072)" "$(rows a)" "$(rows b)" "$(last_end evaluated)" "$OUT"

# --- killed mid-sweep -----------------------------------------------------------------------------
# 41 EMA lengths (seed 1: rows of their own). A helper waits for the first of them in a's database
# and takes SQLite's write lock, so that edm2-nightly blocks on its next row; it is killed there
# (SIGKILL: nothing of it runs after), then the next pass must add exactly what is missing.
sed -e 's/"0.05,0.10,0.15"/"0.050,0.055,...,0.250"/' -e 's/"num": 16/"num": 16, "seed": 1/' "$W/cfg.json" >"$W/kill.json"
"$PY" - "$R/a/results.sqlite" "$W/held" "$W/release" <<'PYEOF' &
import os, sqlite3, sys, time
db, held, release = sys.argv[1:4]
c = sqlite3.connect(db, isolation_level=None, timeout=60)
t0 = time.time()
while time.time() - t0 < 120:
    n = c.execute("SELECT count(*) FROM results WHERE seed = 1").fetchone()[0]
    if n > 0:
        c.execute("BEGIN IMMEDIATE")  # edm2-nightly's next row waits for this
        n = c.execute("SELECT count(*) FROM results WHERE seed = 1").fetchone()[0]
        open(held, "w").write("%d\n" % n)
        while not os.path.exists(release) and time.time() - t0 < 120: time.sleep(0.01)
        c.execute("ROLLBACK")
        sys.exit(0)
    time.sleep(0.001)
sys.exit(1)
PYEOF
holder=$!
"$N" --runs "$R" --config "$W/kill.json" >"$W/kill.out" 2>"$W/kill.err" &
victim=$!
for _ in $(seq 1 1200); do [ -s "$W/held" ] || ! kill -0 "$victim" 2>/dev/null && break; sleep 0.1; done
expect "lock held by a running edm2-nightly: exit 75" 75 "(pid $victim); try again later" -- \
  "$N" --runs "$R" --config "$W/cfg.json"
{ kill -9 "$victim"; wait "$victim"; } 2>/dev/null # no "Killed" notice from bash
killed=$?
left=$(find "$R/a/.sweep" -type f | wc -l)
touch "$W/release"
wait "$holder"
partial=$(rows a seed=1)
check "killed mid-sweep (SIGKILL with rows 1..40 of 41 written)" bash -c '
  is "exit status" "$1" 137 && [ "$2" -ge 1 ] && [ "$2" -lt 41 ] && is "rows of b" "$3" 0 ||
  { echo "exit $1, $2 rows in a, $3 in b"; exit 1; }' _ "$killed" "$partial" "$(rows b seed=1)"
expect "pass after the kill" 0 "" -- "$N" --runs "$R" --config "$W/kill.json"
check "no row lost, none duplicated" bash -c 'is a "$1" 41 && is b "$2" 41 && is "duplicates" "$3$4" "" &&
  is evaluated "$5" $((82 - $6)) && is "other rows" "$7$8" 63' _ \
  "$(rows a seed=1)" "$(rows b seed=1)" "$(dups a)" "$(dups b)" "$(last_end evaluated)" "$partial" \
  "$(rows a seed=0)" "$(rows b seed=0)"
check "the killed pass's temporary models are gone" bash -c 'is "files in a/.sweep before" "$(($1 > 0))" 1 &&
  is "files in a/.sweep after" "$(find "$2" -type f | wc -l)" 0' _ "$left" "$R/a/.sweep"
expect "pass after the kill, again" 0 "" -- "$N" --runs "$R" --config "$W/kill.json"
check "then nothing to do" bash -c 'is evaluated "$1" 0 && is models "$2" 0' _ "$(last_end evaluated)" "$(last_end models)"

# "at": "all" sweeps every snapshot time whose rows are missing (here 1Ki); a time not reached yet
# is pending, not a failure.
sed 's/"num": 16,/"num": 16, "at": "all",/' "$W/cfg.json" >"$W/all.json"
expect "at all" 0 "" -- "$N" --runs "$R" --config "$W/all.json"
check "at all: the missing time only" bash -c 'is "a at 1024" "$1" 3 && is "b at 1024" "$2" 3 && is evaluated "$3" 6 &&
  is models "$4" 6 && is skipped "$5" 9' _ \
  "$(rows a nimg=1024)" "$(rows b nimg=1024)" "$(last_end evaluated)" "$(last_end models)" "$(last_end skipped)"
sed 's/"num": 16,/"num": 16, "at": "64Ki",/' "$W/cfg.json" >"$W/later.json"
expect "at a time not reached yet" 0 "" -- "$N" --runs "$R" --config "$W/later.json"
check "at a time not reached yet: pending" bash -c 'is evaluated "$1" 0 && grep -q "\"status\":\"pending\"" "$2" &&
  grep -q "^a: nothing to do" "$3"' _ "$(last_end evaluated)" "$R/edm2-nightly.log" "$OUT"

# --- the lock ---------------------------------------------------------------------------------
if command -v flock >/dev/null; then
  exec 9>>"$R/.edm2-nightly.lock"
  flock -n 9 || not_ok "take the lock" "flock failed"
  expect "lock held: exit 75" 75 "try again later" -- "$N" --runs "$R" --config "$W/cfg.json"
  exec 9>&-
else
  "$PY" -c 'import fcntl, os, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(60)' \
    "$R/.edm2-nightly.lock" "$W/locked" &
  locker=$!
  for _ in $(seq 1 100); do [ -e "$W/locked" ] && break; sleep 0.1; done
  expect "lock held: exit 75" 75 "try again later" -- "$N" --runs "$R" --config "$W/cfg.json"
  kill "$locker"
  wait "$locker" 2>/dev/null
fi
check "lock held: nothing printed" bash -c 'is "stdout" "$(cat "$1")" "" && is evaluated "$2" 0' _ \
  "$OUT" "$(last_end evaluated)"
expect "lock released" 0 "" -- "$N" --runs "$R" --config "$W/cfg.json"

# --- bad input --------------------------------------------------------------------------------
# A run whose snapshots/ is empty fails, named; b's new snapshot is still swept.
mkdir -p "$R/c/snapshots"
train b 3072
expect "run without snapshots" 1 "c/snapshots: no snapshots" -- "$N" --runs "$R" --config "$W/cfg.json"
check "run without snapshots: the others still swept" bash -c 'is "b at 3072" "$1" 3 &&
  grep -q "^b: 3 evaluated" "$2" && grep -q "^a: nothing to do" "$2" && grep -q "^c: FAILED" "$2" &&
  ! test -e "$3" && is failed "$4" 1 && is exit "$5" 1' _ \
  "$(rows b nimg=3072)" "$OUT" "$R/c/results.sqlite" "$(last_end failed)" "$(last_end exit)"
rm -r "$R/c"

# A metric whose weights are missing: that sweep fails naming the weights file, with no row; the
# run's other sweep is done.
mkdir -p "$W/R2" "$W/noweights"
cp -r "$R/a" "$W/R2/a"
cat >"$W/weights.json" <<EOF
{"sweeps": [
  {"kind": "ema", "metric": "fd_dinov2", "sigma_rel": "0.10", "num": 4, "ref": "dino.npz", "weights_dir": "noweights"},
  {"kind": "ema", "metric": "val-loss", "sigma_rel": "0.20", "num": 16, "val_data": "data"}],
 "threads": 1}
EOF
expect "weights missing" 1 "noweights/dinov2_vitl14.safetensors" -- "$N" --runs "$W/R2" --config "$W/weights.json"
check "weights missing: no row of the metric, the other sweep done" bash -c 'is fd_dinov2 "$1" 0 && is "val-loss 0.20" "$2" 1 &&
  grep -q "^a: FAILED" "$3"' _ \
  "$(sql "$W/R2/a/results.sqlite" "SELECT count(*) FROM results WHERE metric = 'fd_dinov2'")" \
  "$(sql "$W/R2/a/results.sqlite" "SELECT count(*) FROM results WHERE sigma_rel = 0.2 AND seed = 0")" "$OUT"

# A corrupt database is named and left as it is; the other run goes on.
for f in "$R"/b/results.sqlite*; do mv "$f" "$f.good"; done
head -c 8192 /dev/urandom >"$R/b/results.sqlite"
before=$(cksum <"$R/b/results.sqlite")
expect "corrupt database" 1 "b/results.sqlite" -- "$N" --runs "$R" --config "$W/cfg.json"
check "corrupt database: not overwritten" bash -c 'is cksum "$1" "$2" && ! test -e "$3-wal" && ! test -e "$3-shm" &&
  grep -q "^a: nothing to do" "$4" && grep -q "^b: FAILED" "$4"' _ \
  "$before" "$(cksum <"$R/b/results.sqlite")" "$R/b/results.sqlite" "$OUT"
rm "$R/b/results.sqlite"
for f in "$R"/b/results.sqlite*.good; do mv "$f" "${f%.good}"; done

# Configuration errors: exit status 2, the key and the file named, nothing done.
bad_config() { # bad_config NAME NEEDLE JSON
  printf '%s\n' "$3" >"$W/bad.json"
  expect "$1" 2 "$2" -- "$N" --runs "$R" --config "$W/bad.json" &&
    { grep -qF "bad.json" "$ERR" || not_ok "$1: file named" "stderr lacks bad.json"; }
}
bad_config "unknown key in a sweep" "unknown key 'sigma_rels'" \
  '{"sweeps": [{"kind": "ema", "metric": "val-loss", "sigma_rels": "0.1"}]}'
bad_config "unknown top-level key" "unknown key 'treads'" '{"treads": 2}'
bad_config "missing required key" "'metric' missing" '{"sweeps": [{"kind": "ema", "sigma_rel": "0.1"}]}'
bad_config "wrong type" "'num' must be an integer" \
  '{"sweeps": [{"kind": "ema", "metric": "val-loss", "sigma_rel": "0.1", "num": "16"}]}'
bad_config "bad EMA list" "sigma_rel" '{"sweeps": [{"kind": "ema", "metric": "val-loss", "sigma_rel": "0.1,x"}]}'
bad_config "not JSON" "not valid JSON" '{"sweeps": ['
expect "missing config file" 2 "nope.json" -- "$N" --runs "$R" --config "$W/nope.json"
expect "no --runs" 2 "--runs" -- "$N"
expect "--runs not a directory" 2 "nope" -- "$N" --runs "$W/nope"
expect "--help" 0 "" -- "$N" --help
check "--help documents the exit statuses" grep -q "75 another edm2-nightly holds the lock" "$OUT"

# After all this, the runs are up to date and untouched by the failures.
expect "final pass" 0 "" -- "$N" --runs "$R" --config "$W/cfg.json"
check "final pass: nothing to do, no duplicates" bash -c 'is evaluated "$1" 0 && is dups "$2$3" "" &&
  is rows "$4 $5" "50 50"' _ "$(last_end evaluated)" "$(dups a)" "$(dups b)" "$(rows a)" "$(rows b)"

finish
