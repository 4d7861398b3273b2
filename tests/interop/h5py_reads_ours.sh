#!/usr/bin/env bash
# A snapshot written by edm2c reads correctly in h5py (the tool researchers already use): the
# documented attributes with h5py's natural types, float16 parameter datasets with Fletcher-32,
# 0-d gains, float32 buffers, and gamma equal to numpy's root of the sigma_rel cubic.
# Skips (exit 77) when Debian's python3-h5py is not installed. Needs POSTHOC_SYNTH.
set -u
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with h5py and numpy is not installed"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/edm2c-interop-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$POSTHOC_SYNTH" --out "$work/f16" --count 2 --every 4Ki --channels 4 --quiet || exit 1
"$POSTHOC_SYNTH" --out "$work/f32" --count 1 --every 4Ki --channels 4 --dtype float32 --ema 0.05,0.1,0.13 --quiet || exit 1
exec "$PY" - "$work" <<'PYEOF'
import glob, json, sys
import h5py, numpy as np

def gamma_of(sigma):
    s = sigma ** -2
    r = np.roots([1, 7, 16 - s, 12 - s])
    return max(r.real)

work = sys.argv[1]
checked = 0
for sub, dtype, profiles in [("f16", np.float16, ["0.050", "0.100"]), ("f32", np.float32, ["0.050", "0.100", "0.130"])]:
    files = sorted(glob.glob(work + "/" + sub + "/snapshot-*.h5"))
    assert files, sub
    for path in files:
        with h5py.File(path, "r") as f:
            a = f.attrs
            assert a["format"] == "edm2c-snapshot" and isinstance(a["format"], str), a["format"]
            assert a["format_version"] == 1 and a["format_version"].dtype == np.int64
            assert int(path[-15:-3]) == a["nimg"]
            assert a["batch_size"] == 1024 and a["preset"] == ""
            assert json.loads(a["config"])["generator"] == "posthoc-synth"
            assert sorted(f["ema"].keys()) == profiles, list(f["ema"].keys())
            names = None
            for key in profiles:
                g = f["ema/" + key]
                assert g.attrs["profile"] == "power"
                sigma, gamma = g.attrs["sigma_rel"], g.attrs["gamma"]
                assert "%.3f" % sigma == key
                assert abs(gamma - gamma_of(sigma)) <= 1e-12 * gamma, (gamma, gamma_of(sigma))
                keys = list(g.keys())
                names = names or keys
                assert keys == names
                for name in keys:
                    d = g[name]
                    assert d.dtype == dtype, (name, d.dtype)
                    if d.ndim:
                        assert d.fletcher32 and d.chunks is not None, name
                    v = d[()]
                    assert np.all(np.isfinite(v)) and np.all(np.abs(v) < 10), name
                    checked += 1
            assert g["unet.out_gain"].shape == () and g["unet.enc.32x32_conv.weight"].shape == (4, 2, 3, 3)
            for name in ["unet.emb_fourier.freqs", "logvar_fourier.phases"]:
                assert f["buffers/" + name].dtype == np.float32
print("ok 1 h5py reads %d edm2c datasets" % checked)
PYEOF
