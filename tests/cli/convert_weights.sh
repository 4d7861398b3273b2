#!/usr/bin/env bash
# tools/convert-weights: .pth files written by PyTorch (tests/golden/pth_*.pth, from
# tests/golden/gen_pth_fixtures.py) in the legacy and the zip format, converted and checked bit
# for bit against tests/golden/pth_tiny_expected.npz by parsing the safetensors file with
# json + struct + numpy; refusals (a pickle calling os.system or eval, truncated, not a .pth,
# NaN, float64 overflow), validation of the FID Inception and DINOv2 tensor sets on .pth files
# written here without torch (one shared element, stride 0), output naming, --force, and no
# temporary file left behind. Needs CONVERT_WEIGHTS and GOLDEN_DIR (set by meson);
# /usr/bin/python3 with numpy, else SKIP.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with numpy is not installed"
  exit 77
fi
G=$GOLDEN_DIR
CW() { "$PY" "$CONVERT_WEIGHTS" "$@"; }
cd "$WORK" || exit 1

# check ST SRC NETWORK: ST is a well-formed safetensors file whose tensors are exactly
# pth_tiny_expected.npz's, bit for bit, with the metadata of SRC.
cat >"$WORK/check.py" <<'PYEOF'
import hashlib, json, os, struct, sys
import numpy as np
st, src, network, npz = sys.argv[1:5]
raw = open(st, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, f'header length {n} is not a multiple of 8'
text = raw[8:8 + n].decode('utf-8')
assert text.rstrip(' ') == text.strip() and text.startswith('{'), 'header padding'
h = json.loads(text)
meta = h.pop('__metadata__')
want = {'format': 'edm2c-weights', 'network': network, 'source': os.path.basename(src),
        'source_sha256': hashlib.sha256(open(src, 'rb').read()).hexdigest()}
assert meta == want, f'metadata {meta} != {want}'
e = np.load(npz)
names = list(e['__names__'])
assert list(h) == names, f'tensors {list(h)} != {names}'
for d in e['__dropped__']:
    assert d not in h, f'{d} kept'
off = 0
for k, v in h.items():
    x = e[k]
    assert v['dtype'] == 'F32' and v['shape'] == list(x.shape), f'{k}: {v} vs {x.shape}'
    b, end = v['data_offsets']
    assert b == off and end == b + 4 * x.size, f'{k}: offsets {v["data_offsets"]}'
    got = np.frombuffer(raw, '<u4', x.size, 8 + n + b).reshape(x.shape)
    assert np.array_equal(got, x.astype('<f4').view('<u4')), f'{k}: values differ'
    off = end
assert len(raw) == 8 + n + off, f'file size {len(raw)}, expected {8 + n + off}'
print(f'{len(h)} tensors match')
PYEOF
check() {
  if "$PY" "$WORK/check.py" "$2" "$3" "$4" "$G/pth_tiny_expected.npz" >"$OUT" 2>"$ERR"; then
    ok "$1"
  else
    not_ok "$1" "$(tail -1 "$ERR")"
  fi
}
# noleft NAME DIR: DIR holds nothing but what digest listed before (no temporary file).
noleft() {
  if [ -z "$(find "$2" -name '*.tmp')" ]; then ok "$1"; else not_ok "$1" "$(find "$2" -name '*.tmp')"; fi
}

# Conversions of PyTorch's own files.
mkdir -p out
expect "legacy format" 0 "" -- CW "$G/pth_tiny_legacy.pth" --network any --out out/legacy.safetensors
grep -qE '^any: 11 tensors, 68 parameters, [0-9]+ bytes, 2 integer tensors dropped -> out/legacy\.safetensors$' "$OUT" &&
  [ "$(wc -l <"$OUT")" -eq 1 ] && ok "summary line" || not_ok "summary line" "$(cat "$OUT")"
check "legacy: tensors bit for bit" out/legacy.safetensors "$G/pth_tiny_legacy.pth" any
expect "zip format" 0 "" -- CW "$G/pth_tiny_zip.pth" --network any --out out/zip.safetensors
check "zip: tensors bit for bit" out/zip.safetensors "$G/pth_tiny_zip.pth" any
expect "wrapped state dict" 0 "" -- CW "$G/pth_tiny_wrapped.pth" --network any --out out/wrapped.safetensors
check "wrapped: tensors bit for bit" out/wrapped.safetensors "$G/pth_tiny_wrapped.pth" any
noleft "no temporary files" out

# Existing outputs: refused without --force (untouched), replaced with it.
before=$(digest out)
expect "existing output refused" 1 "out/zip.safetensors: exists (--force" -- CW "$G/pth_tiny_legacy.pth" --network any --out out/zip.safetensors
[ "$(digest out)" = "$before" ] && ok "existing output untouched" || not_ok "existing output untouched" "changed"
expect "--force" 0 "" -- CW "$G/pth_tiny_legacy.pth" --network any --out out/zip.safetensors --force
check "--force: replaced" out/zip.safetensors "$G/pth_tiny_legacy.pth" any

# Failures while writing (a NaN, float64 beyond float32) leave neither the output nor a
# temporary file, and an existing output stays as it was even with --force.
mkdir fail
expect "NaN refused" 1 "tensor bad holds 1 non-finite value(s) (first: nan at index (1, 2))" -- \
  CW "$G/pth_nan_legacy.pth" --network any --out fail/nan.safetensors
[ -z "$(ls -A fail)" ] && ok "NaN: nothing left" || not_ok "NaN: nothing left" "$(ls -A fail)"
expect "float64 overflow refused" 1 "tensor big holds 1 non-finite value(s) after rounding float64 to float32" -- \
  CW "$G/pth_overflow_zip.pth" --network any --out fail/big.safetensors
[ -z "$(ls -A fail)" ] && ok "overflow: nothing left" || not_ok "overflow: nothing left" "$(ls -A fail)"
cp out/legacy.safetensors fail/keep.safetensors
before=$(digest fail)
expect "NaN with --force" 1 "pth_nan_legacy.pth: tensor bad" -- CW "$G/pth_nan_legacy.pth" --network any --out fail/keep.safetensors --force
[ "$(digest fail)" = "$before" ] && ok "NaN with --force: old output kept, no temporary" || not_ok "NaN with --force: old output kept, no temporary" "$(ls -A fail)"

# Pickles that would run code are refused without running it.
expect "os.system refused" 1 "refusing the pickle global os.system" -- CW "$G/pth_evil_legacy.pth" --network any --out fail/e.safetensors
grep -qF "pth_evil_legacy.pth" "$ERR" && ok "os.system: names the file" || not_ok "os.system: names the file" "$(cat "$ERR")"
expect "eval refused" 1 "refusing the pickle global builtins.eval" -- CW "$G/pth_evil_zip.pth" --network any --out fail/e.safetensors
[ ! -e edm2c-pwned-file ] && ok "nothing executed" || not_ok "nothing executed" "edm2c-pwned-file exists"
[ -z "$(ls -A fail | grep -v keep.safetensors)" ] && ok "refusals: nothing written" || not_ok "refusals: nothing written" "$(ls -A fail)"

# Damaged inputs: one line naming the file, exit 1, nothing written.
size=$(wc -c <"$G/pth_tiny_legacy.pth")
for cut in 30 300 $((size - 100)) $((size - 1)); do
  head -c "$cut" "$G/pth_tiny_legacy.pth" >"cut$cut.pth"
  expect "legacy truncated at $cut" 1 "cut$cut.pth" -- CW "cut$cut.pth" --network any --out fail/t.safetensors
done
grep -qF "truncated" "$ERR" && ok "truncated: says so" || not_ok "truncated: says so" "$(cat "$ERR")"
head -c 2000 "$G/pth_tiny_zip.pth" >cutzip.pth
expect "zip truncated" 1 "cutzip.pth: a truncated or damaged zip archive" -- CW cutzip.pth --network any --out fail/t.safetensors
printf 'not a pth file\n' >junk.pth
expect "not a .pth" 1 "junk.pth: not a PyTorch .pth file" -- CW junk.pth --network any --out fail/t.safetensors
: >empty.pth
expect "empty file" 1 "empty.pth: empty file" -- CW empty.pth --network any --out fail/t.safetensors
expect "missing file" 1 "nope.pth: No such file" -- CW nope.pth --network any --out fail/t.safetensors
"$PY" -c 'import pickle, sys; pickle.dump([1, 2], open(sys.argv[1], "wb"), protocol=2)' plain.pth
expect "a pickle that is not torch's" 1 "plain.pth: not a PyTorch file" -- CW plain.pth --network any --out fail/t.safetensors
expect "output directory missing" 1 "cannot create a temporary file" -- CW "$G/pth_tiny_zip.pth" --network any --out "$WORK/no/dir/x.safetensors"
[ -z "$(ls -A fail | grep -v keep.safetensors)" ] && ok "damaged inputs: nothing written" || not_ok "damaged inputs: nothing written" "$(ls -A fail)"

# Which network: not recognised, or forced and not matching.
expect "not recognised" 1 "neither the FID Inception-v3 nor DINOv2 ViT-L/14" -- CW "$G/pth_tiny_zip.pth" --out fail/t.safetensors
expect "forced fid" 1 "not the fid network: tensor Conv2d_1a_3x3.conv.weight is missing (expected shape (32, 3, 3, 3))" -- \
  CW "$G/pth_tiny_zip.pth" --network fid --out fail/t.safetensors

# The FID Inception and DINOv2 tensor sets, written here as zip .pth files without torch (every
# tensor a stride-0 view of one float 0.5), with one tensor changed.
CW --list-expected fid >fid.txt && CW --list-expected fd_dinov2 >dino.txt
[ "$(wc -l <fid.txt)" -eq 470 ] && ok "fid: 94 x 5 tensors" || not_ok "fid: 94 x 5 tensors" "$(wc -l <fid.txt)"
[ "$(wc -l <dino.txt)" -eq 342 ] && ok "fd_dinov2: 342 tensors" || not_ok "fd_dinov2: 342 tensors" "$(wc -l <dino.txt)"
grep -qxF 'Mixed_7c.branch_pool.conv.weight (192, 2048, 1, 1)' fid.txt && grep -qxF 'Mixed_6e.branch7x7dbl_5.bn.running_var (192,)' fid.txt &&
  grep -qxF 'pos_embed (1, 1370, 1024)' dino.txt && grep -qxF 'blocks.23.mlp.fc1.weight (4096, 1024)' dino.txt &&
  ok "--list-expected lines" || not_ok "--list-expected lines" "$(head -2 fid.txt)"
cat >"$WORK/mkpth.py" <<'PYEOF'
# mkpth.py LIST OUT [EDIT...]: a zip .pth of LIST's tensors ("name (shape)" lines); EDIT is
# drop:NAME, shape:NAME:a,b,..., int:NAME, extra:NAME:a,b,... or prefix:P.
import collections, pickle, struct, sys, types, zipfile
lst, out, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
torch, tu = types.ModuleType('torch'), types.ModuleType('torch._utils')
def _rebuild_tensor_v2(*args):
    raise AssertionError
_rebuild_tensor_v2.__module__ = 'torch._utils'
tu._rebuild_tensor_v2 = _rebuild_tensor_v2
class FloatStorage: pass
class LongStorage: pass
for c in (FloatStorage, LongStorage):
    c.__module__ = 'torch'
    setattr(torch, c.__name__, c)
sys.modules.update({'torch': torch, 'torch._utils': tu})
class S:
    def __init__(self, key, typ): self.key, self.typ = key, typ
class T:
    def __init__(self, s, shape): self.s, self.shape = s, tuple(shape)
    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.s, 0, self.shape, (0,) * len(self.shape), False,
                                     collections.OrderedDict()))
