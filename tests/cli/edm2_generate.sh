#!/usr/bin/env bash
# edm2-generate end to end on tiny trained networks (test-micro, 8x8): PNG names, sizes and pixels
# (the reference's uint8 conversion of the raw samples), --subdirs, the grid, --save-raw, batch and
# process invariance (the same images), --noise-from, classes, guidance with conditional and
# unconditional guiding networks, an RGB network, a latent network; then one clear line and exit
# status 1 for each kind of bad input, with nothing generated or overwritten; SIGINT leaves no
# temporary file. Needs: EDM2_GENERATE, EDM2_TRAIN, EDM2C_MPI (set by meson); /usr/bin/python3
# with h5py and numpy; mpirun (Open MPI) for the multi-process check (reported as skipped without).
. "$(dirname "$0")/lib.sh"
: "${EDM2_GENERATE:?}" "${EDM2_TRAIN:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with h5py and numpy is not installed"
  exit 77
fi
W=$WORK
G=$EDM2_GENERATE

# --- datasets and networks ---------------------------------------------------------------------
# IDX images in 3 classes (as tests/cli/edm2_train.sh) and in 2 classes; 8x8 RGB PNGs with labels;
# VAE-style .npy latents (8 stored channels train a 4-channel network).
"$PY" - "$W" <<'PYEOF' || exit 1
import gzip, json, math, os, struct, sys, zlib
w = sys.argv[1]
def blob(i, c, x, y):
    return int(255 * math.exp(-((x - 2 - 2 * c) ** 2 + (y - 3) ** 2) / 3))
def idx(d, n, classes):
    os.makedirs(d, exist_ok=True)
    img = bytearray(struct.pack(">IIII", 0x803, n, 8, 8))
    for i in range(n):
        img += bytes(blob(i, i % classes, x, y) for y in range(8) for x in range(8))
    lab = struct.pack(">II", 0x801, n) + bytes(i % classes for i in range(n))
    with gzip.open(d + "/train-images-idx3-ubyte.gz", "wb") as f: f.write(img)
    with gzip.open(d + "/train-labels-idx1-ubyte.gz", "wb") as f: f.write(lab)
idx(w + "/data3", 64, 3)
idx(w + "/data2", 64, 2)
def png(path, rgb_rows):  # 8-bit RGB, filter 0
    raw = b"".join(b"\0" + bytes(r) for r in rgb_rows)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
os.makedirs(w + "/rgb", exist_ok=True)
labels = []
for i in range(24):
    c = i % 3
    png(w + "/rgb/img%02d.png" % i, [[v for x in range(8) for v in (blob(i, c, x, y), 40 * c, 255 - blob(i, c, x, y))]
                                      for y in range(8)])
    labels.append(["img%02d.png" % i, c])
json.dump({"labels": labels}, open(w + "/rgb/dataset.json", "w"))
os.makedirs(w + "/latents", exist_ok=True)
for i in range(24):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 8, 8), }"
    header += " " * (118 - len(header)) + "\n"
    vals = [math.sin(0.1 * i + 0.01 * k) * (4 if k < 256 else 0.5) + (0 if k < 256 else 0.6) for k in range(512)]
    with open(w + "/latents/img%03d.npy" % i, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack("<512f", *vals))
PYEOF

# 8 steps of 8 images: enough for weights that are not the initial ones.
T=(--preset test-micro --batch 8 --rampup 64 --decay 64 --status 0 --snapshot 1Ki --checkpoint 0 --threads 1 --quiet --duration 64)
train() { # train NAME ARGS...
  name=$1
  shift
  if "$EDM2_TRAIN" "${T[@]}" --outdir "$W/$name" "$@" >"$OUT" 2>"$ERR" &&
    [ -f "$W/$name/checkpoints/checkpoint-000000000064.h5" ]; then
    ok "train $name"
  else
    not_ok "train $name" "edm2-train failed"
    echo "Bail out! no network to sample from"
    exit 1
  fi
}
train cond --data "$W/data3"
train uncond --data "$W/data3" --cond false
train two --data "$W/data2"
train rgb --data "$W/rgb"
train latent --data "$W/latents"
ck() { echo "$W/$1/checkpoints/checkpoint-000000000064.h5"; }
NET=$(ck cond)

check() { # check NAME COMMAND...: run a check and record it
  name=$1
  shift
  if "$@" >"$ERR" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}

