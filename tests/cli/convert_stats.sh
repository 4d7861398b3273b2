#!/usr/bin/env bash
# tools/convert-stats: EDM2-layout statistics pickles written here at run time with numpy at full
# size (fid 2048, fd_dinov2 1024) under pickle protocols 2, 4 (Python's default, what EDM2's
# calculate_metrics.py writes) and 5 (numpy's in-band PickleBuffer), with numpy 2's module names,
# float32, big-endian and Fortran-order arrays and a numpy-scalar num_images, converted to HDF5 and
# checked bit for bit with h5py; .npz in and out (--to-npz) and round trips; edm2-metrics reading
# the results (the distance of a file to itself, and |Δμ|² between statistics of equal Σ);
# refusals, one line naming the file and key: wrong dimension, not square, asymmetric sigma, NaN,
# Inf, negative variance, integer dtype, missing keys, truncated or trailing bytes, pickles that
# would run code (tests/golden/stats_*.pkl from tests/golden/gen_stats_pkl.py), an existing output
# (untouched without --force), usage errors, and no temporary file left behind.
# Needs CONVERT_STATS, GOLDEN_DIR and (for the edm2-metrics checks) EDM2_METRICS, set by meson;
# /usr/bin/python3 with numpy and h5py, else SKIP.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy, h5py' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with numpy and h5py is not installed"
  exit 77
fi
G=$GOLDEN_DIR
M=${EDM2_METRICS:-}
CS() { "$PY" "$CONVERT_STATS" "$@"; }
cd "$WORK" || exit 1

# mk CASE FILE: writes the statistics pickle (or .npz) CASE into FILE; the arrays come from seeded
# generators, so check.py rebuilds the same ones to compare with.
cat >"$WORK/stats.py" <<'PYEOF'
import pickle, sys, types
import numpy as np

def moments(D, seed):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((D, 192))
    sigma = B @ B.T / 192 + 0.25 * np.eye(D)  # well-conditioned, exactly symmetric
    return rng.standard_normal(D), sigma

def stats():
    (fm, fs), (dm, ds) = moments(2048, 1), moments(1024, 2)
    return {'num_images': 50000, 'fid': {'mu': fm, 'sigma': fs}, 'fd_dinov2': {'mu': dm, 'sigma': ds}}

def tiny_asym(s, seed):
    """s plus an antisymmetric part of 1e-10 max|s|: within the converter's 1e-8, and visible if
    the converter transposed (or re-symmetrised) anything."""
    A = np.random.default_rng(seed).standard_normal(s.shape)
    return s + (A - A.T) * 1e-10 * np.abs(s).max()

def variant(case):
    st = stats()
    f, d = st['fid'], st['fd_dinov2']
    if case == 'f32':  # float32 fid, big-endian float64 fd_dinov2
        f['mu'], f['sigma'] = f['mu'].astype('<f4'), f['sigma'].astype('<f4')
        d['mu'], d['sigma'] = d['mu'].astype('>f8'), d['sigma'].astype('>f8')
    elif case == 'fortran':
        f['sigma'] = np.asfortranarray(tiny_asym(f['sigma'], 3))
        d['sigma'] = np.asfortranarray(tiny_asym(d['sigma'], 4))
    elif case == 'npint':
        st['num_images'] = np.int64(12345)
    elif case == 'dino_only':
        del st['fid']
        st['num_images'] = 7
    elif case == 'no_num':
        del st['num_images']
    return st

def bad(case):
    st = stats()
    del st['fid']
    d = st['fd_dinov2']
    if case == 'dim_small': d['mu'], d['sigma'] = np.zeros(1000), np.eye(1000)
    elif case == 'dim_swapped': d['mu'], d['sigma'] = np.zeros(2048), np.eye(2048)
    elif case == 'not_square': d['sigma'] = d['sigma'][:, :1023]
    elif case == 'mu_2d': d['mu'] = d['mu'].reshape(1024, 1)
    elif case == 'asym': d['sigma'][3, 5] += 1e-6 * np.abs(d['sigma']).max()
    elif case == 'nan': d['sigma'][7, 2] = np.nan
    elif case == 'inf': d['mu'][5] = -np.inf
    elif case == 'negvar': d['sigma'][4, 4] = -1.0
    elif case == 'int': d['mu'] = np.arange(1024)
    elif case == 'no_sigma': del d['sigma']
    elif case == 'no_metric': st = {'num_images': 5}
    elif case == 'not_dict': st = [1, 2]
    elif case == 'mu_list': d['mu'] = [0.0] * 1024
    elif case == 'num_str': st['num_images'] = 'many'
    else: raise SystemExit(f'unknown case {case}')
    return st