class P(pickle.Pickler):
    def persistent_id(self, o):
        return ('storage', o.typ, o.key, 'cpu', 1) if isinstance(o, S) else None
f, i = S('0', FloatStorage), S('1', LongStorage)
shape = lambda s: tuple(int(x) for x in s.strip().strip('()').split(',') if x.strip())
sd = collections.OrderedDict()
for line in open(lst):
    name, s = line.split(' ', 1)
    sd[name] = T(f, shape(s))
for e in edits:
    op, _, rest = e.partition(':')
    name, _, s = rest.partition(':')
    if op == 'drop': del sd[name]
    elif op == 'shape': sd[name] = T(f, shape(s))
    elif op == 'extra': sd[name] = T(f, shape(s))
    elif op == 'int': sd[name] = T(i, sd[name].shape)
    elif op == 'prefix': sd = collections.OrderedDict((name + k, v) for k, v in sd.items())
import io
buf = io.BytesIO()
P(buf, protocol=2).dump(sd)
with zipfile.ZipFile(out, 'w') as z:
    z.writestr('archive/data.pkl', buf.getvalue())
    z.writestr('archive/data/0', struct.pack('<f', 0.5))
    z.writestr('archive/data/1', struct.pack('<q', 3))
    z.writestr('archive/version', '3\n')
