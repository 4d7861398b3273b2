#!/usr/bin/env bash
# edm2-sweep end to end on a tiny trained run (test-micro, 8x8, snapshots at 1Ki, 2Ki, 3Ki) with
# val-loss on its own IDX data: an EMA sweep stores one row per EMA length and a rerun reconstructs
# and evaluates nothing; --redo, --at all, evolution --every, per-tensor (one sweep per tensor,
# the base point included), profile-accuracy, results --json/--csv, two sweeps writing one
# database at once, mpirun -np 2 = one process; a fid sweep with the detectors' hash weights; then
# one clear line and exit status 1 for bad input (a run without snapshots, missing weights with no
# rows added, a corrupt database left byte for byte, a time without a snapshot, globs that match
# nothing, val-loss without held-out data). Needs: EDM2_SWEEP, EDM2_TRAIN, EDM2_METRICS,
# HASH_WEIGHTS, EDM2C_MPI (set by meson); /usr/bin/python3 (standard library).
. "$(dirname "$0")/lib.sh"
: "${EDM2_SWEEP:?}" "${EDM2_TRAIN:?}" "${EDM2_METRICS:?}" "${HASH_WEIGHTS:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import sqlite3, json' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with sqlite3 is not installed"
  exit 77
fi
W=$WORK
S=$EDM2_SWEEP

# 64 IDX images of 8x8 in 3 classes; fd_dinov2 reference statistics (mu = 0, sigma = I).
"$PY" "$(dirname "$0")/testdata.py" idx "$W/data" 64 3 || exit 1
"$PY" "$(dirname "$0")/testdata.py" npz-identity "$W/dino.npz" 1024 || exit 1
if "$EDM2_TRAIN" --preset test-micro --batch 8 --rampup 64 --decay 64 --status 0 --snapshot 1Ki --checkpoint 0 \
  --threads 1 --quiet --data "$W/data" --outdir "$W/run" --duration 3Ki >"$OUT" 2>"$ERR"; then
  ok "train a run with snapshots at 1Ki, 2Ki, 3Ki"
else
  not_ok "train" "edm2-train failed"
  echo "Bail out! no run to sweep"
  exit 1
fi
RUN=$W/run
DB=$RUN/results.sqlite
V=(--val-data "$W/data" --num 16 --threads 1)
sql() { # sql DB QUERY: the rows of a read-only query, '|'-separated
  "$PY" - "$1" "$2" <<'PYEOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for r in c.execute(sys.argv[2]): print("|".join(str(v) for v in r))
PYEOF
}
count() { sql "$DB" "SELECT count(*) FROM results WHERE $1"; }
is() { # is NAME GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi
}

expect "ema sweep" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.05,0.10,0.15 "${V[@]}"
is "3 rows at 3Ki" "$(count "metric = 'val-loss' AND nimg = 3072 AND tensor_rule = ''")" 3
grep -q "3 evaluated, 0 already in the database, 3 models reconstructed" "$ERR" && ok "summary line" || not_ok "summary" "$(cat "$ERR")"
grep -q "^best .* val-loss " "$OUT" && ok "best line printed" || not_ok "best line" "$(cat "$OUT")"
expect "rerun" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.05,0.10,0.15 "${V[@]}" --quiet
grep -q "0 evaluated, 3 already in the database, 0 models reconstructed" "$ERR" && ok "a rerun does nothing" || not_ok "rerun" "$(cat "$ERR")"
before=$(sql "$DB" "SELECT value FROM results WHERE nimg = 3072 ORDER BY sigma_rel")
expect "--redo" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.05,0.10,0.15 "${V[@]}" --quiet --redo
grep -q "3 evaluated, 0 already" "$ERR" && ok "--redo evaluates again" || not_ok "redo" "$(cat "$ERR")"
is "--redo: the same values (deterministic), no duplicates" "$(sql "$DB" "SELECT value FROM results WHERE nimg = 3072 ORDER BY sigma_rel")" "$before"
expect "--at all" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.05,0.10 --at all "${V[@]}" --quiet
is "rows at every time" "$(sql "$DB" "SELECT nimg, count(*) FROM results WHERE tensor_rule = '' GROUP BY nimg ORDER BY nimg" | tr '\n' ' ')" "1024|2 2048|2 3072|3 "
expect "the same lengths from another list" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.025,0.050,...,0.150 "${V[@]}" --quiet
grep -q "3 evaluated, 3 already in the database, 3 models reconstructed" "$ERR" && ok "lists are keyed by value (0.05, 0.10, 0.15 again from '...')" || not_ok "list keys" "$(cat "$ERR")"
expect "evolution" 0 "" -- "$S" evolution --run "$RUN" --sigma-rel 0.05,0.15 --every 2Ki "${V[@]}" --quiet
is "evolution: 2Ki gets 0.15" "$(count "nimg = 2048 AND sigma_rel = 0.15")" 1
expect "per-tensor" 0 "" -- "$S" per-tensor --run "$RUN" --base-sigma 0.10 --sigma-rel 0.05,0.15 \
  --tensors 'unet.out_conv.weight,unet.enc.*conv_res1.weight' "${V[@]}" --quiet
