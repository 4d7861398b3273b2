#!/usr/bin/env bash
# edm2-denoise and edm2-train --describe end to end, against the reference implementation's
# numbers in tests/golden/edm2_tiny.h5: model files written by h5py (float32 and float16), a
# snapshot profile, the unconditional network; then one clear line and exit status 1 for each kind
# of bad input (unknown preset, a model of another configuration, bad shapes, sigma <= 0), with
# nothing left behind. NaN weights load with a warning that names the tensor.
# Needs: EDM2_DENOISE, EDM2_TRAIN, GOLDEN (paths, set by meson); /usr/bin/python3 with h5py.
. "$(dirname "$0")/lib.sh"
: "${EDM2_DENOISE:?}" "${EDM2_TRAIN:?}" "${GOLDEN:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with h5py and numpy is not installed"
  exit 77
fi
W=$WORK

# --- inputs, written by h5py from the golden file ----------------------------------------------
"$PY" - "$GOLDEN" "$W" <<'PYEOF' || exit 1
import json, sys
import h5py, numpy as np
golden, w = sys.argv[1], sys.argv[2]
g = h5py.File(golden, "r")
cfg = json.loads(g.attrs["config"])

def model(path, params, buffers, preset="test-tiny", config="{}", dtype=np.float32, edit=None):
    with h5py.File(path, "w") as f:
        f.attrs.update(format="edm2c-model", format_version=np.int64(1), nimg=np.int64(0),
                       preset=preset, config=config, ema="{}")
        for n, v in params.items():
            v = np.asarray(v[()], dtype=np.float32)
            if edit: v = edit(n, v)
            f.create_dataset("params/" + n, data=v.astype(dtype))
        for n, v in buffers.items():
            f.create_dataset("buffers/" + n, data=np.asarray(v[()], dtype=np.float32))

P, B = g["params"], g["buffers"]
model(w + "/tiny.h5", P, B)
model(w + "/tiny16.h5", P, B, dtype=np.float16)
# A custom configuration (no preset) whose config also records training settings.
model(w + "/custom.h5", P, B, preset="", config=json.dumps(dict(cfg, batch=32, lr=0.01)))
model(w + "/uncond.h5", g["uncond/params"], g["uncond/buffers"], config='{"label_dim": 0}')
# Bad models: another configuration's tensors, and NaN weights.
model(w + "/wrong_channels.h5", P, B, config='{"model_channels": 16, "channels_per_head": 16}')
model(w + "/uncond_weights.h5", g["uncond/params"], g["uncond/buffers"])
model(w + "/cond_weights.h5", P, B, config='{"label_dim": 0}')
model(w + "/nan.h5", P, B, edit=lambda n, v: np.where(np.arange(v.size).reshape(v.shape) == 3, np.nan, v)
      if n == "unet.dec.8x8_in0.attn_qkv.weight" else v)
# A checkpoint: raw weights in /params plus training state the loader ignores.
with h5py.File(w + "/ckpt.h5", "w") as f:
    f.attrs.update(format="edm2c-checkpoint", format_version=np.int64(1), nimg=np.int64(4096),
                   preset="test-tiny", config="{}")
    for n, v in P.items():
        f.create_dataset("params/" + n, data=np.asarray(v[()], np.float32))
        f.create_dataset("adam/m/" + n, data=np.zeros(np.shape(v), np.float32))
    for n, v in B.items():
        f.create_dataset("buffers/" + n, data=np.asarray(v[()], dtype=np.float32))
with h5py.File(w + "/future.h5", "w") as f:
    f.attrs.update(format="edm2c-model", format_version=np.int64(2), preset="test-tiny", config="{}")
with h5py.File(w + "/noformat.h5", "w") as f:
    f.create_dataset("params/x", data=np.zeros(3, np.float32))
# A snapshot with two profiles; 0.100 holds the golden weights in float16.
with h5py.File(w + "/snap.h5", "w") as f:
    f.attrs.update(format="edm2c-snapshot", format_version=np.int64(1), nimg=np.int64(8192),
                   batch_size=np.int64(32), preset="edm2-test-tiny", config="{}")
    for key, scale in [("0.050", 0.5), ("0.100", 1.0)]:
        grp = f.create_group("ema/" + key)
        grp.attrs.update(sigma_rel=float(key), gamma=1.0, profile="power")
        for n, v in P.items():
            grp.create_dataset(n, data=(np.asarray(v[()], np.float32) * scale).astype(np.float16))
    for n, v in B.items():
        f.create_dataset("buffers/" + n, data=np.asarray(v[()], dtype=np.float32))

