#!/usr/bin/env bash
# edm2-plot's figures drawn from a run's own files (loss, profiles, magnitudes) on a tiny trained
# run (test-micro, 8x8, status lines and activation magnitudes every 256 images, snapshots at 1Ki,
# 2Ki, 3Ki): each figure exits 0 and writes a valid PNG (signature, IHDR 1200x750), SVG and PDF,
# and data files with the expected blocks, rows and columns (the profiles have unit area; the
# reconstruction of a stored profile is exact; one row per log line); --format png writes only
# PNG; several --sigma-rel values add profiles-family.*; --at restricts the snapshots; a log
# without activations draws the weights with a note; then one clear line and exit status 1 for a
# run without log.jsonl (naming it), without snapshots, a bad --sigma-rel, and without gnuplot
# (naming gnuplot-nox, the data files still written). Needs: EDM2_PLOT, EDM2_TRAIN (set by meson);
# /usr/bin/python3 (standard library); gnuplot for the drawing checks (skipped without it).
. "$(dirname "$0")/lib.sh"
: "${EDM2_PLOT:?}" "${EDM2_TRAIN:?}" "${EDM2_SWEEP:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ]; then
  echo "1..0 # SKIP /usr/bin/python3 is not installed"
  exit 77
fi
W=$WORK
P=$EDM2_PLOT
HAVE_GP=0
gnuplot --version >/dev/null 2>&1 && HAVE_GP=1

# 64 IDX images of 8x8 in 3 classes.
"$PY" "$(dirname "$0")/testdata.py" idx "$W/data" 64 3 || exit 1
if "$EDM2_TRAIN" --preset test-micro --batch 8 --rampup 64 --decay 64 --status 256 --magnitudes 256 --snapshot 1Ki \
  --checkpoint 0 --threads 1 --quiet --data "$W/data" --outdir "$W/run" --duration 3Ki >"$OUT" 2>"$ERR"; then
  ok "train a run with status lines and activation magnitudes every 256 images, snapshots at 1Ki, 2Ki, 3Ki"
else
  not_ok "train" "edm2-train failed"
  echo "Bail out! no run to plot"
  exit 1
fi
RUN=$W/run

# check FILE...: every file is a valid PNG, SVG or PDF (by its extension); prints what is wrong.
check() {
  "$PY" - "$@" <<'PYEOF'
import os, struct, sys
bad = []
for p in sys.argv[1:]:
    if not os.path.isfile(p) or os.path.getsize(p) == 0:
        bad.append("%s: missing or empty" % p); continue
    b = open(p, "rb").read()
    if p.endswith(".png"):
        if b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
            bad.append("%s: not a PNG" % p); continue
        w, h = struct.unpack(">II", b[16:24])
        if (w, h) != (1200, 750): bad.append("%s: %dx%d, expected 1200x750" % (p, w, h))
    elif p.endswith(".svg"):
        if not (b.startswith(b"<?xml") or b"<svg" in b): bad.append("%s: not an SVG" % p)
    elif p.endswith(".pdf"):
        if not b.startswith(b"%PDF-") or b"%%EOF" not in b[-1024:]: bad.append("%s: not a PDF" % p)
print("; ".join(bad))
PYEOF
}
# figure NAME DIR: NAME.{png,svg,pdf} in DIR are valid
figure() {
  local why
  why=$(check "$2/$1.png" "$2/$1.svg" "$2/$1.pdf")
  if [ -z "$why" ]; then ok "$1: PNG (1200x750), SVG and PDF are valid"; else not_ok "$1 files" "$why"; fi
}
# dat FILE EXPR: the blocks of a data file (lists of rows of numbers or words, comments dropped)
# as `b`, its column header (without '# ') as `header`; prints EXPR evaluated in Python
dat() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
text = open(sys.argv[1]).read()
def num(v):
    try: return float(v)
    except ValueError: return v
b = []
for block in text.split("\n\n\n"):
    rows = [[num(v) for v in l.split()] for l in block.splitlines() if l.strip() and not l.startswith("#")]
    if rows: b.append(rows)
header = text.splitlines()[0].lstrip("# ")
def area(rows, col):  # trapezoid rule over the Mimg column (1)
    return sum((rows[i + 1][1] - rows[i][1]) * (rows[i + 1][col] + rows[i][col]) / 2 for i in range(len(rows) - 1))