# PNG reading (IHDR, zlib, all five filter types) for the checks below.
cat >"$W/pngread.py" <<'PYEOF'
import struct, zlib
import numpy as np
def read(path):
    """(height, width, channels) uint8 array of an 8-bit gray or RGB PNG, checking its chunks."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(t + body), (path, t)
        if t == b"IHDR": hdr = struct.unpack(">IIBBBBB", body)
        elif t == b"IDAT": idat += body
        elif t == b"IEND": break
        pos += 12 + n
    w, h, depth, color, _, _, interlace = hdr
    assert depth == 8 and color in (0, 2) and interlace == 0, (path, hdr)
    c = 1 if color == 0 else 3
    raw, stride = zlib.decompress(idat), w * c
    out = np.zeros((h, stride), np.int32)
    for y in range(h):
        f, row = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, np.int32)
        cur = np.zeros(stride, np.int32)
        for i in range(stride):
            a = cur[i - c] if i >= c else 0
            b, d = prev[i], prev[i - c] if i >= c else 0
            if f == 0: p = 0
            elif f == 1: p = a
            elif f == 2: p = b
            elif f == 3: p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - d), abs(a - d), abs(a + b - 2 * d)
                p = a if pa <= pb and pa <= pc else b if pb <= pc else d
            cur[i] = (row[i] + p) & 255
        out[y] = cur
    return out.reshape(h, w, c).astype(np.uint8)
def to_u8(x):
    """The reference's conversion of one CHW float32 image: uint8(clamp(x*127.5 + 128, 0, 255))."""
    v = np.asarray(x, np.float32) * np.float32(127.5) + np.float32(128)
    return np.clip(v, 0, 255).astype(np.uint8).transpose(1, 2, 0)
PYEOF
pycheck() { # pycheck NAME ARGS... <<'PYEOF': a python check with pngread importable and argv = ARGS
  name=$1
  shift
  if PYTHONPATH=$W "$PY" - "$@" >"$ERR" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}

# --- good runs ----------------------------------------------------------------------------------
expect "--help" 0 "" -- "$G" --help
expect "seeds 0-5 with a grid and raw samples" 0 "" -- "$G" --net "$NET" --outdir "$W/a" --seeds 0-5 --grid "$W/a.png" --save-raw "$W/a.h5" --threads 1
grep -q "^edm2-generate: 6 images of 1x8x8 in .* images/s" "$OUT" && [ ! -s "$ERR" ] && ok "one summary line on stdout" ||
  not_ok "one summary line on stdout" "$(cat "$OUT")"
[ "$(cd "$W/a" && ls | tr '\n' ' ')" = "000000.png 000001.png 000002.png 000003.png 000004.png 000005.png " ] &&
  ok "one {seed:06d}.png per seed" || not_ok "one {seed:06d}.png per seed" "$(ls "$W/a" | tr '\n' ' ')"
pycheck "raw file: x, seeds, noise, one-hot labels, attributes" "$W/a.h5" "$NET" <<'PYEOF'
import json, sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] == "edm2c-samples" and f.attrs["format_version"] == 1
    assert f.attrs["net"] == sys.argv[2] and f.attrs["net_format"] == "edm2c-checkpoint" and f.attrs["preset"] == "test-micro"
    assert json.loads(f.attrs["config"])["label_dim"] == 3
    o = json.loads(f.attrs["options"])
    assert o["seeds"] == "0-5" and o["steps"] == 32 and o["sigma_max"] == 80 and o["S_max"] is None and o["class"] is None, o
    assert f["x"].shape == (6, 1, 8, 8) and f["x"].dtype == np.float32
    assert f["noise"].shape == (6, 1, 8, 8) and f["seeds"].dtype == np.int64 and list(f["seeds"]) == list(range(6))
    x, n, l = f["x"][()], f["noise"][()], f["labels"][()]
    assert l.shape == (6, 3) and (l.sum(1) == 1).all() and set(np.unique(l)) == {0, 1}
    assert np.isfinite(x).all() and 0.1 < x.std() < 3 and not np.array_equal(x[0], x[1]), x.std()
    assert abs(n.mean()) < 0.3 and 0.8 < n.std() < 1.2, (n.mean(), n.std())
