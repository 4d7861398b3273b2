#!/usr/bin/env bash
# edm2-metrics ref, calc, gen and features end to end with the detectors' hash weights as weights
# files (tests/tools/hash_weights): statistics agree between commands (calc of a reference's own
# images is 0, folder = zip, calc --dest + fd = calc, the features' mean = the stats' mu), EDM2's
# --num/--seed choice of images, gen = edm2-generate + calc on the same seeds, mpirun -np 2 = one
# process; then one clear line and exit status 1 for each kind of bad input (wrong dimension,
# mixed metrics, fewer than 2 images, a mismatched size, a corrupt PNG, a weights file with a
# missing or misshapen tensor, missing weights, NaN features), with no number printed and
# nothing overwritten. Needs: EDM2_METRICS, EDM2_GENERATE, EDM2_TRAIN, HASH_WEIGHTS, EDM2C_MPI
# (set by meson); /usr/bin/python3 with numpy and h5py.
. "$(dirname "$0")/lib.sh"
: "${EDM2_METRICS:?}" "${EDM2_GENERATE:?}" "${EDM2_TRAIN:?}" "${HASH_WEIGHTS:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with h5py and numpy is not installed"
  exit 77
fi
W=$WORK
M=$EDM2_METRICS
export EDM2C_WEIGHTS_DIR=$W/weights
mkdir -p "$W/weights"
"$HASH_WEIGHTS" fid "$W/weights/inception-2015-12-05.safetensors" || exit 1
"$HASH_WEIGHTS" fd_dinov2 "$W/weights/dinov2_vitl14.safetensors" f16 || exit 1

# Images: folders a (6 RGB 24x24), b (6 others), a.zip, one (a single image), mixed (a 24x24 and
# a 20x20), corrupt (a truncated PNG), sub4 (the 4 images of a that --num 4 --seed 1 picks).
"$PY" - "$W" <<'PYEOF' || exit 1
import math, os, struct, sys, zipfile, zlib
import numpy as np
w = sys.argv[1]
def png(path, img):  # img: H x W x 3 uint8
    h, wd, _ = img.shape
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", wd, h, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
    return data