def inputs(path, src, x=None, sigma=None, labels=True):
    e = g[src]
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=e["x"][()] if x is None else x)
        f.create_dataset("sigma", data=e["sigma"][()] if sigma is None else sigma)
        if labels is True and "labels" in e:
            f.create_dataset("labels", data=e["labels"][()])
        elif labels is not True and labels is not None:
            f.create_dataset("labels", data=labels)

inputs(w + "/in.h5", "eval")
inputs(w + "/in_nolabels.h5", "eval", labels=None)
inputs(w + "/in_uncond.h5", "uncond/eval")
x = g["eval/x"][()]
inputs(w + "/bad_channels.h5", "eval", x=np.concatenate([x, x[:, :1]], axis=1))
inputs(w + "/bad_sigma_len.h5", "eval", sigma=g["eval/sigma"][:-1])
inputs(w + "/bad_sigma_zero.h5", "eval", sigma=np.where(np.arange(6) == 4, 0.0, g["eval/sigma"][()]).astype(np.float32))
inputs(w + "/bad_sigma_neg.h5", "eval", sigma=-g["eval/sigma"][()])
inputs(w + "/bad_labels.h5", "eval", labels=np.zeros((6, 5), np.float32))
xn = x.copy(); xn[2, 1, 3, 3] = np.nan
inputs(w + "/bad_x_nan.h5", "eval", x=xn)
with h5py.File(w + "/no_x.h5", "w") as f:
    f.create_dataset("sigma", data=np.ones(2, np.float32))
PYEOF

# compare OUT.h5 GOLDEN_GROUP: D and logvar within the forward tolerance of the golden test
# (max |diff| <= 1e-5 max |ref|; NMSE <= 1e-10).
compare() {
  "$PY" - "$1" "$GOLDEN" "$2" <<'PYEOF'
import sys
import h5py, numpy as np
out, golden, grp = sys.argv[1:]
with h5py.File(out, "r") as o, h5py.File(golden, "r") as g:
    assert o.attrs["format"] == "edm2c-denoised"
    for name in ("D", "logvar"):
        a, r = o[name][()].astype(np.float64), g[grp + "/" + name][()].astype(np.float64)
        assert a.shape == r.shape, (name, a.shape, r.shape)
        rel = np.abs(a - r).max() / np.abs(r).max()
        nmse = ((a - r) ** 2).sum() / (r ** 2).sum()
        assert rel <= 1e-5 and nmse <= 1e-10, (name, rel, nmse)
PYEOF
}

# The golden file was written by the committed generator (its SHA-256 is recorded in the file):
# a generator edited without regenerating the data fails here.
golden_current() {
  "$PY" - "$GOLDEN" "$(dirname "$GOLDEN")/gen_edm2_net.py" <<'PYEOF'
import hashlib, sys
import h5py
golden, gen = sys.argv[1:]
with h5py.File(golden, "r") as g:
    recorded = g.attrs["generator_sha256"]
actual = hashlib.sha256(open(gen, "rb").read()).hexdigest()
assert recorded == actual, f"{golden} was written by a generator with SHA-256 {recorded}; {gen} is {actual}: regenerate it"
PYEOF
}

# same A.h5 B.h5: D and logvar bitwise equal
same() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for n in ("D", "logvar"):
        assert np.array_equal(a[n][()], b[n][()]), n
PYEOF
}

check() { # check NAME COMMAND...: run a python check and record it
  name=$1
  shift
  if "$@" 2>"$ERR"; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}