PYEOF
pycheck "PNG pixels: uint8(clamp(x*127.5 + 128, 0, 255)) of the raw samples, 8x8 grayscale" "$W/a" "$W/a.h5" <<'PYEOF'
import sys
import h5py, numpy as np
import pngread
x = h5py.File(sys.argv[2], "r")["x"][()]
for i in range(6):
    img = pngread.read("%s/%06d.png" % (sys.argv[1], i))
    assert img.shape == (8, 8, 1), img.shape
    assert np.array_equal(img, pngread.to_u8(x[i])), i
PYEOF
pycheck "grid: 3x2 images of 8x8 (24x16), row-major in seed order" "$W/a" "$W/a.png" <<'PYEOF'
import sys
import numpy as np
import pngread
g = pngread.read(sys.argv[2])
assert g.shape == (16, 24, 1), g.shape
for i in range(6):
    r, c = divmod(i, 3)
    assert np.array_equal(g[8 * r:8 * r + 8, 8 * c:8 * c + 8], pngread.read("%s/%06d.png" % (sys.argv[1], i))), i
PYEOF

# Invariance: an image depends only on its seed (batch, order, threads, processes). The random
# inputs are identical bit for bit; the network's convolutions multiply several images' columns
# in one matrix product, so the arithmetic may differ in the last bit (trainer/generate.h):
# samples agree to 1e-5 relative and PNG pixels to at most 1 level.
same_images() { # same_images DIR_A RAW_A DIR_B RAW_B
  PYTHONPATH=$W "$PY" - "$@" <<'PYEOF'
import os, sys
import h5py, numpy as np
import pngread
da, ra, db, rb = sys.argv[1:]
a, b = h5py.File(ra, "r"), h5py.File(rb, "r")
sa, sb = list(a["seeds"][()]), list(b["seeds"][()])
for i, s in enumerate(sb):
    xa, xb = a["x"][sa.index(s)], b["x"][i]
    assert np.abs(xa - xb).max() <= 1e-5 * np.abs(xa).max(), (s, np.abs(xa - xb).max())
for name in sorted(os.listdir(db)):
    pa, pb = pngread.read(os.path.join(da, name)).astype(int), pngread.read(os.path.join(db, name)).astype(int)
    assert pa.shape == pb.shape and np.abs(pa - pb).max() <= 1, name
PYEOF
}
S=(--net "$NET" --seeds 0-6 --S-churn 20 --S-min 0.01 --S-max 10)
expect "stochastic, --batch 1" 0 "" -- "$G" "${S[@]}" --outdir "$W/b1" --batch 1 --save-raw "$W/b1.h5" --quiet --threads 1
expect "stochastic, --batch 3 (uneven), 2 threads" 0 "" -- "$G" "${S[@]}" --outdir "$W/b3" --batch 3 --save-raw "$W/b3.h5" --quiet --threads 2
if same_images "$W/b1" "$W/b1.h5" "$W/b3" "$W/b3.h5" >"$ERR" 2>&1; then ok "--batch 1 and --batch 3: the same images"
else not_ok "--batch 1 and --batch 3: the same images" "$(tail -1 "$ERR")"; fi
expect "the same seeds in another order" 0 "" -- "$G" "${S[@]}" --seeds 6,2,0 --outdir "$W/b6" --batch 2 --save-raw "$W/b6.h5" --quiet
if [ "$(ls "$W/b6" | wc -l)" -eq 3 ] && same_images "$W/b1" "$W/b1.h5" "$W/b6" "$W/b6.h5" >"$ERR" 2>&1; then
  ok "an image is the same in any seed list"; else not_ok "an image is the same in any seed list" "$(tail -1 "$ERR")"; fi
pycheck "churn changes the images" "$W/a.h5" "$W/b1.h5" <<'PYEOF'
import sys
import h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert np.array_equal(a["noise"][()], b["noise"][:6]) and not np.array_equal(a["x"][()], b["x"][:6])
PYEOF

# --subdirs: DIR/{(seed/1000)*1000:06d}/{seed:06d}.png
expect "--subdirs, seeds 998-1001" 0 "" -- "$G" --net "$NET" --outdir "$W/sub" --subdirs --seeds 998-1001 --quiet
[ "$(cd "$W/sub" && find . -type f | LC_ALL=C sort | tr '\n' ' ')" = \
  "./000000/000998.png ./000000/000999.png ./001000/001000.png ./001000/001001.png " ] &&
  ok "--subdirs layout" || not_ok "--subdirs layout" "$(cd "$W/sub" && find . -type f | tr '\n' ' ')"