ntensors=$(sql "$DB" "SELECT count(DISTINCT tensor_rule) FROM results WHERE tensor_rule != ''")
if [ "$ntensors" -ge 2 ] && [ "$(count "tensor_rule != ''")" -eq $((ntensors * 3)) ]; then
  ok "per-tensor: $ntensors tensors x 3 points (base included)"
else
  not_ok "per-tensor rows" "$ntensors tensors, $(count "tensor_rule != ''") rows"
fi
expect "per-tensor again" 0 "" -- "$S" per-tensor --run "$RUN" --base-sigma 0.10 --sigma-rel 0.05,0.15 \
  --tensors 'unet.out_conv.weight,unet.enc.*conv_res1.weight' "${V[@]}" --quiet
grep -q "0 evaluated, $((ntensors * 3)) already in the database, 0 models reconstructed" "$ERR" &&
  ok "per-tensor rerun: nothing reconstructed" || not_ok "per-tensor rerun" "$(cat "$ERR")"
base=$(sql "$DB" "SELECT value FROM results WHERE tensor_rule = '' AND nimg = 3072 AND sigma_rel = 0.1")
is "per-tensor: the base point equals the global row" "$(sql "$DB" "SELECT DISTINCT value FROM results WHERE tensor_rule != '' AND sigma_rel = 0.1")" "$base"
expect "profile-accuracy" 0 "" -- "$S" profile-accuracy --run "$RUN" --sigma-rel 0.05,0.15
if grep -q "every 1" "$OUT" && [ "$(count "metric = 'profile-error'")" -ge 4 ] &&
  [ "$(count "metric = 'profile-error' AND sigma_rel = 0.05 AND seed = 1 AND value < 1e-9")" = 1 ]; then
  ok "profile-accuracy: a stored profile is exact, rows stored"
else
  not_ok "profile-accuracy" "$(cat "$OUT")"
fi
expect "results --json" 0 "" -- "$S" results --run "$RUN" --json
if "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["rows"]
assert len(rows) == int(sys.argv[2]), len(rows)
assert {"run", "nimg", "sigma_rel", "half_life", "tensor_rule", "guidance", "metric", "value", "num", "seed", "repeat"} <= set(rows[0])
assert any(b["metric"] == "val-loss" for b in d["best"])
' "$OUT" "$(count 1)" 2>"$ERR"; then ok "results --json: every row, best entries"; else not_ok "results json" "$(tail -1 "$ERR")"; fi
expect "results --csv" 0 "" -- "$S" results --run "$RUN" --csv
is "csv: header + rows" "$(wc -l <"$OUT")" "$(($(count 1) + 1))"

# Two sweeps writing one database at once.
"$S" ema --run "$RUN" --sigma-rel 0.20,0.25 --at 1Ki "${V[@]}" --quiet >"$W/c1.out" 2>&1 &
p1=$!
"$S" ema --run "$RUN" --sigma-rel 0.20,0.25 --at 2Ki "${V[@]}" --quiet >"$W/c2.out" 2>&1 &
p2=$!
if wait $p1 && wait $p2 && [ "$(count "sigma_rel >= 0.2 AND tensor_rule = ''")" = 4 ]; then
  ok "two concurrent sweeps: all rows"