# --- good runs --------------------------------------------------------------------------------
check "golden data comes from the committed generator" golden_current
expect "conditional model" 0 "" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --input "$W/in.h5" --output "$W/out.h5" --quiet
check "conditional D and logvar match the reference" compare "$W/out.h5" eval
expect "batch of 4 (uneven split)" 0 "" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --input "$W/in.h5" --output "$W/out4.h5" --batch 4 --quiet
check "batch size does not change the result" compare "$W/out4.h5" eval
expect "four threads, slices of one and two images" 0 "" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --input "$W/in.h5" --output "$W/outt.h5" --threads 4 --quiet
check "thread count does not change the result" compare "$W/outt.h5" eval
expect "--threads 0 is refused" 1 "--threads: '0' is out of range" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --input "$W/in.h5" --output "$W/x.h5" --threads 0
expect "custom configuration, no preset" 0 "" -- "$EDM2_DENOISE" --net "$W/custom.h5" --input "$W/in.h5" --output "$W/outc.h5" --quiet
check "custom configuration equals the preset" same "$W/out.h5" "$W/outc.h5"
expect "unconditional model" 0 "" -- "$EDM2_DENOISE" --net "$W/uncond.h5" --input "$W/in_uncond.h5" --output "$W/outu.h5" --quiet
check "unconditional D and logvar match the reference" compare "$W/outu.h5" uncond/eval
expect "snapshot profile 0.100" 0 "" -- "$EDM2_DENOISE" --net "$W/snap.h5" --profile 0.1 --input "$W/in.h5" --output "$W/outs.h5" --quiet
expect "checkpoint" 0 "" -- "$EDM2_DENOISE" --net "$W/ckpt.h5" --input "$W/in.h5" --output "$W/outk.h5" --quiet
check "checkpoint D and logvar match the reference" compare "$W/outk.h5" eval
expect "float16 model" 0 "" -- "$EDM2_DENOISE" --net "$W/tiny16.h5" --input "$W/in.h5" --output "$W/out16.h5" --quiet
check "snapshot profile equals the float16 model file" same "$W/outs.h5" "$W/out16.h5"
expect "missing labels mean zero labels" 0 "" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --input "$W/in_nolabels.h5" --output "$W/outn.h5" --quiet
check "last image (zero labels) agrees with the reference" "$PY" -c "
import h5py, numpy as np
a = h5py.File('$W/outn.h5')['D'][-1]; r = h5py.File('$GOLDEN')['eval/D'][-1]
assert np.abs(a - r).max() <= 1e-5 * np.abs(r).max()"
expect "labels ignored by an unconditional model" 0 "unconditional" -- "$EDM2_DENOISE" --net "$W/uncond.h5" --input "$W/in.h5" --output "$W/outul.h5"
expect "NaN weights: a warning naming the tensor" 0 "unet.dec.8x8_in0.attn_qkv.weight' holds NaN (element 3)" -- \
  "$EDM2_DENOISE" --net "$W/nan.h5" --input "$W/in.h5" --output "$W/outnan.h5"

# --- bad input: one line, exit 1, nothing written ---------------------------------------------
bad() { # bad NAME NEEDLE ARGS...: edm2-denoise must fail and leave no output behind
  name=$1 needle=$2
  shift 2
  rm -f "$W/bad.h5" "$W/bad.h5.tmp"
  expect "$name" 1 "$needle" -- "$EDM2_DENOISE" "$@" --output "$W/bad.h5" --quiet || return
  if [ -e "$W/bad.h5" ] || [ -e "$W/bad.h5.tmp" ]; then not_ok "$name: nothing written" "output left behind"; fi
}
bad "model of another configuration (shape)" "tensor 'params/unet.emb_noise.weight' has shape [16, 8], the network expects [32, 16]" \
  --net "$W/wrong_channels.h5" --input "$W/in.h5"
bad "model of another configuration (missing tensor)" "tensor 'params/unet.emb_label.weight' is missing" \
  --net "$W/uncond_weights.h5" --input "$W/in.h5"
bad "model of another configuration (extra tensor)" "tensor 'params/unet.emb_label.weight' is not part of the network" \
  --net "$W/cond_weights.h5" --input "$W/in.h5"