print(eval(sys.argv[2]))
PYEOF
}
is() { # is NAME GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi
}
# log COUNT-EXPR: a number computed from RUN/log.jsonl (`L`: the parsed lines)
logn() {
  "$PY" - "$RUN/log.jsonl" "$1" <<'PYEOF'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(eval(sys.argv[2]))
PYEOF
}

if [ "$HAVE_GP" = 1 ]; then
  F=$W/figs
  expect "loss" 0 "" -- "$P" loss --run "$RUN" --out "$F"
  figure loss "$F"

  # profiles: σ_rel 0.10 at the latest snapshot (3Ki), a stored profile there
  expect "profiles" 0 "" -- "$P" profiles --run "$RUN" --out "$F" --sigma-rel 0.10
  figure profiles "$F"
  is "profiles.dat: one block (one target)" "$(dat "$F/profiles.dat" 'len(b)')" 1
  is "target and reconstruction have unit area over Mimg" \
    "$(dat "$F/profiles.dat" 'all(abs(area(r, c) - 1) < 0.01 for r in b for c in (2, 3))')" True
  is "profiles-stored.dat: 3 snapshots x 2 stored profiles" "$(dat "$F/profiles-stored.dat" 'len(b)')" 6
  is "every stored profile has unit area" "$(dat "$F/profiles-stored.dat" 'all(abs(area(r, 2) - 1) < 0.01 for r in b)')" True
  is "profiles-weights.dat: one row per stored profile, weights sum to 1" \
    "$(dat "$F/profiles-weights.dat" 'len(b[0]), round(sum(r[3] for r in b[0]), 9)')" "(6, 1.0)"
  is "a stored profile is reconstructed exactly" "$(dat "$F/profiles-targets.dat" 'b[0][0][3] < 1e-9')" True
  [ ! -e "$F/profiles-family.png" ] && ok "one sigma_rel: no profiles-family figure" || not_ok "family" "profiles-family.png written for one sigma_rel"
  expect "profiles, default target" 0 "" -- "$P" profiles --run "$RUN" --out "$W/figs0" --format png
  is "the default target (0.15) is a real fit, not a stored profile" "$(dat "$W/figs0/profiles-targets.dat" 'b[0][0][3] > 1e-6')" True

  F2=$W/figs2
  expect "profiles --sigma-rel 0.07,0.13" 0 "" -- "$P" profiles --run "$RUN" --out "$F2" --sigma-rel 0.07,0.13
  figure profiles "$F2"
  figure profiles-family "$F2"
  is "profiles.dat: two blocks, each of unit area" \
    "$(dat "$F2/profiles.dat" 'len(b), all(abs(area(r, c) - 1) < 0.01 for r in b for c in (2, 3))')" "(2, True)"
  is "profiles-family.dat: two profiles of unit area, tau_rel in [0, 1]" \
    "$(dat "$F2/profiles-family.dat" 'len(b), all(abs(area(r, 3) - 1) < 0.01 and r[0][2] == 0 and r[-1][2] == 1 for r in b)')" \
    "(2, True)"
  is "relative errors of targets between the stored ones are small but not 0" \
    "$(dat "$F2/profiles-targets.dat" 'all(0 < r[3] < 0.1 for r in b[0])')" True
  is "profiles-weights.dat: a weight column per target" "$(dat "$F2/profiles-weights.dat" 'set(len(r) for r in b[0])')" "{5}"

  expect "profiles --at 2Ki" 0 "" -- "$P" profiles --run "$RUN" --out "$W/figs-at" --at 2Ki --format png
  is "--at 2Ki: the snapshots up to 2Ki only" "$(dat "$W/figs-at/profiles-stored.dat" 'len(b), max(r[-1][0] for r in b)')" \
    "(4, 2048.0)"

  # magnitudes
  expect "magnitudes" 0 "" -- "$P" magnitudes --run "$RUN" --out "$F"
  figure magnitudes "$F"
  nb=$(logn 'len(L[-1]["weights"])')
  is "magnitudes-weights.dat: one row per log line with weights, max and mean per bucket" \
    "$(dat "$F/magnitudes-weights.dat" 'len(b[0]), set(len(r) for r in b[0])')" \
    "($(logn 'sum("weights" in l for l in L)'), {$((2 + 2 * nb))})"
  is "magnitudes-activations.dat: one row per log line with activations" \
    "$(dat "$F/magnitudes-activations.dat" 'len(b[0])')" "$(logn 'sum("activations" in l for l in L)')"
  is "the columns are the log's values" \
    "$(dat "$F/magnitudes-weights.dat" 'header.split(":")[0].split()[2], b[0][-1][2]')" \
    "$(logn '(lambda k: ("%s.max" % k, float("%.9g" % L[-1]["weights"][k]["max"])))(next(iter(L[-1]["weights"])))')"

  # a log without activations: the weights alone, with a note
  mkdir -p "$W/noact"
  "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l); o.pop("activations", None); print(json.dumps(o))' "$RUN/log.jsonl" >"$W/noact/log.jsonl"
  expect "magnitudes without activations" 0 "no activations" -- "$P" magnitudes --run "$W/noact"
  figure magnitudes "$W/noact/figures"
  [ ! -e "$W/noact/figures/magnitudes-activations.dat" ] && ok "no activations data file" || not_ok "noact" "activations data written"

  # --format png
  expect "--format png" 0 "" -- "$P" profiles --run "$RUN" --out "$W/png" --format png --sigma-rel 0.05,0.2
  is "--format png writes only PNG (and the data)" "$(cd "$W/png" && LC_ALL=C ls | grep -v '\.dat$' | tr '\n' ' ')" \
    "profiles-family.png profiles.png "