class Numpy2Pickler(pickle.Pickler):
    """Pickles arrays as numpy 2 does, numpy._core.* instead of numpy.core.*, through stand-in
    functions registered under those names in this process only (never called)."""
    def __init__(self, f, protocol):
        super().__init__(f, protocol=protocol)
        self.proto, self.fake = protocol, {}
        for mod, name in (('numpy._core.multiarray', '_reconstruct'), ('numpy._core.numeric', '_frombuffer')):
            def fn(*a): raise AssertionError
            fn.__module__, fn.__name__, fn.__qualname__ = mod, name, name
            sys.modules['numpy._core'] = types.ModuleType('numpy._core')
            sys.modules[mod] = types.ModuleType(mod)
            setattr(sys.modules[mod], name, fn)
            self.fake[name] = fn
    def reducer_override(self, obj):
        if type(obj) is not np.ndarray:
            return NotImplemented
        r = obj.__reduce_ex__(self.proto)
        return (self.fake[r[0].__name__],) + tuple(r[1:])

if __name__ == '__main__':
    case, out = sys.argv[1], sys.argv[2]
    proto = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    if case == 'npz_shifted':  # fid of stats() with mu + 0.5: FD = |Δμ|² = 0.25 · 2048
        f = stats()['fid']
        np.savez(out, mu=f['mu'] + 0.5, sigma=f['sigma'])
        sys.exit(0)
    st = variant(case) if case in ('full', 'f32', 'fortran', 'npint', 'dino_only', 'no_num') else bad(case)
    with open(out, 'wb') as fo:
        if case == 'full' and len(sys.argv) > 4 and sys.argv[4] == 'np2':
            Numpy2Pickler(fo, proto).dump(st)
        else:
            pickle.dump(st, fo, protocol=proto)
PYEOF
mk() { "$PY" "$WORK/stats.py" "$@" || echo "# stats.py $* failed"; }

# check NAME CASE FILE.h5 [METRICS]: FILE.h5 is an edm2c-stats file holding exactly the named
# metrics of CASE (default: all), bit for bit as float64 in C order, with its attributes.
cat >"$WORK/check.py" <<'PYEOF'
import hashlib, os, sys
import h5py, numpy as np
sys.path.insert(0, os.path.dirname(sys.argv[0]))
import stats
case, path, src = sys.argv[1], sys.argv[2], sys.argv[3]
st = stats.variant(case)
want = sys.argv[4].split(',') if len(sys.argv) > 4 else [m for m in ('fid', 'fd_dinov2') if m in st]
n = st.get('num_images', -1)
with h5py.File(path, 'r') as f:
    a = dict(f.attrs)
    assert a['format'] == 'edm2c-stats' and a['format_version'] == 1, a
    assert a['num_images'] == n, (a['num_images'], n)
    assert a['source'] == os.path.basename(src), a['source']
    assert a['source_sha256'] == hashlib.sha256(open(src, 'rb').read()).hexdigest()
    assert sorted(f.keys()) == sorted(want), list(f.keys())
    for m in want:
        g = f[m]
        assert g.attrs['num_images'] == n
        for k in ('mu', 'sigma'):
            d = g[k]
            x = np.asarray(st[m][k], dtype='<f8')
            assert d.dtype == np.dtype('<f8') and d.shape == x.shape, (m, k, d.dtype, d.shape)
            assert d.fletcher32 and d.chunks is not None, (m, k, 'not checksummed')
            assert np.array_equal(d[()].view('<u8'), np.ascontiguousarray(x).view('<u8')), (m, k, 'values differ')
