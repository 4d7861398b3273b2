#!/usr/bin/env bash
# edm2-train end to end on a tiny dataset (test-micro, 8x8 images): a run, its files, posthoc-ema
# reading its snapshots, post-hoc against directly tracked EMA, resume, SIGTERM, a full disk during a
# snapshot, and every bad input the trainer must refuse with one line. Needs: EDM2_TRAIN, POSTHOC_EMA,
# EXP_TRACKED (paths, set by meson);
# /usr/bin/python3 for writing the dataset and reading the log.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if ! "$PY" -c 'import json, gzip' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 is not installed"
  exit 77
fi
W=$WORK

# 64 images of 8x8 in three classes (a blob whose position follows the class), as gzip IDX; a
# copy with a bad magic number; one whose label file is short.
"$PY" - "$W" <<'PYEOF'
import gzip, math, os, struct, sys
w = sys.argv[1]
def write(d, n, magic=0x803, nlabels=None):
    os.makedirs(d, exist_ok=True)
    img = bytearray(struct.pack(">IIII", magic, n, 8, 8))
    lab = bytearray(struct.pack(">II", 0x801, n if nlabels is None else nlabels))
    for i in range(n):
        c = i % 3
        for y in range(8):
            for x in range(8):
                img.append(int(255 * math.exp(-((x - 2 - 2 * c) ** 2 + (y - 3) ** 2) / 3)))
    lab += bytes(i % 3 for i in range(n if nlabels is None else nlabels))
    with gzip.open(d + "/train-images-idx3-ubyte.gz", "wb") as f: f.write(img)
    with gzip.open(d + "/train-labels-idx1-ubyte.gz", "wb") as f: f.write(lab)
write(w + "/data", 64)
# VAE-style latents: 8 channels (mean, std) of 8x8 as .npy files, labels in dataset.json.
import json
os.makedirs(w + "/latents", exist_ok=True)
labels = []
for i in range(24):
    name = "img%03d.npy" % i
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 8, 8), }"
    header += " " * (118 - len(header)) + "\n"
    vals = [math.sin(0.1 * i + 0.01 * k) * (4 if k < 256 else 0.5) + (0 if k < 256 else 0.6) for k in range(512)]
    with open(w + "/latents/" + name, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack("<512f", *vals))
    labels.append([name, i % 3])
json.dump({"labels": labels}, open(w + "/latents/dataset.json", "w"))
write(w + "/badmagic", 64, magic=0x804)
write(w + "/shortlabels", 64, nlabels=60)
PYEOF

T=(--preset test-micro --data "$W/data" --batch 8 --rampup 64 --decay 64 --status 256 --snapshot 1Ki --checkpoint 1Ki --threads 1 --quiet)

expect "dry run prints the resolved configuration" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --dry-run
if "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["batch"]==8 and c["ema"]==[0.05,0.1] and c["model_channels"]==8 and c["data"]' "$OUT"; then
  ok "dry-run JSON holds network and training keys"; else not_ok "dry-run JSON holds network and training keys" "$(head -c 300 "$OUT")"; fi