fi

# the report: a sweep into the run's database, then RUN/report/index.html
if "$EDM2_SWEEP" ema --run "$RUN" --sigma-rel 0.05,0.10,0.15 --val-data "$W/data" --num 8 --threads 1 --quiet >"$OUT" 2>"$ERR"; then
  ok "a val-loss sweep for the report"
else
  not_ok "sweep" "$(tail -1 "$ERR")"
fi
expect "report" 0 "" -- "$P" report --run "$RUN"
H=$RUN/report/index.html
if grep -q "<h2>Best EMA length</h2>" "$H" && grep -q "<td>val-loss</td>" "$H" && grep -q '<img src="loss.png"' "$H" &&
  grep -q '<img src="ema-sweep.png"' "$H" && [ -s "$RUN/report/loss.png" ] && [ -s "$RUN/report/ema-sweep.png" ] &&
  ! grep -qi 'src="http\|href="http' "$H" && grep -q "Figures not drawn" "$H" && grep -q "<th>preset</th>" "$H"; then
  ok "report: best table, figures beside the page, skipped ones listed, config, no external assets"
else
  not_ok "report" "$(sed -e 's/<[^>]*>/ /g' "$H" | tr -s ' \n' | head -c 300)"
fi
for img in $(grep -o 'src="[^"]*"' "$H" | sed 's/src="//; s/"$//'); do
  [ -s "$RUN/report/$img" ] || not_ok "report image $img" "missing"
done
ok "every image the report shows exists"
expect "report without a run" 2 "" -- "$P" report

# errors: one line, exit 1
mkdir -p "$W/empty"
expect "no log.jsonl: loss" 1 "$W/empty/log.jsonl" -- "$P" loss --run "$W/empty" --out "$W/e"
expect "no log.jsonl: magnitudes" 1 "$W/empty/log.jsonl" -- "$P" magnitudes --run "$W/empty" --out "$W/e"
expect "no snapshots: profiles" 1 "skipped, no data" -- "$P" profiles --run "$W/empty" --out "$W/e"
expect "bad --sigma-rel" 1 "--sigma-rel" -- "$P" profiles --run "$RUN" --out "$W/e" --sigma-rel 0.5
expect "--at after the last snapshot" 1 "after the last snapshot" -- "$P" profiles --run "$RUN" --out "$W/e" --at 4Ki

# without gnuplot (PATH without it; the program needs nothing else from PATH): the data files
# are written, one line names the package
for fig in loss profiles magnitudes; do
  rm -rf "$W/nogp"
  expect "no gnuplot: $fig" 1 "gnuplot-nox" -- env PATH=/nonexistent "$P" "$fig" --run "$RUN" --out "$W/nogp"
  dat=$fig.dat
  [ "$fig" = magnitudes ] && dat=magnitudes-weights.dat
  if [ -s "$W/nogp/$dat" ] && ! ls "$W/nogp" | grep -q '\.\(png\|svg\|pdf\)$'; then
    ok "no gnuplot: $fig: $dat written, no images"
  else
    not_ok "no gnuplot: $fig data" "$(ls "$W/nogp" 2>&1 | tr '\n' ' ')"
  fi
done
finish