print('ok')
PYEOF
check() {
  name=$1; shift
  if "$PY" "$WORK/check.py" "$@" >"$OUT" 2>"$ERR"; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}
# npzcheck NAME NPZ CASE METRIC [SHIFT]: NPZ holds exactly mu and sigma of CASE's METRIC, as numpy
# reads it back (float64, C order), bit for bit.
cat >"$WORK/npzcheck.py" <<'PYEOF'
import os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(sys.argv[0]))
import stats
path, case, metric = sys.argv[1:4]
shift = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
st = stats.variant(case)[metric]
with np.load(path, allow_pickle=False) as z:
    assert sorted(z.files) == ['mu', 'sigma'], z.files
    for k in ('mu', 'sigma'):
        x = np.asarray(st[k], dtype='<f8') + (shift if k == 'mu' else 0.0)
        assert z[k].dtype == np.dtype('<f8') and z[k].flags.c_contiguous, (k, z[k].dtype)
        assert np.array_equal(z[k].view('<u8'), x.view('<u8')), (k, 'values differ')
print('ok')
PYEOF
npzcheck() {
  name=$1; shift
  if "$PY" "$WORK/npzcheck.py" "$@" >"$OUT" 2>"$ERR"; then ok "$name"; else not_ok "$name" "$(tail -1 "$ERR")"; fi
}
noleft() {
  if [ -z "$(find "$WORK" -name '*.tmp')" ]; then ok "$1"; else not_ok "$1" "$(find "$WORK" -name '*.tmp')"; fi
}
summary() {  # summary NAME TEXT: stdout is exactly the line TEXT
  if [ "$(cat "$OUT")" = "$2" ]; then ok "$1"; else not_ok "$1" "stdout: $(cat "$OUT")"; fi
}

# EDM2's pickles under each protocol, and numpy 2's module names.
mkdir out
for p in 2 4 5; do
  mk full "p$p.pkl" "$p"
  expect "protocol $p" 0 "" -- CS "p$p.pkl" "out/p$p.h5"
  summary "protocol $p: summary" "fid (2048) and fd_dinov2 (1024) statistics of 50000 images -> out/p$p.h5"
  check "protocol $p: values bit for bit" full "out/p$p.h5" "p$p.pkl"
  [ "$p" = 4 ] || rm -f "p$p.pkl" "out/p$p.h5"
done
for p in 2 5; do
  mk full "np2_p$p.pkl" "$p" np2
  if grep -qF 'numpy._core' "np2_p$p.pkl" && ! grep -qF 'numpy.core' "np2_p$p.pkl"; then
    expect "numpy 2 names, protocol $p" 0 "" -- CS "np2_p$p.pkl" "out/np2_p$p.h5"
    check "numpy 2 names, protocol $p: values" full "out/np2_p$p.h5" "np2_p$p.pkl"
  else
    not_ok "numpy 2 names, protocol $p" "the test pickle does not use numpy._core"
  fi
  rm -f "np2_p$p.pkl" "out/np2_p$p.h5"
done

# float32 (converted exactly, with a note), big-endian and Fortran-order arrays, a numpy scalar.
mk f32 f32.pkl 4
expect "float32 and big-endian" 0 "" -- CS f32.pkl out/f32.h5
grep -qF "note: f32.pkl: fid/sigma is float32: converted to float64 (exactly)" "$ERR" &&
  ok "float32: note" || not_ok "float32: note" "$(cat "$ERR")"
check "float32 and big-endian: values" f32 out/f32.h5 f32.pkl
for p in 4 5; do
  mk fortran "fortran$p.pkl" "$p"
  expect "Fortran order, protocol $p" 0 "" -- CS "fortran$p.pkl" "out/fortran$p.h5"
  check "Fortran order, protocol $p: values (not transposed)" fortran "out/fortran$p.h5" "fortran$p.pkl"
  rm -f "fortran$p.pkl" "out/fortran$p.h5"