# --noise-from: the raw file of a run is a noise file; feeding it back reproduces the run.
expect "--noise-from a raw file" 0 "" -- "$G" "${S[@]}" --noise-from "$W/b1.h5" --save-raw "$W/nf.h5" --quiet
pycheck "--noise-from reproduces the samples, churn included" "$W/b1.h5" "$W/nf.h5" <<'PYEOF'
import sys
import h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for k in ("x", "noise", "labels", "seeds"): assert np.array_equal(a[k][()], b[k][()]), k
PYEOF
"$PY" - "$W" <<'PYEOF'
import sys
import h5py, numpy as np
w = sys.argv[1]
r = np.random.RandomState(1)
n, l = r.standard_normal((4, 1, 8, 8)).astype(np.float32), np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
def mk(name, **d):
    with h5py.File(w + "/" + name, "w") as f:
        for k, v in d.items(): f.create_dataset(k, data=v)
mk("noise.h5", noise=n, labels=l)
mk("noise_nolabels.h5", noise=n)
mk("noise_n3.h5", noise=n[:3], labels=l[:3])
mk("noise_c3.h5", noise=np.repeat(n, 3, axis=1), labels=l)
mk("noise_badlabels.h5", noise=n, labels=np.ones((4, 2), np.float32))
nn = n.copy(); nn[2, 0, 1, 1] = np.nan
mk("noise_nan.h5", noise=nn, labels=l)
mk("nothing.h5", x=n)
PYEOF
expect "--noise-from a python-made file" 0 "" -- "$G" --net "$NET" --seeds 0-3 --noise-from "$W/noise.h5" --save-raw "$W/n1.h5" --quiet
expect "the same again, batch 3" 0 "" -- "$G" --net "$NET" --seeds 0-3 --noise-from "$W/noise.h5" --save-raw "$W/n2.h5" --batch 3 --quiet
pycheck "--noise-from: the file's noise and labels are used, deterministically" "$W/n1.h5" "$W/n2.h5" "$W/noise.h5" <<'PYEOF'
import sys
import h5py, numpy as np
a, b, src = (h5py.File(p, "r") for p in sys.argv[1:])
assert np.array_equal(a["x"][()], b["x"][()])
assert np.array_equal(a["noise"][()], src["noise"][()]) and np.array_equal(a["labels"][()], src["labels"][()])
PYEOF
expect "--noise-from without labels and --class 1" 0 "" -- "$G" --net "$NET" --seeds 0-3 --noise-from "$W/noise_nolabels.h5" --class 1 --save-raw "$W/n3.h5" --quiet
pycheck "--class K: every label is one-hot K" "$W/n3.h5" <<'PYEOF'
import sys
import h5py, numpy as np
assert np.array_equal(h5py.File(sys.argv[1], "r")["labels"][()], np.eye(3, dtype=np.float32)[[1] * 4])
PYEOF

# Guidance.
expect "--guidance 1 with a --gnet that is not even there: a warning, no guidance" 0 "--gnet $W/absent.h5 is not used" -- \
  "$G" --net "$NET" --seeds 0-5 --outdir "$W/g1" --guidance 1 --gnet "$W/absent.h5" --threads 1
[ "$(digest "$W/a")" = "$(digest "$W/g1")" ] && ok "--guidance 1 gives the unguided images" || not_ok "--guidance 1 gives the unguided images" "differ"
expect "guided by itself (conditional gnet)" 0 "" -- "$G" --net "$NET" --seeds 0-5 --outdir "$W/gs" --guidance 2.5 --gnet "$NET" --quiet
[ "$(digest "$W/a")" = "$(digest "$W/gs")" ] && ok "D_g + w (D - D_g) with D_g = D is D: unguided bytes" ||
  not_ok "guided by itself equals unguided" "differ"
expect "guided by an unconditional snapshot profile (--gprofile)" 0 "" -- "$G" --net "$NET" --seeds 0-5 --outdir "$W/gu" \
  --guidance 2 --gnet "$W/uncond/snapshots/snapshot-000000000000.h5" --gprofile 0.100 --save-raw "$W/gu.h5" --quiet
