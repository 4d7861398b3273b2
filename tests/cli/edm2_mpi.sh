#!/usr/bin/env bash
# edm2-train data parallel under Open MPI's mpirun (docs/training.md, "Data parallel (MPI)"): two
# processes sharing each step train what one process trains, up to the order of gradient sums;
# rank 0 alone writes and prints; a batch that does not split is refused in one line; a failure
# on rank 0 and a signal seen by one process stop every process together. Needs: EDM2_TRAIN and
# EDM2C_MPI (set by meson); mpirun (Open MPI); /usr/bin/python3 with h5py and numpy.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if [ "${EDM2C_MPI:-0}" != 1 ]; then
  echo "1..0 # SKIP edm2-train was built without MPI (install libopenmpi-dev, then meson setup again)"
  exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "1..0 # SKIP mpirun is not installed (Debian: openmpi-bin)"
  exit 77
fi
if ! mpirun --version 2>/dev/null | grep -q "Open MPI"; then
  echo "1..0 # SKIP this test drives Open MPI's mpirun; $(command -v mpirun) is another one"
  exit 77
fi
if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with h5py and numpy is not installed"
  exit 77
fi
MPIRUN=(mpirun -q --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then
  MPIRUN+=(--allow-run-as-root)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if ! "${MPIRUN[@]}" -np 2 true >"$OUT" 2>"$ERR"; then
  echo "1..0 # SKIP mpirun cannot start 2 processes here: $(head -n 1 "$ERR")"
  exit 77
fi
W=$WORK

# The dataset of tests/cli/edm2_train.sh: 64 images of 8x8 in three classes, gzip IDX.
"$PY" - "$W" <<'PYEOF'
import gzip, math, os, struct, sys
w = sys.argv[1]
def write(d, n):
    os.makedirs(d, exist_ok=True)
    img = bytearray(struct.pack(">IIII", 0x803, n, 8, 8))
    lab = bytearray(struct.pack(">II", 0x801, n))
    for i in range(n):
        c = i % 3
        for y in range(8):
            for x in range(8):
                img.append(int(255 * math.exp(-((x - 2 - 2 * c) ** 2 + (y - 3) ** 2) / 3)))
    lab += bytes(i % 3 for i in range(n))
    with gzip.open(d + "/train-images-idx3-ubyte.gz", "wb") as f: f.write(img)
    with gzip.open(d + "/train-labels-idx1-ubyte.gz", "wb") as f: f.write(lab)
write(w + "/data", 64)
PYEOF

# 128 steps of 8 images (4 per process), dropout on so that the per-image dropout streams count.
T=(--preset test-micro --data "$W/data" --batch 8 --rampup 64 --decay 64 --status 128 --snapshot 1Ki --checkpoint 1Ki
  --threads 1 --duration 1Ki --config '{"dropout": 0.1}')

one=$W/one
mpi=$W/mpi
expect "one process" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --quiet --outdir "$one"
expect "mpirun -np 2" 0 "" -- "${MPIRUN[@]}" -np 2 "$EDM2_TRAIN" "${T[@]}" --outdir "$mpi"

# Rank 0 alone prints: one header, one status line per interval, nothing on stderr.
if [ "$(grep -c '^# edm2-train' "$OUT")" -eq 1 ] && [ "$(grep -c '^kimg' "$OUT")" -eq 9 ] &&
  grep -q "2 processes of 4 images" "$OUT" && [ ! -s "$ERR" ]; then
  ok "only rank 0 prints: one header, 9 status lines, empty stderr"
else
  not_ok "only rank 0 prints: one header, 9 status lines, empty stderr" "$(head -c 300 "$OUT")"
fi

# Rank 0 alone writes: the same files as one process, no temporaries, one log line per interval.
if [ "$(cd "$one" && find . | LC_ALL=C sort)" = "$(cd "$mpi" && find . | LC_ALL=C sort)" ] &&
  "$PY" - "$mpi/log.jsonl" >"$ERR" 2>&1 <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["nimg"] for l in lines] == list(range(0, 1025, 128)), [l["nimg"] for l in lines]