done
mk npint npint.pkl 2
expect "numpy scalar num_images" 0 "" -- CS npint.pkl out/npint.h5
check "numpy scalar num_images: values" npint out/npint.h5 npint.pkl
mk dino_only dino.pkl 4
expect "one metric" 0 "" -- CS dino.pkl out/dino.h5
summary "one metric: summary" "fd_dinov2 (1024) statistics of 7 images -> out/dino.h5"
check "one metric: values" dino_only out/dino.h5 dino.pkl
mk no_num nonum.pkl 4
expect "no num_images" 0 "" -- CS nonum.pkl out/nonum.h5
check "no num_images: -1" no_num out/nonum.h5 nonum.pkl
expect "--metric selects" 0 "" -- CS p4.pkl out/p4_dino.h5 --metric fd_dinov2
check "--metric selects: values" full out/p4_dino.h5 p4.pkl fd_dinov2
rm -f f32.pkl npint.pkl nonum.pkl out/f32.h5 out/npint.h5 out/nonum.h5 out/p4_dino.h5
noleft "no temporary files"

# .npz in and out.
mk npz_shifted shifted.npz
expect ".npz to HDF5" 0 "" -- CS shifted.npz out/shifted.h5 --metric fid
summary ".npz to HDF5: summary" "fid (2048) statistics of an unknown number of images -> out/shifted.h5"
expect "--to-npz from a pickle" 0 "" -- CS p4.pkl out/fid.npz --to-npz --metric fid
npzcheck "--to-npz from a pickle: values" out/fid.npz full fid
expect "--to-npz from HDF5" 0 "" -- CS out/p4.h5 out/dino.npz --to-npz --metric fd_dinov2
npzcheck "--to-npz from HDF5: values" out/dino.npz full fd_dinov2
expect "round trip .npz -> HDF5 -> .npz" 0 "" -- CS out/shifted.h5 out/shifted_back.npz --to-npz --metric fid
npzcheck "round trip: values" out/shifted_back.npz full fid 0.5
expect "HDF5 -> .npz -> HDF5" 0 "" -- CS out/fid.npz out/fid_back.h5 --metric fid
"$PY" - out/fid_back.h5 out/p4.h5 >"$OUT" 2>"$ERR" <<'PYEOF' && ok "HDF5 -> .npz -> HDF5: values" || not_ok "HDF5 -> .npz -> HDF5: values" "$(tail -1 "$ERR")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'r') as a, h5py.File(sys.argv[2], 'r') as b:
    for k in ('mu', 'sigma'):
        assert np.array_equal(a['fid'][k][()].view('<u8'), b['fid'][k][()].view('<u8')), k
PYEOF

# edm2-metrics reads what was written: a file's distance to itself, and |Δμ|² = 0.25 × 2048 = 512
# between statistics with the same Σ (the converted pickle, and the .npz written from its arrays).
close() {  # close NAME VALUE EXPECTED ATOL
  if awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= t) }'; then
    ok "$1"
  else
    not_ok "$1" "got '$2', expected $3 (within $4)"
  fi
}
value() { sed -n "s/^$1 = //p" "$OUT"; }
if [ -n "$M" ] && [ -x "$M" ]; then
  # The traces: fid's is about 2048 × (1 + 0.25): the self-distances must be 0 within 1e-9 of it.
  expect "edm2-metrics: converted file against itself" 0 "" -- "$M" fd out/p4.h5 out/p4.h5
  close "edm2-metrics: fid = 0" "$(value fid)" 0 3e-6
  close "edm2-metrics: fd_dinov2 = 0" "$(value fd_dinov2)" 0 2e-6
  expect "edm2-metrics: one metric against itself" 0 "" -- "$M" fd out/dino.h5 out/dino.h5
  close "edm2-metrics: fd = 0" "$(value fd)" 0 2e-6
  expect "edm2-metrics: HDF5 against .npz" 0 "" -- "$M" fd out/p4.h5 shifted.npz --metric fid
  close "edm2-metrics: |dmu|^2" "$(value fd)" 512 5e-7
  expect "edm2-metrics: --to-npz output" 0 "" -- "$M" fd out/dino.npz out/dino.h5 --metric fd_dinov2
  close "edm2-metrics: --to-npz fd = 0" "$(value fd)" 0 2e-6
