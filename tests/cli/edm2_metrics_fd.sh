#!/usr/bin/env bash
# edm2-metrics fd: values against pytorch-fid's scipy form (tests/golden/fd_expected.txt, from
# tests/golden/gen_frechet.py), --json, --metric, .npz files written by numpy (stored, deflated,
# float32 Fortran-order; and, when /usr/bin/python3 has numpy, written now), and every error path:
# wrong dimension, mixed metrics, a missing dataset, NaN, non-symmetric sigma, usage errors.
# Needs EDM2_METRICS and GOLDEN_DIR.
. "$(dirname "$0")/lib.sh"
M=$EDM2_METRICS
G=$GOLDEN_DIR
want() { awk -v k="$1" '$1 == k { print $2 }' "$G/fd_expected.txt"; }

# close NAME VALUE EXPECTED RTOL
close() {
  if awk -v a="$2" -v b="$3" -v r="$4" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= r * (b < 0 ? -b : b)) }'; then
    ok "$1"
  else
    not_ok "$1" "got $2, expected $3 (rtol $4)"
  fi
}
value() { sed -n "s/^$1 = //p" "$OUT"; }

# Values: .npz against .npz (stored against deflated), HDF5 holding both metrics.
expect "npz pair" 0 "" -- "$M" fd "$G/fd_a.npz" "$G/fd_b_deflated.npz" && close "npz value" "$(value fd)" "$(want fid_ab)" 1e-9
expect "float32 fortran npz" 0 "" -- "$M" fd "$G/fd_a.npz" "$G/fd_b_f32_fortran.npz" && close "float32 npz value" "$(value fd)" "$(want fid_ab_f32)" 1e-9
expect "both metrics" 0 "" -- "$M" fd "$G/fd_both_a.h5" "$G/fd_both_b.h5"
close "both: fid" "$(value fid)" "$(want fid_ab)" 1e-9
close "both: fd_dinov2" "$(value fd_dinov2)" "$(want dino_ab)" 1e-9
[ "$(wc -l <"$OUT")" -eq 2 ] && ok "both: two lines" || not_ok "both: two lines" "$(cat "$OUT")"
expect "json both" 0 "" -- "$M" fd "$G/fd_both_a.h5" "$G/fd_both_b.h5" --json
if grep -qE '^\{"fid": [0-9.e+-]+, "fd_dinov2": [0-9.e+-]+\}$' "$OUT"; then ok "json both: shape"; else not_ok "json both: shape" "$(cat "$OUT")"; fi
close "json fid" "$(sed 's/.*"fid": \([^,}]*\).*/\1/' "$OUT")" "$(want fid_ab)" 1e-12
expect "--metric" 0 "" -- "$M" fd "$G/fd_both_a.h5" "$G/fd_both_b.h5" --metric fd_dinov2
close "--metric value" "$(value fd)" "$(want dino_ab)" 1e-9
expect "json one" 0 "" -- "$M" fd --json "$G/fd_both_a.h5" "$G/fd_fid_b.h5"
if grep -qE '^\{"fd": [0-9.e+-]+\}$' "$OUT"; then ok "json one: shape"; else not_ok "json one: shape" "$(cat "$OUT")"; fi
expect "npz against h5" 0 "" -- "$M" fd "$G/fd_a.npz" "$G/fd_fid_b.h5" && close "npz/h5 value" "$(value fd)" "$(want fid_ab)" 1e-9
expect "npz against both with --metric" 0 "" -- "$M" fd "$G/fd_dino_a.npz" "$G/fd_both_b.h5" --metric fd_dinov2 &&
  close "npz/both value" "$(value fd)" "$(want dino_ab)" 1e-9
expect "self distance" 0 "" -- "$M" fd "$G/fd_both_a.h5" "$G/fd_both_a.h5" --json
grep -qE '^\{"fid": 0, "fd_dinov2": 0\}$' "$OUT" && ok "self distance is 0" || not_ok "self distance is 0" "$(cat "$OUT")"