run=$W/run
expect "train 2Ki images" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --outdir "$run" --ema 0.05,0.1,0.13
check_files() {
  for f in config.json log.jsonl snapshots/snapshot-000000000000.h5 snapshots/snapshot-000000001024.h5 \
    snapshots/snapshot-000000002048.h5 checkpoints/checkpoint-000000001024.h5 checkpoints/checkpoint-000000002048.h5; do
    [ -f "$run/$f" ] || { echo "missing $f"; return 1; }
  done
  ! ls "$run"/*/*.tmp >/dev/null 2>&1
}
if check_files >"$ERR" 2>&1; then ok "run directory holds config, log, snapshots, checkpoints"; else not_ok "run directory holds config, log, snapshots, checkpoints" "$(cat "$ERR")"; fi
if "$PY" - "$run/log.jsonl" >"$ERR" 2>&1 <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["nimg"] for l in lines] == list(range(0, 2049, 256)), [l["nimg"] for l in lines]
assert lines[0]["loss"] is None and all(isinstance(l["loss"], float) for l in lines[1:])  # ℓ includes u: may go negative
assert lines[0]["lr"] == 0 and lines[-1]["lr"] > 0
assert set(lines[-1]["weights"]) == {"enc8", "enc4", "dec4", "dec8"}, lines[-1]["weights"]
assert all(0.5 < v["mean"] < 2 for v in lines[-1]["weights"].values())
PYEOF
then ok "log.jsonl: one line per status interval with loss, lr and weight magnitudes"; else not_ok "log.jsonl: one line per status interval with loss, lr and weight magnitudes" "$(cat "$ERR")"; fi

expect "posthoc-ema --list accepts the run's snapshots" 0 "" -- "$POSTHOC_EMA" --list --snapshots "$run/snapshots"
expect "posthoc-ema reconstructs 0.13 from 0.05 and 0.10" 0 "" -- "$POSTHOC_EMA" --snapshots "$run/snapshots" \
  --sigma-rel 0.13 --use-profiles 0.050,0.100 --out "$run/phema" --quiet
expect "posthoc-ema wrote the 0.13 model" 0 "" -- test -f "$run/phema/phema-000000002048-0.130.h5"

# Activation magnitudes on a probe batch: logged at their interval, without changing the run's bits.
expect "train with --magnitudes 512" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --outdir "$W/mag" --ema 0.05,0.1,0.13 --magnitudes 512
if "$PY" - "$W/mag/log.jsonl" >"$ERR" 2>&1 <<'PYEOF'
import json, sys
for l in map(json.loads, open(sys.argv[1])):
    assert ("activations" in l) == (l["nimg"] % 512 == 0), l["nimg"]
    if "activations" in l:
        assert set(l["activations"]) == {"enc8", "enc4", "dec4", "dec8"}, l["activations"]
        assert all(0.05 < v["mean"] <= v["max"] < 100 for v in l["activations"].values())
PYEOF
then ok "log.jsonl: activation magnitudes every 512 images"; else not_ok "log.jsonl: activation magnitudes every 512 images" "$(cat "$ERR")"; fi
# (The files differ in their config attribute, which records --magnitudes; the tensors must not.)
if "$PY" - "$run/snapshots/snapshot-000000002048.h5" "$W/mag/snapshots/snapshot-000000002048.h5" >"$ERR" 2>&1 <<'PYEOF'
import sys
import h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert names and all(np.array_equal(a[n][()], b[n][()]) for n in names)
PYEOF
then ok "measuring magnitudes does not change the run"; else not_ok "measuring magnitudes does not change the run" "$(cat "$ERR")"; fi
expect "--magnitudes must be a multiple of --status" 1 "--magnitudes 768 is not a multiple of --status 512" -- "$EDM2_TRAIN" "${T[@]}" --status 512 --magnitudes 768 --outdir "$W/x11"

# Post-hoc EMA against direct tracking (issue 6; the demo does the same on Fashion-MNIST):
# 16 snapshot times, 0.13 reconstructed from the 0.050/0.100 profiles alone must match the 0.13
# tracked in training within the float16 noise floor that posthoc-reference.md predicts,
# ||x||_2 times the float16 rounding of the target (about 5e-4 here; measured about 3e-4).
ph=$W/phtrack
expect "train 16Ki images tracking 0.13" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 16Ki --outdir "$ph" --ema 0.05,0.1,0.13 --status 4Ki --checkpoint 0
expect "reconstruct the tracked 0.13" 0 "" -- "$EXP_TRACKED" --snapshots "$ph/snapshots" --tracked 0.13 --from 0.050,0.100
err=$(sed -n 's/.*weight error \([0-9.e+-]*\),.*/\1/p' "$OUT")
if [ -n "$err" ] && "$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1e-3 else 1)" "$err"; then
  ok "post-hoc 0.13 equals the tracked 0.13 within the float16 floor (weight error $err)"
else
  not_ok "post-hoc 0.13 equals the tracked 0.13 within the float16 floor" "$(cat "$OUT")"
fi

# Latent datasets: 8 stored channels (VAE mean and std) train a 4-channel network.
expect "train on .npy latents" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --data "$W/latents" --duration 1Ki --outdir "$W/lat"
if "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["img_channels"]==4 and c["label_dim"]==3, c' "$W/lat/config.json" 2>"$ERR"; then
  ok "latent run: 4-channel network, 3 classes"; else not_ok "latent run: 4-channel network, 3 classes" "$(cat "$ERR")"; fi

# Resume: a run stopped at 1Ki and continued gives the same snapshots, byte for byte.
r2=$W/run2
expect "stop after 1Ki" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --outdir "$r2" --ema 0.05,0.1,0.13 --stop-after 1Ki
expect "resume to 2Ki" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --outdir "$r2" --ema 0.05,0.1,0.13
if cmp -s "$run/snapshots/snapshot-000000002048.h5" "$r2/snapshots/snapshot-000000002048.h5"; then
  ok "resumed run's snapshot equals the straight run's, byte for byte"; else not_ok "resumed run's snapshot equals the straight run's, byte for byte" "files differ"; fi

# Bad input: one line, non-zero, nothing written over.
expect "no --data for a preset without a default" 1 "--data is required" -- "$EDM2_TRAIN" --preset test-micro --outdir "$W/x1" --quiet
expect "bad IDX magic" 1 "train-images-idx3-ubyte.gz" -- "$EDM2_TRAIN" "${T[@]}" --data "$W/badmagic" --outdir "$W/x2"
expect "labels missing for some images" 1 "train-labels-idx1-ubyte.gz" -- "$EDM2_TRAIN" "${T[@]}" --data "$W/shortlabels" --outdir "$W/x3"
expect "missing dataset" 1 "$W/nothere" -- "$EDM2_TRAIN" "${T[@]}" --data "$W/nothere" --outdir "$W/x4"
expect "batch not divisible by batch-gpu" 1 "--batch 8 is not a multiple of --batch-gpu 3" -- "$EDM2_TRAIN" "${T[@]}" --batch-gpu 3 --outdir "$W/x5"
expect "snapshot interval not a multiple of 1024" 1 "--snapshot 1032 is not a multiple of 1024" -- "$EDM2_TRAIN" "${T[@]}" --snapshot 1032 --outdir "$W/x6"
expect "status interval not a multiple of the batch" 1 "--status 100 is not a multiple of the batch" -- "$EDM2_TRAIN" "${T[@]}" --status 100 --outdir "$W/x7"
expect "outdir holding a different run" 1 "holds a different run: seed 0, not 3" -- "$EDM2_TRAIN" "${T[@]}" --duration 4Ki --outdir "$run" --ema 0.05,0.1,0.13 --seed 3
expect "a finished run says so" 1 "the run is complete" -- "$EDM2_TRAIN" "${T[@]}" --duration 2Ki --outdir "$run" --ema 0.05,0.1,0.13
expect "cuda backend is not in this build" 1 "--backend cuda" -- "$EDM2_TRAIN" "${T[@]}" --backend cuda --outdir "$W/x8"
expect "bad --ema" 1 "--ema" -- "$EDM2_TRAIN" "${T[@]}" --ema 0.05,0.9 --outdir "$W/x9"
expect "no --outdir is a usage error" 2 "" -- "$EDM2_TRAIN" --preset test-micro
expect "unknown preset" 1 "unknown preset 'nope'" -- "$EDM2_TRAIN" --preset nope --outdir "$W/x10"
for d in x2 x3 x4 x5 x6 x7 x8 x9; do
  if [ -e "$W/$d/checkpoints" ] && ls "$W/$d/checkpoints"/* >/dev/null 2>&1; then not_ok "refused run $d wrote nothing" "checkpoints exist"; fi
done

# The disk fills up during a snapshot: the run stops with one line, the last checkpoint and the
# earlier snapshots are intact, no temporary file is left. (File size limit; SIGXFSZ ignored so
# writes fail with EFBIG.) The snapshot at 3Ki is the first file written after resuming at 2Ki.
before=$(digest "$run/snapshots"; digest "$run/checkpoints")
size=$(stat -c %s "$run/snapshots/snapshot-000000002048.h5")
( ulimit -f $((size / 1024 / 2)); trap '' XFSZ; exec "$EDM2_TRAIN" "${T[@]}" --duration 4Ki --outdir "$run" --ema 0.05,0.1,0.13 ) >"$OUT" 2>"$ERR"
rc=$?
after=$(digest "$run/snapshots"; digest "$run/checkpoints")
if [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "snapshot-000000003072" "$ERR" && [ "$before" = "$after" ] &&
  ! ls "$run"/*/*.tmp >/dev/null 2>&1; then
  ok "disk full during a snapshot: one line, earlier files intact, no temporaries"
else
  not_ok "disk full during a snapshot: one line, earlier files intact, no temporaries" "rc $rc; $(head -c 300 "$ERR")"
fi
expect "after the disk-full stop the run resumes" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 4Ki --outdir "$run" --ema 0.05,0.1,0.13

# SIGTERM mid-run: the step finishes, a checkpoint is written, exit 143; the run then resumes.
r3=$W/run3
"$EDM2_TRAIN" "${T[@]}" --duration 1Mi --checkpoint 0 --snapshot 0 --outdir "$r3" >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 100); do [ -s "$r3/log.jsonl" ] && [ "$(wc -l <"$r3/log.jsonl")" -ge 2 ] && break; sleep 0.1; done
kill -TERM $pid
wait $pid
rc=$?
n=$(ls "$r3/checkpoints" 2>/dev/null | wc -l)
if [ "$rc" -eq 143 ] && [ "$n" -eq 1 ] && grep -q "stopped by signal 15" "$ERR" && ! ls "$r3"/*/*.tmp >/dev/null 2>&1; then
  ok "SIGTERM: checkpoint written, exit 143"
else
  not_ok "SIGTERM: checkpoint written, exit 143" "rc $rc, $n checkpoints; $(head -c 300 "$ERR")"
fi
expect "the interrupted run resumes" 0 "" -- "$EDM2_TRAIN" "${T[@]}" --duration 1Mi --checkpoint 0 --snapshot 0 --outdir "$r3" --stop-after 256
finish