PYEOF
then
  ok "only rank 0 writes: the single run's files, one log.jsonl line per interval"
else
  not_ok "only rank 0 writes: the single run's files, one log.jsonl line per interval" \
    "$(cd "$mpi" && find . | tr '\n' ' ') $(cat "$ERR")"
fi

# Same images, σ, noise and dropout masks in both; only the order of gradient sums differs (the
# two halves summed by the all-reduce, against one accumulation). Measured over seeds 0-3 at
# 1Ki images: float32 weights NMSE 5e-14 .. 7e-14 (as large as --threads 2 against 1, which also
# changes only the summation order), float16 snapshot NMSE 1.0e-10 .. 1.6e-10 with at most one
# float16 step (max rel 9.8e-4 with a 1e-2 floor), log losses within 3e-7. Tolerances ~10x
# above; a process drawing wrong noise or dropout masks gives NMSE ~1e-3.
if "$PY" - "$one" "$mpi" >"$ERR" 2>&1 <<'PYEOF'
import h5py, json, numpy as np, sys
a, b = sys.argv[1], sys.argv[2]
def tensors(g):
    out = []
    g.visititems(lambda k, o: out.append(k) if isinstance(o, h5py.Dataset) else None)
    return sorted(out)
def compare(pa, pb, group):  # NMSE over all tensors, and the worst |x - y| / max(|x|, 1e-2)
    num = den = worst = 0.0
    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        names = tensors(fa[group])
        assert names and names == tensors(fb[group]), "tensor lists differ"
        for k in names:
            x = np.asarray(fa[group][k], np.float64)
            y = np.asarray(fb[group][k], np.float64)
            num += ((x - y) ** 2).sum()
            den += (x ** 2).sum()
            worst = max(worst, float((np.abs(x - y) / np.maximum(np.abs(x), 1e-2)).max(initial=0)))
    return num / den, worst
snap = "/snapshots/snapshot-000000001024.h5"
ck = "/checkpoints/checkpoint-000000001024.h5"
nmse, worst = compare(a + snap, b + snap, "ema")
print("# snapshot (float16 EMAs): NMSE %.3g, max rel %.3g (tolerance 2e-9, 1e-2)" % (nmse, worst))
assert nmse < 2e-9 and worst < 1e-2, (nmse, worst)
nmse, worst = compare(a + ck, b + ck, "params")
print("# checkpoint (float32 weights): NMSE %.3g, max rel %.3g (tolerance 1e-12, 2e-3)" % (nmse, worst))
assert nmse < 1e-12 and worst < 2e-3, (nmse, worst)
la = [json.loads(l) for l in open(a + "/log.jsonl")]
lb = [json.loads(l) for l in open(b + "/log.jsonl")]
rel = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(la[1:], lb[1:]))
print("# log.jsonl losses: max rel %.3g (tolerance 3e-6)" % rel)
assert rel < 3e-6, rel
PYEOF
then
  grep '^# ' "$ERR"
  ok "mpirun -np 2 trains what one process trains, up to summation order"
else
  not_ok "mpirun -np 2 trains what one process trains, up to summation order" "$(tail -n 3 "$ERR")"
fi