else
  echo "# EDM2_METRICS not set: edm2-metrics checks skipped"
fi

# Existing outputs: refused without --force (untouched, and before the input is read), replaced
# with it; a failed conversion leaves an existing output as it was even with --force.
before=$(digest out)
expect "existing output refused" 1 "out/dino.h5: exists (--force overwrites it)" -- CS p4.pkl out/dino.h5
[ "$(digest out)" = "$before" ] && ok "existing output untouched" || not_ok "existing output untouched" "changed"
expect "existing output refused before reading" 1 "out/dino.h5: exists" -- CS nope.pkl out/dino.h5
expect "--force" 0 "" -- CS p4.pkl out/dino.h5 --force
check "--force: replaced" full out/dino.h5 p4.pkl
mk nan nan_force.pkl 4
before=$(digest out)
expect "failure with --force" 1 "nan_force.pkl: fd_dinov2/sigma[7, 2] is NaN" -- CS nan_force.pkl out/dino.h5 --force
[ "$(digest out)" = "$before" ] && ok "failure with --force: output kept" || not_ok "failure with --force: output kept" "changed"
noleft "no temporary files after failures"

# Bad statistics: one line naming the file and the key, exit 1, nothing written.
mkdir fail
"$PY" - "$WORK" <<'PYEOF' || echo "# writing the bad pickles failed"
import pickle, sys
sys.path.insert(0, sys.argv[1])
import stats
for case in ('dim_small', 'dim_swapped', 'not_square', 'mu_2d', 'asym', 'nan', 'inf', 'negvar',
             'int', 'no_sigma', 'no_metric', 'not_dict', 'mu_list', 'num_str'):
    with open(case + '.pkl', 'wb') as f:
        pickle.dump(stats.bad(case), f, protocol=4)
PYEOF
bad() {  # bad NAME CASE NEEDLE
  expect "$1" 1 "$2.pkl: $3" -- CS "$2.pkl" fail/out.h5
  rm -f "$2.pkl"
}
bad "wrong dimension" dim_small "fd_dinov2/mu has shape (1000,), expected (1024,): fd_dinov2 statistics are 1024-dimensional"
bad "fid's dimension as fd_dinov2" dim_swapped "fd_dinov2/mu has shape (2048,), expected (1024,)"
bad "sigma not square" not_square "fd_dinov2/sigma has shape (1024, 1023), expected (1024, 1024)"
bad "mu not 1-D" mu_2d "fd_dinov2/mu has shape (1024, 1), expected (1024,)"
bad "asymmetric sigma" asym "fd_dinov2/sigma is not symmetric: sigma[3, 5] ="
bad "NaN" nan "fd_dinov2/sigma[7, 2] is NaN"
bad "Inf" inf "fd_dinov2/mu[5] is infinite"
bad "negative variance" negvar "fd_dinov2/sigma[4, 4] = -1.0 is a negative variance"
bad "integer dtype" int "fd_dinov2/mu has dtype int64, expected float64"
bad "missing sigma" no_sigma "fd_dinov2 has no 'sigma'"
bad "no metric" no_metric "holds neither fid nor fd_dinov2 statistics (its keys: 'num_images')"
bad "not a dict" not_dict "holds a list, not EDM2 statistics"
bad "mu a list" mu_list "fd_dinov2/mu is a list, not a numpy array"
bad "num_images a string" num_str "num_images is 'many', expected an integer >= 0"
expect "--metric absent" 1 "dino.pkl: holds no fid statistics (it holds fd_dinov2)" -- CS dino.pkl fail/out.h5 --metric fid

# Pickles that would run code: refused without running it.
expect "os.system refused" 1 "stats_evil_system.pkl: refusing the pickle global os.system" -- CS "$G/stats_evil_system.pkl" fail/out.h5
expect "numpy runstring refused" 1 "refusing the pickle global numpy.testing._private.utils.runstring" -- CS "$G/stats_evil_runstring.pkl" fail/out.h5
expect "_codecs.encode abuse refused" 1 "refusing _codecs.encode of a str to 'rot13'" -- CS "$G/stats_evil_codec.pkl" fail/out.h5
expect "object array refused" 1 "stats_object_array.pkl: refusing numpy dtype 'O8'" -- CS "$G/stats_object_array.pkl" fail/out.h5
[ ! -e edm2c-pwned-file ] && ok "nothing executed" || not_ok "nothing executed" "edm2c-pwned-file exists"