pycheck "guidance changes the images" "$W/a.h5" "$W/gu.h5" <<'PYEOF'
import sys, json
import h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert not np.array_equal(a["x"][()], b["x"][()]) and np.isfinite(b["x"][()]).all()
assert b.attrs["gnet_format"] == "edm2c-snapshot" and b.attrs["gprofile"] == "0.100" and json.loads(b.attrs["options"])["guidance"] == 2
PYEOF
expect "main network from a snapshot profile" 0 "" -- "$G" --net "$W/cond/snapshots/snapshot-000000000000.h5" --profile 0.050 --outdir "$W/snap" --quiet
expect "unconditional network" 0 "" -- "$G" --net "$(ck uncond)" --outdir "$W/u" --seeds 0-2 --save-raw "$W/u.h5" --quiet
pycheck "unconditional: no labels dataset" "$W/u.h5" <<'PYEOF'
import sys
import h5py
f = h5py.File(sys.argv[1], "r")
assert "labels" not in f and f["x"].shape == (3, 1, 8, 8)
PYEOF

# RGB and latent networks.
expect "RGB network" 0 "" -- "$G" --net "$(ck rgb)" --outdir "$W/rgbout" --seeds 0-4 --grid "$W/rgb.png" --save-raw "$W/rgb.h5" --quiet
pycheck "RGB: 8x8 RGB PNGs of the raw samples, 3x2 grid" "$W/rgbout" "$W/rgb.h5" "$W/rgb.png" <<'PYEOF'
import sys
import h5py, numpy as np
import pngread
x = h5py.File(sys.argv[2], "r")["x"][()]
assert x.shape == (5, 3, 8, 8)
for i in range(5):
    img = pngread.read("%s/%06d.png" % (sys.argv[1], i))
    assert img.shape == (8, 8, 3) and np.array_equal(img, pngread.to_u8(x[i])), i
g = pngread.read(sys.argv[3])
assert g.shape == (16, 24, 3) and not g[8:, 16:].any(), g.shape  # 5 images: the last cell stays black
PYEOF
expect "latent network without --save-raw is refused" 1 "4-channel latent network: its images need the Stable Diffusion VAE decoder" -- \
  "$G" --net "$(ck latent)" --outdir "$W/lat" --seeds 0-2
[ ! -e "$W/lat" ] && ok "refused latent run created nothing" || not_ok "refused latent run created nothing" "$W/lat exists"
expect "latent network with --save-raw: a warning, no PNGs" 0 "writing only $W/lat.h5 (no PNGs, no grid)" -- \
  "$G" --net "$(ck latent)" --outdir "$W/lat" --seeds 0-2 --save-raw "$W/lat.h5" --grid "$W/lat.png"
pycheck "latent raw samples [3, 4, 8, 8]; no PNG written" "$W/lat.h5" "$W" <<'PYEOF'
import os, sys
import h5py, numpy as np
x = h5py.File(sys.argv[1], "r")["x"][()]
assert x.shape == (3, 4, 8, 8) and np.isfinite(x).all()
assert not os.path.exists(sys.argv[2] + "/lat.png") and not (os.path.isdir(sys.argv[2] + "/lat") and os.listdir(sys.argv[2] + "/lat"))
PYEOF