# Errors: one line, exit 1.
expect "wrong dimension" 1 "dimension mismatch" -- "$M" fd "$G/fd_a.npz" "$G/fd_dino_a.npz"
expect "wrong dimension, --metric" 1 "a stats file of the wrong dimension" -- "$M" fd "$G/fd_dino_a.npz" "$G/fd_both_b.h5" --metric fid
expect "mixed metrics" 1 "mixed metrics" -- "$M" fd "$G/fd_fid_b.h5" "$G/fd_dino_b.h5"
expect "metric absent" 1 "holds no fid statistics" -- "$M" fd "$G/fd_dino_b.h5" "$G/fd_both_a.h5" --metric fid
expect "npz vs both, no --metric" 1 "--metric" -- "$M" fd "$G/fd_a.npz" "$G/fd_both_b.h5"
expect "missing sigma" 1 "sigma: dataset missing" -- "$M" fd "$G/fd_bad_nosigma.h5" "$G/fd_fid_b.h5"
expect "NaN in mu" 1 "NaN" -- "$M" fd "$G/fd_fid_b.h5" "$G/fd_bad_nan.h5"
expect "non-symmetric sigma" 1 "not symmetric" -- "$M" fd "$G/fd_fid_b.h5" "$G/fd_bad_asym.h5"
expect "missing file" 1 "nope.h5" -- "$M" fd "$G/fd_fid_b.h5" "$WORK/nope.h5"
printf 'not stats' >"$WORK/junk.bin"
expect "not a stats file" 1 "neither an HDF5 statistics file nor a .npz" -- "$M" fd "$WORK/junk.bin" "$G/fd_fid_b.h5"
expect "another HDF5 file" 1 "not statistics" -- "$M" fd "$G/frechet.h5" "$G/fd_fid_b.h5"
head -c 300 "$G/fd_a.npz" >"$WORK/cut.npz"
expect "truncated npz" 1 "cut.npz" -- "$M" fd "$WORK/cut.npz" "$G/fd_a.npz"

# Usage: exit 2.
expect "one file" 2 "expected two statistics files" -- "$M" fd "$G/fd_a.npz"
expect "bad --metric" 2 "unknown metric" -- "$M" fd "$G/fd_a.npz" "$G/fd_a.npz" --metric is
expect "unknown command" 2 "known: ref, calc, gen, features, fd" -- "$M" kid --images x
expect "no command" 2 "missing command" -- "$M"
expect "help" 0 "" -- "$M" --help
grep -q '^  fd A B' "$OUT" && ok "help lists fd" || not_ok "help lists fd" "$(cat "$OUT")"
expect "fd help" 0 "" -- "$M" fd --help

# .npz written by numpy now (when available).
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; then
  "$PY" - "$WORK" <<'PYEOF'
import sys, numpy as np
w = sys.argv[1]
r = np.random.default_rng(5)
for name, k in (('p', 0.0), ('q', 0.3)):
    x = r.standard_normal((300, 16)) + k
    np.savez(w + '/' + name + '.npz', mu=x.mean(0), sigma=np.cov(x, rowvar=False))
PYEOF
  expect "numpy savez now" 0 "" -- "$M" fd "$WORK/p.npz" "$WORK/q.npz" --json
  ref=$("$PY" - "$WORK" <<'PYEOF'
import sys, numpy as np, scipy.linalg
w = sys.argv[1]
a, b = np.load(w + '/p.npz'), np.load(w + '/q.npz')
c = scipy.linalg.sqrtm(a['sigma'] @ b['sigma']).real
d = a['mu'] - b['mu']
print('%.17g' % (d @ d + np.trace(a['sigma']) + np.trace(b['sigma']) - 2 * np.trace(c)))
PYEOF
  ) || ref=""
  if [ -n "$ref" ]; then
    close "numpy savez value" "$(sed 's/{"fd": \(.*\)}/\1/' "$OUT")" "$ref" 1e-9
  else
    echo "# scipy missing: value check skipped"
  fi
else
  echo "# /usr/bin/python3 with numpy not installed: live numpy checks skipped"
fi
finish