# A batch that does not split: one line, from rank 0 only; nothing written.
expect_mpi_refusal() {
  name=$1 np=$2 needle=$3
  shift 3
  "${MPIRUN[@]}" -np "$np" "$EDM2_TRAIN" "${T[@]}" --quiet "$@" >"$OUT" 2>"$ERR"
  rc=$?
  if [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -qF -- "$needle" "$ERR"; then
    ok "$name"
  else
    not_ok "$name" "exit status $rc, $(wc -l <"$ERR") lines on stderr"
  fi
}
expect_mpi_refusal "batch 8 over 3 processes is refused in one line" 3 \
  "edm2-train: --batch 8 cannot be split across 3 processes: it is not a multiple of 3" --outdir "$W/bad3"
expect_mpi_refusal "4 images per process and --batch-gpu 4 over 4 processes is refused in one line" 4 \
  "--batch 8 across 4 processes gives 2 images each, not a multiple of --batch-gpu 4" --batch-gpu 4 --outdir "$W/bad4"
if [ -e "$W/bad3" ] || [ -e "$W/bad4" ]; then not_ok "refused runs wrote nothing" "$(ls -d "$W"/bad*)"; else ok "refused runs wrote nothing"; fi

# A file rank 0 cannot write (a file-size limit on rank 0 only, below the first snapshot): every
# process stops with rank 0's message, printed once; no temporary file is left.
full=$W/full
"${MPIRUN[@]}" -np 2 bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then ulimit -f 100; trap "" XFSZ; fi; exec "$@"' \
  bash "$EDM2_TRAIN" "${T[@]}" --quiet --outdir "$full" >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "snapshot-000000000000" "$ERR" &&
  ! ls "$full"/*/*.tmp >/dev/null 2>&1; then
  ok "rank 0 fails to write a snapshot: all stop, one line"
else
  not_ok "rank 0 fails to write a snapshot: all stop, one line" "rc $rc; $(head -c 300 "$ERR")"
fi

# SIGTERM to rank 1 alone: both processes stop after the same step, rank 0 writes the checkpoint,
# all exit 143. Then SIGUSR1 to mpirun (which forwards it; its own SIGTERM kills the processes
# after a second): exit 138. Then the run resumes, every process loading the checkpoint.
sig=$W/sig
S=(--preset test-micro --data "$W/data" --batch 8 --status 64 --snapshot 0 --checkpoint 0 --threads 1 --duration 1Mi --quiet)
wait_log() { # $1: log lines to wait for
  for _ in $(seq 150); do [ -s "$sig/log.jsonl" ] && [ "$(wc -l <"$sig/log.jsonl")" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}
"${MPIRUN[@]}" -np 2 "$EDM2_TRAIN" "${S[@]}" --outdir "$sig" >"$OUT" 2>"$ERR" &
pid=$!
rank1=
if wait_log 2; then
  for c in $(pgrep -P "$pid"); do
    tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$c
  done
fi
[ -n "$rank1" ] && kill -TERM "$rank1"
[ -n "$rank1" ] || kill -USR1 "$pid" # ends the run; the check below fails
wait "$pid"
rc=$?
n=$(ls "$sig/checkpoints" 2>/dev/null | wc -l)
if [ "$rc" -eq 143 ] && [ "$n" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "stopped by signal 15" "$ERR" &&
  ! ls "$sig"/*/*.tmp >/dev/null 2>&1; then
  ok "SIGTERM to rank 1 alone: all stop after the same step, one checkpoint, exit 143"
else
  not_ok "SIGTERM to rank 1 alone: all stop after the same step, one checkpoint, exit 143" \
    "rc $rc, rank 1 pid '${rank1}', $n checkpoints; $(head -c 300 "$ERR")"
fi
lines=$(wc -l <"$sig/log.jsonl")
"${MPIRUN[@]}" -np 2 "$EDM2_TRAIN" "${S[@]}" --outdir "$sig" >"$OUT" 2>"$ERR" &
pid=$!
wait_log $((lines + 2))
kill -USR1 "$pid"
wait "$pid"
rc=$?
n=$(ls "$sig/checkpoints" 2>/dev/null | wc -l)
if [ "$rc" -eq 138 ] && [ "$n" -eq 2 ] && grep -q "stopped by signal 10" "$ERR"; then
  ok "SIGUSR1 to mpirun: resumed, then all stop with a checkpoint, exit 138"
else
  not_ok "SIGUSR1 to mpirun: resumed, then all stop with a checkpoint, exit 138" "rc $rc, $n checkpoints; $(head -c 300 "$ERR")"
fi
expect "the interrupted run resumes under mpirun" 0 "" -- "${MPIRUN[@]}" -np 2 "$EDM2_TRAIN" "${S[@]}" --outdir "$sig" --stop-after 64
finish