PYEOF
mk() { "$PY" "$WORK/mkpth.py" "$@" || echo "# mkpth.py $* failed"; }
mk fid.txt fid_shape.pth 'shape:Mixed_6c.branch7x7_2.conv.weight:160,160,7,1'
expect "fid: misshapen tensor" 1 "tensor Mixed_6c.branch7x7_2.conv.weight has shape (160, 160, 7, 1), expected (160, 160, 1, 7)" -- \
  CW fid_shape.pth --out fail/t.safetensors
mk fid.txt fid_missing.pth drop:Conv2d_4a_3x3.bn.running_var drop:Mixed_5b.branch1x1.bn.bias
expect "fid: missing tensor" 1 "not the fid network: tensor Conv2d_4a_3x3.bn.running_var is missing (expected shape (192,)) (and 1 more problem)" -- \
  CW fid_missing.pth --out fail/t.safetensors
mk fid.txt fid_int.pth int:Conv2d_1a_3x3.bn.running_mean
expect "fid: integer tensor" 1 "tensor Conv2d_1a_3x3.bn.running_mean has dtype int64, expected floating point" -- \
  CW fid_int.pth --out fail/t.safetensors
mk fid.txt fid_prefix.pth prefix:module.
expect "fid: prefixed names" 1 "the names carry a prefix: 'module.'" -- CW fid_prefix.pth --out fail/t.safetensors
mk dino.txt dino_pos.pth 'shape:pos_embed:1,257,1024'
expect "dinov2: pos_embed not recognised" 1 "pos_embed has shape (1, 257, 1024), DINOv2 ViT-L/14 has (1, 1370, 1024)" -- \
  CW dino_pos.pth --out fail/t.safetensors