def image(seed, size=24):
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = 128 + 90 * np.sin(x / (2 + seed % 5) + y / 3.0)[..., None] * np.cos(np.arange(3) + seed)
    return np.clip(base + r.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
for d in ("a", "b", "one", "mixed", "corrupt", "sub4"):
    os.makedirs(f"{w}/{d}", exist_ok=True)
with zipfile.ZipFile(f"{w}/a.zip", "w") as z:
    for i in range(6):
        z.writestr(f"img{i}.png", png(f"{w}/a/img{i}.png", image(i)))
for i in range(6):
    png(f"{w}/b/img{i}.png", image(100 + i))
png(f"{w}/one/img0.png", image(0))
png(f"{w}/mixed/img0.png", image(0))
png(f"{w}/mixed/img1.png", image(1, 20))
png(f"{w}/corrupt/img0.png", image(0))
open(f"{w}/corrupt/img1.png", "wb").write(png(f"{w}/corrupt/tmp", image(1))[:60])
os.remove(f"{w}/corrupt/tmp")
pick = np.arange(6)
np.random.RandomState(1).shuffle(pick)
for i in sorted(pick[:4]):
    png(f"{w}/sub4/img{i}.png", image(int(i)))
np.savez(f"{w}/dim64.npz", mu=np.zeros(64), sigma=np.eye(64))
PYEOF

Q=(--quiet --metrics fid)
value() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUT" "$1"; }
near() { "$PY" -c 'import sys; a,b,t=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=t*max(1,abs(b)) else 1)' "$@"; }

expect "ref of folder a" 0 "" -- "$M" ref --data "$W/a" --dest "$W/ref_a.h5" "${Q[@]}"
expect "calc a against its own statistics" 0 "" -- "$M" calc --images "$W/a" --ref "$W/ref_a.h5" "${Q[@]}" --json
if near "$(value fid)" 0 1e-6; then ok "fid of a reference's own images is 0"; else not_ok "own fid" "$(cat "$OUT")"; fi
expect "calc of the zip" 0 "" -- "$M" calc --images "$W/a.zip" --ref "$W/ref_a.h5" "${Q[@]}" --json
if near "$(value fid)" 0 1e-6; then ok "zip = folder"; else not_ok "zip = folder" "$(cat "$OUT")"; fi
expect "calc b with --dest" 0 "" -- "$M" calc --images "$W/b" --ref "$W/ref_a.h5" "${Q[@]}" --json --dest "$W/stats_b.h5"
fid_b=$(value fid)
if near "$fid_b" 0 0 || ! grep -q '"num_images": 6' "$OUT"; then not_ok "fid of b" "$(cat "$OUT")"; else ok "fid of b > 0, 6 images"; fi
expect "fd of the written statistics" 0 "" -- "$M" fd "$W/ref_a.h5" "$W/stats_b.h5" --json
if near "$(value fd)" "$fid_b" 1e-12; then ok "calc --dest + fd = calc"; else not_ok "fd = calc" "$(cat "$OUT") vs $fid_b"; fi
expect "text output" 0 "" -- "$M" calc --images "$W/b" --ref "$W/ref_a.h5" "${Q[@]}"
if grep -qE '^fid = [0-9]+\.[0-9]{4}$' "$OUT" && [ "$(wc -l <"$OUT")" -eq 1 ]; then ok "fid = line"; else not_ok "fid = line" "$(cat "$OUT")"; fi

expect "--num 4 --seed 1" 0 "" -- "$M" calc --images "$W/a" --num 4 --seed 1 --ref "$W/ref_a.h5" "${Q[@]}" --dest "$W/stats_n4.h5"
expect "ref of the 4 chosen images" 0 "" -- "$M" ref --data "$W/sub4" --dest "$W/stats_sub4.h5" "${Q[@]}"
expect "fd of the two" 0 "" -- "$M" fd "$W/stats_n4.h5" "$W/stats_sub4.h5" --json
if near "$(value fd)" 0 1e-9; then ok "--num/--seed picks numpy's RandomState choice"; else not_ok "num/seed" "$(cat "$OUT")"; fi

expect "features" 0 "" -- "$M" features --images "$W/a" --metric fid --out "$W/feat_a.h5" --quiet
if "$PY" - "$W" >"$ERR" 2>&1 <<'PYEOF'; then ok "features: [6, 2048] float32, mean = mu"; else not_ok "features" "$(tail -1 "$ERR")"; fi
import sys, h5py, numpy as np
w = sys.argv[1]
f = h5py.File(f"{w}/feat_a.h5", "r")
x = f["features"][...]
assert x.shape == (6, 2048) and x.dtype == np.float32, (x.shape, x.dtype)
assert f.attrs["format"] == "edm2c-features" and f.attrs["metric"] == "fid"
r = h5py.File(f"{w}/ref_a.h5", "r")
mu, sigma = r["fid/mu"][...], r["fid/sigma"][...]
x = x.astype(np.float64)
assert np.abs(x.mean(0) - mu).max() <= 1e-12 * max(1, np.abs(mu).max()), "mean"
c = np.cov(x, rowvar=False)
assert np.abs(c - sigma).max() <= 1e-9 * np.abs(c).max(), "covariance"
PYEOF

# FD_DINOv2 path (F16 weights file): the same image set is 0, another is not.
expect "ref both metrics" 0 "" -- "$M" ref --data "$W/a" --num 3 --dest "$W/ref_a3.h5" --quiet
expect "calc fd_dinov2" 0 "" -- "$M" calc --images "$W/a" --num 3 --ref "$W/ref_a3.h5" --quiet --json
if near "$(value fd_dinov2)" 0 1e-6 && near "$(value fid)" 0 1e-6; then ok "both metrics 0 on the same images"; else not_ok "both" "$(cat "$OUT")"; fi

# gen = edm2-generate + calc, on a tiny trained network (test-micro, 8x8 RGB).
"$PY" - "$W" <<'PYEOF' || exit 1
import os, struct, sys, zlib, json, math
w = sys.argv[1]
os.makedirs(f"{w}/rgb8", exist_ok=True)
for i in range(16):
    rows = b"".join(b"\0" + bytes(int(127 + 120 * math.sin(i + x / 2 + c * y / 3)) for x in range(8) for c in range(3)) for y in range(8))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(f"{w}/rgb8/img{i:02d}.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PYEOF
if "$EDM2_TRAIN" --preset test-micro --data "$W/rgb8" --cond false --batch 8 --rampup 64 --decay 64 --status 0 \
  --snapshot 1Ki --checkpoint 0 --threads 1 --quiet --duration 32 --outdir "$W/run" >"$OUT" 2>"$ERR"; then
  ok "train a test-micro network"
else
  not_ok "train" "edm2-train failed"
fi
NET=$W/run/checkpoints/checkpoint-000000000032.h5
# One thread everywhere: OpenBLAS's GEMMs sum in another order with another thread count, which
# moves features by ~1e-7 relative; with the same threads the comparisons are tight.
expect "gen" 0 "" -- "$M" gen --net "$NET" --num 5 --seed 3 --steps 4 --ref "$W/ref_a.h5" "${Q[@]}" --json --threads 1
fid_gen=$(value fid)
expect "edm2-generate the same seeds" 0 "" -- "$EDM2_GENERATE" --net "$NET" --seeds 3-7 --steps 4 --outdir "$W/gen" --quiet --threads 1
expect "calc of those PNGs" 0 "" -- "$M" calc --images "$W/gen" --ref "$W/ref_a.h5" "${Q[@]}" --json --threads 1
if near "$(value fid)" "$fid_gen" 1e-9; then ok "gen = edm2-generate + calc"; else not_ok "gen = generate + calc" "$(value fid) vs $fid_gen"; fi

# Processes: mpirun -np 2 gives the statistics of one process.
if [ "${EDM2C_MPI:-0}" = 1 ] && command -v mpirun >/dev/null 2>&1 && mpirun --version 2>/dev/null | grep -q "Open MPI"; then
  MPIRUN=(mpirun -q --oversubscribe)
  if [ "$(id -u)" -eq 0 ]; then
    MPIRUN+=(--allow-run-as-root)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  expect "calc b, one thread" 0 "" -- "$M" calc --images "$W/b" --ref "$W/ref_a.h5" "${Q[@]}" --json --threads 1
  fid_b=$(value fid)
  expect "calc under mpirun -np 2" 0 "" -- "${MPIRUN[@]}" -np 2 "$M" calc --images "$W/b" --ref "$W/ref_a.h5" "${Q[@]}" --json --threads 1
  if near "$(value fid)" "$fid_b" 1e-9 && [ "$(wc -l <"$OUT")" -eq 1 ]; then ok "2 processes = 1 (one line of output)"; else not_ok "mpi" "$(cat "$OUT") vs $fid_b"; fi
  expect "gen under mpirun -np 2" 0 "" -- "${MPIRUN[@]}" -np 2 "$M" gen --net "$NET" --num 5 --seed 3 --steps 4 --ref "$W/ref_a.h5" "${Q[@]}" --json --threads 1
  if near "$(value fid)" "$fid_gen" 1e-9; then ok "gen: 2 processes = 1"; else not_ok "gen mpi" "$(value fid) vs $fid_gen"; fi
else
  echo "ok # SKIP mpirun checks: no MPI build or no Open MPI mpirun"
fi

# Bad input: one line, exit 1, no number on stdout, nothing overwritten.
bad() { # bad NAME NEEDLE -- CMD...
  name=$1 needle=$2
  shift 3
  expect "$name" 1 "$needle" -- "$@" && if [ -s "$OUT" ]; then not_ok "$name: nothing printed" "$(cat "$OUT")"; fi
}
bad "wrong dimension" "dim64.npz: 64-dimensional statistics fit neither fid (2048) nor fd_dinov2 (1024)" -- \
  "$M" calc --images "$W/a" --ref "$W/dim64.npz" "${Q[@]}"
bad "mixed metrics" "mixed metrics: $W/stats_b.h5 holds no fd_dinov2 statistics (it has fid)" -- \
  "$M" calc --images "$W/a" --ref "$W/stats_b.h5" --quiet
bad "one image" "$W/one holds 1 image: statistics need at least 2" -- "$M" calc --images "$W/one" --ref "$W/ref_a.h5" "${Q[@]}"
bad "--num above the count" "$W/a holds 6 images, --num asks for 7" -- "$M" calc --images "$W/a" --num 7 --ref "$W/ref_a.h5" "${Q[@]}"
bad "mismatched size" "img1.png" -- "$M" calc --images "$W/mixed" --ref "$W/ref_a.h5" "${Q[@]}"
bad "corrupt PNG" "img1.png" -- "$M" calc --images "$W/corrupt" --ref "$W/ref_a.h5" "${Q[@]}"
mkdir -p "$W/w_missing" "$W/w_shape" "$W/w_huge"
"$HASH_WEIGHTS" fid "$W/w_missing/inception-2015-12-05.safetensors" f32 missing:Mixed_7b.branch_pool.bn.bias
"$HASH_WEIGHTS" fid "$W/w_shape/inception-2015-12-05.safetensors" f32 shape:Conv2d_2b_3x3.conv.weight
"$HASH_WEIGHTS" fid "$W/w_huge/inception-2015-12-05.safetensors" f32 huge:Conv2d_1a_3x3.conv.weight
bad "weights: missing tensor" "tensor Mixed_7b.branch_pool.bn.bias is missing" -- \
  "$M" calc --images "$W/a" --ref "$W/ref_a.h5" "${Q[@]}" --weights-dir "$W/w_missing"
bad "weights: misshapen tensor" "tensor Conv2d_2b_3x3.conv.weight has shape [3, 3, 32, 64], the fid network needs [64, 32, 3, 3]" -- \
  "$M" calc --images "$W/a" --ref "$W/ref_a.h5" "${Q[@]}" --weights-dir "$W/w_shape"
bad "weights: none" "$W/nowhere/dinov2_vitl14.safetensors does not exist. Download dinov2_vitl14_pretrain.pth" -- \
  "$M" calc --images "$W/a" --ref "$W/ref_a3.h5" --quiet --metrics fd_dinov2 --weights-dir "$W/nowhere"
bad "NaN features" "fid features of $W/a item 0: feature 0 (column" -- \
  "$M" calc --images "$W/a" --ref "$W/ref_a.h5" "${Q[@]}" --weights-dir "$W/w_huge"
bad "gen: not a model" "$W/ref_a.h5" -- "$M" gen --net "$W/ref_a.h5" --ref "$W/ref_a.h5" "${Q[@]}" --num 2
before=$(cksum <"$W/ref_a.h5")
bad "existing --dest" "$W/ref_a.h5 exists; not overwriting it (--force replaces it)" -- \
  "$M" ref --data "$W/b" --dest "$W/ref_a.h5" "${Q[@]}"
if [ "$(cksum <"$W/ref_a.h5")" = "$before" ]; then ok "existing stats untouched"; else not_ok "untouched" "ref_a.h5 changed"; fi
expect "usage: no --ref" 2 "" -- "$M" calc --images "$W/a"
expect "usage: unknown metric" 1 "--metrics: unknown metric 'kid' (known: fid, fd_dinov2)" -- "$M" calc --images "$W/a" --ref "$W/ref_a.h5" --metrics fid,kid
expect "features under a bad metric name" 1 "--metric" -- "$M" features --images "$W/a" --metric inception --out "$W/x.h5"
if ls "$W"/*.tmp "$W"/*/*.tmp >/dev/null 2>&1; then not_ok "no temporary files left" "$(ls "$W"/*.tmp "$W"/*/*.tmp)"; else ok "no temporary files left"; fi
finish