# --- bad input: one line, exit 1, nothing generated -----------------------------------------------
bad() { # bad NAME NEEDLE ARGS...: must fail before sampling; $W/bad gets no PNG
  name=$1 needle=$2
  shift 2
  rm -rf "$W/bad"
  expect "$name" 1 "$needle" -- "$G" "$@" --quiet || return
  if ls "$W/bad"/*.png >/dev/null 2>&1 || ls "$W/bad"/*.tmp >/dev/null 2>&1; then not_ok "$name: nothing written" "$(ls "$W/bad")"; fi
}
N=(--net "$NET" --outdir "$W/bad")
bad "empty seed list" "--seeds: empty seed list" "${N[@]}" --seeds ""
bad "empty seed item" "--seeds: '1,,2' has an empty item" "${N[@]}" --seeds 1,,2
bad "descending range" "--seeds: the range '9-3' descends" "${N[@]}" --seeds 0,9-3
bad "negative seed" "--seeds: '-1' is negative" "${N[@]}" --seeds 2,-1
bad "malformed seed" "--seeds: 'x7' is not a seed or a range" "${N[@]}" --seeds 1,x7
bad "malformed range" "--seeds: '1-2-3' is not a seed or a range" "${N[@]}" --seeds 1-2-3
bad "duplicate seed" "--seeds: seed 3 appears twice" "${N[@]}" --seeds 1-4,3
bad "--class out of range" "--class 3: $NET has 3 classes (0 to 2)" "${N[@]}" --class 3
bad "--class on an unconditional network" "--class 0: $(ck uncond) is unconditional" --net "$(ck uncond)" --outdir "$W/bad" --class 0
bad "--guidance without --gnet" "--guidance 1.5 needs a guiding network" "${N[@]}" --guidance 1.5
bad "guiding network of another image shape" "--gnet $(ck rgb) makes 3x8x8 images, --net $NET 1x8x8" "${N[@]}" --guidance 2 --gnet "$(ck rgb)"
bad "guiding network with other labels" "--gnet $(ck two) has label_dim 2, --net $NET 3" "${N[@]}" --guidance 2 --gnet "$(ck two)"
bad "missing network" "$W/absent.h5" --net "$W/absent.h5" --outdir "$W/bad"
bad "snapshot without --profile" "several EMA profiles" --net "$W/cond/snapshots/snapshot-000000000000.h5" --outdir "$W/bad"
bad "--backend cuda" "--backend cuda: only the cpu backend exists in this build" "${N[@]}" --backend cuda
bad "--steps 0" "--steps" "${N[@]}" --steps 0
bad "--sigma-min above --sigma-max" "--sigma" "${N[@]}" --sigma-min 90
bad "--noise-from with too few images" "noise_n3.h5: noise has shape [3, 1, 8, 8]; 4 seeds of the network's images need [4, 1, 8, 8]" \
  "${N[@]}" --seeds 0-3 --noise-from "$W/noise_n3.h5"
bad "--noise-from with other channels" "noise has shape [4, 3, 8, 8]; 4 seeds of the network's images need [4, 1, 8, 8]" \
  "${N[@]}" --seeds 0-3 --noise-from "$W/noise_c3.h5"
bad "--noise-from labels of the wrong shape" "labels has shape [4, 2]; 4 seeds of the network need [4, 3]" \
  "${N[@]}" --seeds 0-3 --noise-from "$W/noise_badlabels.h5"
bad "--noise-from without labels for a conditional network" "no dataset 'labels'" "${N[@]}" --seeds 0-3 --noise-from "$W/noise_nolabels.h5"
bad "--noise-from without noise" "nothing.h5: no dataset 'noise'" "${N[@]}" --seeds 0-3 --noise-from "$W/nothing.h5"
bad "--noise-from holding NaN" "noise holds NaN at image 2" "${N[@]}" --seeds 0-3 --noise-from "$W/noise_nan.h5"
: >"$W/afile"
bad "unwritable output folder" "cannot create directory $W/afile" --net "$NET" --outdir "$W/afile/out"
bad "unwritable grid" "$W/afile/g.png" "${N[@]}" --grid "$W/afile/g.png"
bad "unwritable raw file" "$W/afile/r.h5" "${N[@]}" --save-raw "$W/afile/r.h5"
expect "no --net is a usage error" 2 "" -- "$G" --outdir "$W/bad"
expect "no output is a usage error" 2 "" -- "$G" --net "$NET"

# Existing outputs: refused before any sampling, naming the first; nothing changed; --force replaces.
before=$(digest "$W/a"; cksum <"$W/a.png"; cksum <"$W/a.h5")
rm "$W/a/000000.png"
expect "existing PNG is refused" 1 "$W/a/000001.png exists; give --force to replace it" -- \
  "$G" --net "$(ck uncond)" --outdir "$W/a" --seeds 0-5 --quiet
[ ! -e "$W/a/000000.png" ] && ok "refused run generated nothing" || not_ok "refused run generated nothing" "000000.png written"
expect "existing grid is refused" 1 "$W/a.png exists" -- "$G" --net "$(ck uncond)" --outdir "$W/a2" --seeds 0-5 --grid "$W/a.png" --quiet
expect "existing raw file is refused" 1 "$W/a.h5 exists" -- "$G" --net "$(ck uncond)" --seeds 0-5 --save-raw "$W/a.h5" --quiet
[ ! -e "$W/a2" ] || [ -z "$(ls "$W/a2")" ] && ok "refused runs wrote no PNG" || not_ok "refused runs wrote no PNG" "$(ls "$W/a2")"
expect "--force replaces them" 0 "" -- "$G" --net "$NET" --outdir "$W/a" --seeds 0-5 --grid "$W/a.png" --save-raw "$W/a.h5" --force --quiet --batch 4
[ "$before" = "$(digest "$W/a"; cksum <"$W/a.png"; cksum <"$W/a.h5")" ] && ok "--force rewrote the same bytes" ||
  not_ok "--force rewrote the same bytes" "differ"

# --- several processes ----------------------------------------------------------------------------
if [ "${EDM2C_MPI:-0}" != 1 ]; then
  echo "ok $((n_test + 1)) # SKIP mpirun -np 2: edm2-generate was built without MPI"; n_test=$((n_test + 1)); n_ok=$((n_ok + 1))
elif ! command -v mpirun >/dev/null 2>&1 || ! mpirun --version 2>/dev/null | grep -q "Open MPI"; then
  echo "ok $((n_test + 1)) # SKIP mpirun -np 2: no Open MPI mpirun"; n_test=$((n_test + 1)); n_ok=$((n_ok + 1))
else
  MPIRUN=(mpirun -q --oversubscribe)
  if [ "$(id -u)" -eq 0 ]; then
    MPIRUN+=(--allow-run-as-root)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  if ! "${MPIRUN[@]}" -np 2 true >"$OUT" 2>"$ERR"; then
    echo "ok $((n_test + 1)) # SKIP mpirun -np 2: mpirun cannot start 2 processes here: $(head -n 1 "$ERR")"
    n_test=$((n_test + 1)); n_ok=$((n_ok + 1))
  else
    expect "mpirun -np 2" 0 "" -- "${MPIRUN[@]}" -np 2 "$G" "${S[@]}" --outdir "$W/m" --batch 2 --save-raw "$W/m.h5" --threads 1
    if same_images "$W/b1" "$W/b1.h5" "$W/m" "$W/m.h5" >"$ERR" 2>&1; then ok "2 processes: the images of 1"
    else not_ok "2 processes: the images of 1" "$(tail -1 "$ERR")"; fi
    [ "$(grep -c "^edm2-generate: 7 images" "$OUT")" -eq 1 ] && [ ! -s "$ERR" ] && ok "2 processes: one summary line" ||
      not_ok "2 processes: one summary line" "$(cat "$OUT" "$ERR")"
    "${MPIRUN[@]}" -np 3 "$G" "${S[@]}" --outdir "$W/m" --quiet >"$OUT" 2>"$ERR"
    rc=$?
    [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "$W/m/000000.png exists" "$ERR" &&
      ok "3 processes, existing outputs: one line, exit 1" || not_ok "3 processes, existing outputs: one line, exit 1" "rc $rc"
    # Rank 1 cannot write (a file-size limit of 0): every process stops with its message, printed once.
    "${MPIRUN[@]}" -np 2 bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then ulimit -f 0; trap "" XFSZ; fi; exec "$@"' \
      bash "$G" --net "$NET" --seeds 0-9 --batch 2 --outdir "$W/mfull" --threads 1 --quiet >"$OUT" 2>"$ERR"
    rc=$?
    [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "cannot write $W/mfull/000001.png" "$ERR" &&
      [ ! -e "$W/mfull/000004.png" ] && ! find "$W/mfull" -name '*.tmp' | grep -q . &&
      ok "rank 1 fails to write: all stop after that batch, one line, no temporaries" ||
      not_ok "rank 1 fails to write: all stop after that batch, one line, no temporaries" "rc $rc; $(ls "$W/mfull" | tr '\n' ' ')"
  fi
fi

# --- SIGINT: no temporary file left -------------------------------------------------------------
"$G" --net "$NET" --outdir "$W/int" --seeds 0-99999 --batch 1 --threads 1 --quiet >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 100); do [ -e "$W/int/000002.png" ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
if [ "$rc" -eq 130 ] && ! find "$W/int" -name '*.tmp' | grep -q .; then
  ok "SIGINT: exit 130, no temporary file"
else
  not_ok "SIGINT: exit 130, no temporary file" "rc $rc; $(find "$W/int" -name '*.tmp' | head -3)"
fi
finish