else
  not_ok "concurrent sweeps" "$(cat "$W/c1.out" "$W/c2.out" | tail -2)"
fi

# Processes: val-loss models shared between 2 ranks give the rows of one process.
if [ "${EDM2C_MPI:-0}" = 1 ] && command -v mpirun >/dev/null 2>&1 && mpirun --version 2>/dev/null | grep -q "Open MPI"; then
  MPIRUN=(mpirun -q --oversubscribe)
  if [ "$(id -u)" -eq 0 ]; then
    MPIRUN+=(--allow-run-as-root)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  expect "mpirun -np 2" 0 "" -- "${MPIRUN[@]}" -np 2 "$S" ema --run "$RUN" --sigma-rel 0.05,0.10,0.15 "${V[@]}" --quiet --db "$W/mpi.sqlite"
  is "2 processes = 1" "$(sql "$W/mpi.sqlite" "SELECT value FROM results ORDER BY sigma_rel")" "$before"
else
  echo "ok # SKIP mpirun check: no MPI build or no Open MPI mpirun"
fi

# fid with the hash weights (a stand-in for the real ones).
export EDM2C_WEIGHTS_DIR=$W/weights
mkdir -p "$W/weights"
"$HASH_WEIGHTS" fid "$W/weights/inception-2015-12-05.safetensors" || exit 1
expect "reference statistics" 0 "" -- "$EDM2_METRICS" ref --data "$W/data" --num 6 --metrics fid --dest "$W/ref.h5" --quiet
expect "fid sweep" 0 "" -- "$S" ema --run "$RUN" --sigma-rel 0.05,0.10 --metric fid --ref "$W/ref.h5" --num 3 --steps 2 --threads 1 --quiet
is "fid rows" "$(count "metric = 'fid' AND num = 3 AND value > 0")" 2

# Bad input.
rows=$(count 1)
mkdir -p "$W/empty/snapshots"
expect "a run without snapshots" 1 "$W/empty/snapshots: no snapshots" -- "$S" ema --run "$W/empty" --sigma-rel 0.1 "${V[@]}"
expect "missing weights" 1 "the fd_dinov2 weights are missing: $W/weights/dinov2_vitl14.safetensors does not exist" -- \
  "$S" ema --run "$RUN" --sigma-rel 0.25 --metric fd_dinov2 --ref "$W/dino.npz" --num 3 --threads 1 --quiet
is "missing weights: no rows added" "$(count 1)" "$rows"
expect "no such time" 1 "--at 5Ki: $RUN/snapshots has no snapshot at 5120 images" -- "$S" ema --run "$RUN" --sigma-rel 0.1 --at 5Ki "${V[@]}"
expect "globs matching nothing" 1 "--tensors 'nothing.*' matches no parameter" -- \
  "$S" per-tensor --run "$RUN" --base-sigma 0.1 --sigma-rel 0.05 --tensors 'nothing.*' "${V[@]}" --quiet
expect "val-loss without held-out data" 1 "val-loss needs held-out data, --val-data PATH" -- \
  "$S" ema --run "$RUN" --sigma-rel 0.12 --num 16
head -c 4096 /dev/urandom >"$W/corrupt.sqlite"
sum=$(cksum <"$W/corrupt.sqlite")
expect "a corrupt database" 1 "$W/corrupt.sqlite" -- "$S" ema --run "$RUN" --sigma-rel 0.12 "${V[@]}" --db "$W/corrupt.sqlite"
is "the corrupt database is left as it was" "$(cksum <"$W/corrupt.sqlite")" "$sum"
expect "usage: no --sigma-rel" 2 "" -- "$S" ema --run "$RUN"
if [ -e "$RUN/.sweep" ]; then not_ok "no models left behind" "$(ls -R "$RUN/.sweep")"; else ok "no models left behind"; fi
finish