bad "newer format_version" "edm2c-model format_version 2 is newer than this edm2c supports (1); upgrade edm2c" --net "$W/future.h5" --input "$W/in.h5"
bad "not an edm2c file" "no 'format' attribute" --net "$W/noformat.h5" --input "$W/in.h5"
bad "missing model file" "$W/absent.h5" --net "$W/absent.h5" --input "$W/in.h5"
bad "snapshot without --profile" "several EMA profiles (0.050, 0.100)" --net "$W/snap.h5" --input "$W/in.h5"
bad "snapshot profile absent" "no EMA profile '0.2' (the snapshot holds: 0.050, 0.100)" --net "$W/snap.h5" --profile 0.2 --input "$W/in.h5"
bad "--profile on a model file" "--profile applies to snapshots" --net "$W/tiny.h5" --profile 0.1 --input "$W/in.h5"
bad "x of the wrong shape" "x has shape [6, 3, 16, 16]; the network takes [N, 2, 16, 16]" --net "$W/tiny.h5" --input "$W/bad_channels.h5"
bad "sigma of the wrong length" "sigma has shape [5]; x holds 6 images" --net "$W/tiny.h5" --input "$W/bad_sigma_len.h5"
bad "sigma = 0" "sigma[4] = 0; every sigma must be positive" --net "$W/tiny.h5" --input "$W/bad_sigma_zero.h5"
bad "sigma < 0" "sigma[0] = -0.002" --net "$W/tiny.h5" --input "$W/bad_sigma_neg.h5"
bad "labels of the wrong shape" "labels has shape [6, 5]; the network takes [6, 4]" --net "$W/tiny.h5" --input "$W/bad_labels.h5"
bad "NaN in x" "x holds NaN at image 2" --net "$W/tiny.h5" --input "$W/bad_x_nan.h5"
bad "no x" "no dataset 'x'" --net "$W/tiny.h5" --input "$W/no_x.h5"

before=$(cksum <"$W/out.h5")
expect "existing output is kept" 1 "out.h5 exists; give --force" -- "$EDM2_DENOISE" --net "$W/uncond.h5" --input "$W/in_uncond.h5" --output "$W/out.h5" --quiet
[ "$before" = "$(cksum <"$W/out.h5")" ] && ok "existing output unchanged" || not_ok "existing output unchanged" "changed"
expect "--force replaces it" 0 "" -- "$EDM2_DENOISE" --net "$W/uncond.h5" --input "$W/in_uncond.h5" --output "$W/out.h5" --quiet --force
check "replaced output is the new one" compare "$W/out.h5" uncond/eval
expect "missing --input is a usage error" 2 "" -- "$EDM2_DENOISE" --net "$W/tiny.h5" --output "$W/x.h5"

# --- edm2-train --describe ----------------------------------------------------------------------
expect "describe img512-xs" 0 "" -- "$EDM2_TRAIN" --preset img512-xs --describe
grep -q "^# trainable parameters: 124713253 " "$OUT" && ok "img512-xs has 124,713,253 parameters" || not_ok "img512-xs params" "$(tail -3 "$OUT")"
grep -q "^# Gflops per evaluation: 45.50 " "$OUT" && ok "img512-xs 45.50 Gflops" || not_ok "img512-xs Gflops" "$(tail -1 "$OUT")"
expect "describe json, unconditional" 0 "" -- "$EDM2_TRAIN" --preset edm2-img64-s --describe --json --uncond
check "json fields" "$PY" -c "
import json
d = json.load(open('$OUT'))
assert d['preset'] == 'img64-s' and d['params'] == 279441381 and abs(d['gflops'] - 101.90) < 0.005, d['params']
assert d['config']['label_dim'] == 0 and all(t.keys() >= {'name', 'shape'} for t in d['tensors'])
assert sum(1 for t in d['tensors'] if t['name'] == 'unet.emb_label.weight') == 0"
expect "unknown preset" 1 "unknown preset 'img512-q' (known: img512-xxs" -- "$EDM2_TRAIN" --preset img512-q --describe
expect "bad --config key" 1 "--config: unknown config key 'model_chanels'" -- "$EDM2_TRAIN" --preset fmnist --describe --config '{"model_chanels": 8}'
expect "bad --config value" 1 "64 channels at 8x8 do not split into 3 attention heads" -- "$EDM2_TRAIN" --preset fmnist --describe --config '{"channels_per_head": 21}'
expect "training needs --outdir" 2 "" -- "$EDM2_TRAIN" --preset fmnist
finish