expect "dinov2 forced: misshapen" 1 "tensor pos_embed has shape (1, 257, 1024), expected (1, 1370, 1024)" -- \
  CW dino_pos.pth --network fd_dinov2 --out fail/t.safetensors
mk dino.txt dino_missing.pth drop:blocks.17.ls2.gamma
expect "dinov2: missing tensor" 1 "not the fd_dinov2 network: tensor blocks.17.ls2.gamma is missing (expected shape (1024,))" -- \
  CW dino_missing.pth --out fail/t.safetensors
[ -z "$(ls -A fail | grep -v keep.safetensors)" ] && ok "validation: nothing written" || not_ok "validation: nothing written" "$(ls -A fail)"

# A whole FID Inception (95 MB of 0.5) recognised and written under its name in $XDG_DATA_HOME,
# the extra float fc.* kept and num_batches_tracked dropped.
mk fid.txt fid.pth extra:fc.weight:1008,2048 extra:fc.bias:1008 extra:Mixed_5b.branch1x1.bn.num_batches_tracked: int:Mixed_5b.branch1x1.bn.num_batches_tracked
expect "fid: converted" 0 "" -- env -u EDM2C_WEIGHTS_DIR XDG_DATA_HOME="$WORK/xdg" "$PY" "$CONVERT_WEIGHTS" fid.pth
grep -qE "^fid: 472 tensors, 23885392 parameters, [0-9]+ bytes, 1 integer tensor dropped -> $WORK/xdg/edm2c/inception-2015-12-05.safetensors\$" "$OUT" &&
  ok "fid: summary" || not_ok "fid: summary" "$(cat "$OUT")"