# Damaged inputs.
size=$(wc -c <p4.pkl)
for cut in 2 100 $((size / 2)) $((size - 1)); do
  head -c "$cut" p4.pkl >"cut$cut.pkl"
  expect "truncated at $cut" 1 "cut$cut.pkl: truncated or corrupt pickle" -- CS "cut$cut.pkl" fail/out.h5
  rm -f "cut$cut.pkl"
done
{ cat dino.pkl; printf 'x'; } >trailing.pkl
expect "bytes after the pickle" 1 "trailing.pkl: 1 bytes after the end of the pickle" -- CS trailing.pkl fail/out.h5
head -c 5000 out/fid.npz >cut.npz
expect "truncated .npz" 1 "cut.npz: not a readable .npz" -- CS cut.npz fail/out.h5 --metric fid
printf 'not statistics\n' >junk.pkl
expect "not a pickle" 1 "junk.pkl: neither a statistics pickle (protocol 2 to 5), a .npz nor an HDF5 file" -- CS junk.pkl fail/out.h5
: >empty.pkl
expect "empty file" 1 "empty.pkl: empty file" -- CS empty.pkl fail/out.h5
expect "missing file" 1 "nope.pkl: No such file" -- CS nope.pkl fail/out.h5
expect "another HDF5 file" 1 "frechet.h5: a 'edm2c-golden-frechet' file, not statistics" -- CS "$G/frechet.h5" fail/out.h5
expect "HDF5 without sigma" 1 "fd_bad_nosigma.h5: fid/sigma: dataset missing" -- CS "$G/fd_bad_nosigma.h5" fail/out.h5
expect "wrong .npz dimension" 1 "shifted.npz: mu has shape (2048,), expected (1024,)" -- CS shifted.npz fail/out.h5 --metric fd_dinov2
mkdir ro && chmod a-w ro
if [ -w ro ]; then
  ok "unwritable directory # SKIP running as a user who can write anywhere"
else
  expect "unwritable directory" 1 "ro/out.h5: cannot create a temporary file in" -- CS dino.pkl ro/out.h5
fi
[ -z "$(ls -A fail)" ] && ok "refusals: nothing written" || not_ok "refusals: nothing written" "$(ls -A fail)"
noleft "no temporary files anywhere"

# Help and usage.
expect "help" 0 "" -- CS --help
missing=""
for s in "https://nvlabs-fi-cdn.nvidia.com/edm2/dataset-refs/img512.pkl" "--to-npz" "--metric" \
  "--force" "never downloads" "restricted unpickler" "1e-8"; do
  grep -qF -- "$s" "$OUT" || missing="$missing [$s]"
done
[ -z "$missing" ] && ok "help text" || not_ok "help text" "lacks$missing"
expect "no arguments" 2 "missing the input file" -- CS
expect "no output" 2 "missing the output file" -- CS p4.pkl
expect ".npz without --metric" 2 "a .npz does not say which metric it holds" -- CS shifted.npz fail/out.h5
expect "--to-npz without --metric" 2 "--to-npz needs --metric" -- CS p4.pkl fail/out.npz --to-npz
expect ".npz output without --to-npz" 2 "add --to-npz" -- CS p4.pkl fail/out.npz
expect "--to-npz to .h5" 2 "--to-npz writes a .npz" -- CS p4.pkl fail/out.h5 --to-npz --metric fid
expect "bad --metric" 2 "invalid choice" -- CS p4.pkl fail/out.h5 --metric is
expect "unknown option" 2 "unrecognized arguments" -- CS p4.pkl fail/out.h5 --frobnicate
[ -z "$(ls -A fail)" ] && ok "usage errors: nothing written" || not_ok "usage errors: nothing written" "$(ls -A fail)"
finish