"$PY" - "$WORK/xdg/edm2c/inception-2015-12-05.safetensors" >"$OUT" 2>"$ERR" <<'PYEOF' && ok "fid: file" || not_ok "fid: file" "$(tail -1 "$ERR")"
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
h = json.loads(raw[8:8 + n])
assert h['__metadata__']['network'] == 'fid' and h['__metadata__']['source'] == 'fid.pth'
assert h['Conv2d_1a_3x3.conv.weight']['shape'] == [32, 3, 3, 3] and 'fc.weight' in h
assert 'Mixed_5b.branch1x1.bn.num_batches_tracked' not in h and len(h) == 473
assert np.all(np.frombuffer(raw, '<f4', offset=8 + n) == 0.5)
PYEOF
rm -rf "$WORK/xdg"

# Default destinations, as edm2-metrics looks for them: $EDM2C_WEIGHTS_DIR, $XDG_DATA_HOME/edm2c,
# ~/.local/share/edm2c; --weights-dir (created).
expect "EDM2C_WEIGHTS_DIR" 0 "" -- env EDM2C_WEIGHTS_DIR="$WORK/ew" XDG_DATA_HOME="$WORK/xdg" "$PY" "$CONVERT_WEIGHTS" "$G/pth_tiny_zip.pth" --network any
[ -f "$WORK/ew/pth_tiny_zip.safetensors" ] && [ ! -e "$WORK/xdg" ] && ok "EDM2C_WEIGHTS_DIR: path" || not_ok "EDM2C_WEIGHTS_DIR: path" "$(cat "$OUT")"
expect "XDG_DATA_HOME" 0 "" -- env -u EDM2C_WEIGHTS_DIR XDG_DATA_HOME="$WORK/xdg" "$PY" "$CONVERT_WEIGHTS" "$G/pth_tiny_zip.pth" --network any
[ -f "$WORK/xdg/edm2c/pth_tiny_zip.safetensors" ] && ok "XDG_DATA_HOME: path" || not_ok "XDG_DATA_HOME: path" "$(cat "$OUT")"
expect "HOME" 0 "" -- env -u EDM2C_WEIGHTS_DIR -u XDG_DATA_HOME HOME="$WORK/home" "$PY" "$CONVERT_WEIGHTS" "$G/pth_tiny_zip.pth" --network any
[ -f "$WORK/home/.local/share/edm2c/pth_tiny_zip.safetensors" ] && ok "HOME: path" || not_ok "HOME: path" "$(cat "$OUT")"
expect "--weights-dir" 0 "" -- CW "$G/pth_tiny_legacy.pth" --network any --weights-dir "$WORK/wd/a/b"
check "--weights-dir: file" "$WORK/wd/a/b/pth_tiny_legacy.safetensors" "$G/pth_tiny_legacy.pth" any
expect "--weights-dir: existing refused" 1 "pth_tiny_legacy.safetensors: exists" -- CW "$G/pth_tiny_legacy.pth" --network any --weights-dir "$WORK/wd/a/b"
noleft "no temporary files anywhere" "$WORK"

# Help and usage.
expect "help" 0 "" -- CW --help
missing=""
for s in "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth" \
  "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth" "--network" \
  "no validation, for tests" "--force" "--weights-dir" "EDM2C_WEIGHTS_DIR" "XDG_DATA_HOME" \
  "num_batches_tracked" \
  "never downloads"; do
  grep -qF -- "$s" "$OUT" || missing="$missing [$s]"
done
[ -z "$missing" ] && ok "help text" || not_ok "help text" "lacks$missing"
expect "no input" 2 "missing the input" -- CW
expect "bad --network" 2 "invalid choice" -- CW "$G/pth_tiny_zip.pth" --network resnet
expect "unknown option" 2 "unrecognized arguments" -- CW "$G/pth_tiny_zip.pth" --frobnicate
finish
