#!/usr/bin/env bash
# edm2-plot's figures from the results database (ema-sweep, per-tensor, evolution, guidance,
# lr-interaction, metrics-compare) on databases written directly, without training or sweeping:
# edm2-sweep creates an empty database, python3's sqlite3 fills it with synthetic sweeps whose
# repeats' means lie exactly on parabolas of known vertex (noise, repeats, several times,
# guidance 1/1.2/1.4, eight per-tensor rules, fid and fd_dinov2, three runs whose config.json
# differ in "decay"). For each figure: exit status 0, a valid PNG (signature, IHDR), SVG and PDF,
# the data files' blocks, lines and columns, and the marked optimum equal to the known vertex;
# figures without data say "skipped, no data" (exit 1 when named); --format svg writes only SVG.
# Needs: EDM2_PLOT, EDM2_SWEEP (set by meson); gnuplot; /usr/bin/python3 (standard library).
. "$(dirname "$0")/lib.sh"
: "${EDM2_PLOT:?}" "${EDM2_SWEEP:?}"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import sqlite3, json' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 with sqlite3 is not installed"
  exit 77
fi
if ! gnuplot --version >/dev/null 2>&1; then
  echo "1..0 # SKIP gnuplot is not installed (Debian: gnuplot-nox)"
  exit 77
fi
W=$WORK
P=$EDM2_PLOT
mkdir -p "$W/runs/a" "$W/runs/b" "$W/runs/c" "$W/runs/d" "$W/runs/.hidden" "$W/empty"
for d in a b c; do "$EDM2_SWEEP" results --db "$W/runs/$d/results.sqlite" >/dev/null || exit 1; done
"$EDM2_SWEEP" results --db "$W/shared.sqlite" >/dev/null || exit 1

# The fixtures: value = vmin + curv (sigma - vertex)^2 at the repeats' mean; repeats spread
# symmetrically around it (the band), so the fitted vertex is the known one.
"$PY" - "$W" <<'PYEOF' || exit 1
import json, os, random, sqlite3, sys
w = sys.argv[1]
random.seed(7)
SIG = [round(0.02 * i, 3) for i in range(1, 11)]  # 0.02 .. 0.20
def conn(path):
    return sqlite3.connect(path)
def put(db, run, metric, nimg, sigma, value, guidance=1.0, gnet="", rule="", num=512, seed=0, repeat=0, half_life=0.0):
    db.execute("INSERT INTO results (run, nimg, sigma_rel, half_life, tensor_rule, guidance, gnet, metric, value,"
               " num, seed, repeat, wall_s, code_version, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,'test',"
               "'2024-05-01T00:00:00Z')",
               (run, nimg, sigma, half_life, rule, guidance, gnet, metric, value, num, seed, repeat))
def sweep(db, run, metric, nimg, vertex, vmin, curv, repeats=1, amp=0.0, sig=SIG, **kw):
    for s in sig:
        y = vmin + curv * (s - vertex) ** 2
        e = amp * (0.3 + random.random())
        offs = {1: [0.0], 2: [-e, e], 3: [-e, 0.0, e]}[repeats]
        for r, o in enumerate(offs):
            put(db, run, metric, nimg, s, y + o, repeat=r, seed=r, **kw)
real = {d: os.path.realpath(os.path.join(w, "runs", d)) for d in "abcd"}
configs = {"a": 2048, "b": 1024, "c": 4096, "d": 8192}
for d, decay in configs.items():
    cfg = {"preset": "fmnist", "data": "fashion-mnist", "lr": 0.01, "decay": decay, "seed": ord(d), "threads": 2}
    with open(os.path.join(w, "runs", d, "config.json"), "w") as f:
        json.dump(cfg, f)
db = conn(os.path.join(w, "runs/a/results.sqlite"))
a = real["a"]
sweep(db, a, "val-loss", 4096, 0.05, 0.40, 4.0)
sweep(db, a, "val-loss", 8192, 0.07, 0.30, 4.0)
sweep(db, a, "val-loss", 16384, 0.087, 0.25, 4.0, repeats=3, amp=0.002)
put(db, a, "val-loss", 16384, 0.0, 0.26, half_life=1000.0)  # not a sweep
for s in (0.05, 0.10, 0.15):  # profile-accuracy rows: no quality metric
    put(db, a, "profile-error", 16384, s, 0.01 * s, num=3, seed=1)
for i in range(8):  # per-tensor sweeps: vertices 3.3 %, 5.3 %, ..., 17.3 %; the best are 7, 6, 5
    h = "%08x" % (0x1000 + i)
    db.execute("INSERT INTO tensor_rules (hash, rules) VALUES (?, ?)",
               (h, "per-tensor: unet.enc.block%d.weight at sigma_rel, every other tensor at 0.087" % i))
    sweep(db, a, "val-loss", 16384, 0.033 + 0.02 * i, 0.2500 - 0.0005 * i, 0.5, rule=h)
for g, fv, fm, dv, dm in ((1.0, 0.10, 8.0, 0.16, 150.0), (1.2, 0.06, 6.0, 0.14, 120.0), (1.4, 0.041, 5.5, 0.121, 100.0)):
    gnet = "" if g == 1.0 else "/nets/xs.pkl"
    sweep(db, a, "fid", 16384, fv, fm, 300.0, repeats=2, amp=0.3, guidance=g, gnet=gnet, num=50000)
    sweep(db, a, "fd_dinov2", 16384, dv, dm, 5000.0, guidance=g, gnet=gnet, num=50000)
sweep(db, a, "fid", 8192, 0.09, 9.0, 300.0, num=50000)  # fid alone at an earlier time
db.commit()
db.close()
for d, vertex, vmin in (("b", 0.061, 0.26), ("c", 0.123, 0.255)):
    db = conn(os.path.join(w, "runs", d, "results.sqlite"))
    sweep(db, real[d], "val-loss", 16384, vertex, vmin, 4.0)
    db.commit()
    db.close()
db = conn(os.path.join(w, "shared.sqlite"))
for d, vertex, vmin in (("a", 0.087, 0.25), ("b", 0.061, 0.26), ("c", 0.123, 0.255)):
    sweep(db, real[d], "val-loss", 16384, vertex, vmin, 4.0)
db.commit()
db.close()
PYEOF

# check.py formats DIR FIG LIST: exactly those of png,svg,pdf exist, each valid and non-empty;
# check.py blocks FILE NCOLS N1,N2,...: data blocks (two blank lines apart) of those lengths;
# check.py lines FILE N NCOLS: N data lines; check.py best FILE CURVE SIGMA_PCT VALUE [LABEL].
cat >"$W/check.py" <<'PYEOF'
import os, shlex, struct, sys
def fail(msg):
    print(msg)
    sys.exit(1)
def rows(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    if not lines[0].startswith("# "):
        fail("%s: no header line" % path)
    return lines[1:]
cmd = sys.argv[1]
if cmd == "formats":
    d, fig, want = sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    for ext in ("png", "svg", "pdf"):
        p = os.path.join(d, fig + "." + ext)
        if ext not in want:
            if os.path.exists(p):
                fail("%s exists" % p)
            continue
        if not os.path.exists(p) or os.path.getsize(p) < 500:
            fail("%s missing or tiny" % p)
        b = open(p, "rb").read()
        if ext == "png":
            if b[:8] != b"\x89PNG\r\n\x1a\n":
                fail("%s: no PNG signature" % p)
            n, typ, wd, ht = struct.unpack(">I4sII", b[8:24])
            if n != 13 or typ != b"IHDR" or wd < 100 or ht < 100:
                fail("%s: bad IHDR %r %r %r" % (p, typ, wd, ht))
        elif ext == "svg":
            t = b.decode("utf-8")
            if "<svg" not in t or not t.rstrip().endswith("</svg>"):
                fail("%s: not an SVG" % p)
        else:
            if not b.startswith(b"%PDF-") or not b.rstrip().endswith(b"%%EOF"):
                fail("%s: not a PDF" % p)
    left = [f for f in os.listdir(d) if ".tmp" in f]
    if left:
        fail("temporary files left: %s" % left)
elif cmd == "blocks":
    path, ncols, want = sys.argv[2], int(sys.argv[3]), [int(x) for x in sys.argv[4].split(",")]
    blocks, cur, blank = [], [], 0
    for l in rows(path):
        if not l.strip():
            blank += 1
            if cur:
                blocks.append(cur)
                cur = []
            continue
        if blocks and blank and blank != 2 and not cur:
            fail("%s: blocks separated by %d blank lines" % (path, blank))
        blank = 0
        f = l.split()
        if len(f) != ncols:
            fail("%s: %d columns, expected %d: %s" % (path, len(f), ncols, l))
        [float(x) for x in f]
        cur.append(f)
    if cur:
        blocks.append(cur)
    got = [len(b) for b in blocks]
    if got != want:
        fail("%s: blocks of %s lines, expected %s" % (path, got, want))
elif cmd == "lines":
    path, n, ncols = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    data = [shlex.split(l) for l in rows(path) if l.strip()]
    if len(data) != n or any(len(f) != ncols for f in data):
        fail("%s: %d lines of %s columns, expected %d of %d" % (path, len(data), [len(f) for f in data], n, ncols))
elif cmd == "best":
    path, curve, sig, val = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    label = sys.argv[6] if len(sys.argv) > 6 else None
    for f in (shlex.split(l) for l in rows(path) if l.strip()):
        if f[0] == curve:
            if abs(float(f[1]) - sig) > 1e-6 * max(1, abs(sig)) or abs(float(f[2]) - val) > 1e-9 * max(1, abs(val)):
                fail("%s: curve %s optimum at %s, %s; expected %g, %g" % (path, curve, f[1], f[2], sig, val))
            if f[6] != "parabola":
                fail("%s: curve %s fit %s" % (path, curve, f[6]))
            if label is not None and f[7] != label:
                fail("%s: curve %s label %r, expected %r" % (path, curve, f[7], label))
            sys.exit(0)
    fail("%s: no curve %s" % (path, curve))
PYEOF
# chk NAME CHECK-ARGS...: one test that runs check.py.
chk() {
  name=$1
  shift
  if msg=$("$PY" "$W/check.py" "$@" 2>&1); then ok "$name"; else
    : >"$ERR"
    not_ok "$name" "$msg"
  fi
}
A=$W/runs/a
O=$W/figs
cols=6 # DBFIG_POINT_COLUMNS
bcols=8 # DBFIG_BEST_COLUMNS

# ema-sweep: val-loss at the latest time (16Ki), three repeats: one curve with a band.
expect "ema-sweep draws" 0 "" -- "$P" ema-sweep --run "$A" --out "$O" --quiet
chk "ema-sweep: PNG, SVG and PDF" formats "$O" ema-sweep png,svg,pdf
chk "ema-sweep.dat: one curve of 10 points" blocks "$O/ema-sweep.dat" $cols 10
chk "ema-sweep: optimum at the vertex, 8.7 %" best "$O/ema-sweep-best.dat" 1 8.7 0.25 "σ_rel = 8.7 %"
if awk '!/^#/ && NF { if ($3 >= $2 || $4 <= $2 || $5 != 3) bad = 1 } END { exit bad }' "$O/ema-sweep.dat"; then
  ok "ema-sweep: a min/max band of three repeats around the mean"
else not_ok "ema-sweep: a min/max band of three repeats around the mean" "$(head -3 "$O/ema-sweep.dat")"; fi
if grep -q "val-loss vs EMA length" "$O/ema-sweep.svg" && grep -q "min/max over 3 evaluations" "$O/ema-sweep.svg"; then
  ok "ema-sweep: the metric in the title, the band in the key"
else not_ok "ema-sweep: the metric in the title, the band in the key" "SVG text"; fi
expect "ema-sweep --metric fid --at 16Ki" 0 "" -- "$P" ema-sweep --run "$A" --metric fid --at 16Ki --out "$O/fid" --quiet
chk "ema-sweep fid: guidance 1 only, its vertex" best "$O/fid/ema-sweep-best.dat" 1 10 8
expect "ema-sweep --at 8Ki" 0 "" -- "$P" ema-sweep --run "$A" --at 8Ki --out "$O/at8" --quiet
chk "ema-sweep --at 8Ki: that time's vertex" best "$O/at8/ema-sweep-best.dat" 1 7 0.30
expect "ema-sweep --format svg" 0 "" -- "$P" ema-sweep --run "$A" --format svg --out "$O/svg" --quiet
chk "--format svg writes only the SVG" formats "$O/svg" ema-sweep svg
expect "ema-sweep of a shared database: one curve per run" 0 "" -- "$P" ema-sweep --db "$W/shared.sqlite" --out "$O/shared" --quiet
chk "ema-sweep, three runs: three curves" blocks "$O/shared/ema-sweep.dat" $cols 10,10,10
chk "ema-sweep, three runs: run b's vertex" best "$O/shared/ema-sweep-best.dat" 2 6.1 0.26

# Figures from results the user may not write (a shared or archived run): the database is only
# read, never created, migrated or touched. As root (CI), run as nobody.
mkdir -p "$W/ro" "$W/ro-out" && cp "$W/shared.sqlite" "$W/ro/results.sqlite" && cp "$W/ro/results.sqlite" "$W/ro.copy"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  chmod 755 "$W" "$W/ro" && chmod 644 "$W/ro/results.sqlite" && chmod 777 "$W/ro-out"
  as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  chmod 555 "$W/ro"; as=()
fi
if [ "$(id -u)" -ne 0 ] || [ ${#as[@]} -gt 0 ]; then
  expect "ema-sweep from a database in a folder the user may not write" 0 "" -- \
    "${as[@]}" "$P" ema-sweep --db "$W/ro/results.sqlite" --out "$W/ro-out" --quiet
  [ -s "$W/ro-out/ema-sweep.png" ] && cmp -s "$W/ro/results.sqlite" "$W/ro.copy" && [ -z "$(ls "$W/ro" | grep -v '^results.sqlite$')" ] \
    && ok "read-only database: figure drawn, file unchanged, nothing added beside it" \
    || not_ok "read-only database" "$(ls -la "$W/ro" "$W/ro-out" | head)"
else
  echo "ok - read-only database # SKIP root without setpriv"
fi
chmod 755 "$W/ro"

# per-tensor: eight tensors (no key entry each), the best three in colour, the global sweep bold.
expect "per-tensor draws" 0 "" -- "$P" per-tensor --run "$A" --out "$O" --quiet
chk "per-tensor: PNG, SVG and PDF" formats "$O" per-tensor png,svg,pdf
chk "per-tensor.dat: eight tensors" blocks "$O/per-tensor.dat" $cols 10,10,10,10,10,10,10,10
chk "per-tensor-global.dat: the global sweep" blocks "$O/per-tensor-global.dat" $cols 10
chk "per-tensor: block0's optimum" best "$O/per-tensor-best.dat" 1 3.3 0.25 unet.enc.block0.weight
chk "per-tensor: block7's optimum" best "$O/per-tensor-best.dat" 8 17.3 0.2465 unet.enc.block7.weight
chk "per-tensor: the global optimum" best "$O/per-tensor-global-best.dat" 0 8.7 0.25
chk "per-tensor-top.dat: the best three" lines "$O/per-tensor-top.dat" 3 $bcols
if [ "$(awk '!/^#/ { print $1 }' "$O/per-tensor-top.dat" | tr '\n' ' ')" = "8 7 6 " ]; then
  ok "per-tensor: the three in colour are the best (blocks 7, 6, 5)"
else not_ok "per-tensor: the three in colour are the best (blocks 7, 6, 5)" "$(cat "$O/per-tensor-top.dat")"; fi

# evolution: three times, each optimum.
expect "evolution draws" 0 "" -- "$P" evolution --run "$A" --out "$O" --quiet
chk "evolution: PNG, SVG and PDF" formats "$O" evolution png,svg,pdf
chk "evolution.dat: three times" blocks "$O/evolution.dat" $cols 10,10,10
chk "evolution: 4Ki's optimum" best "$O/evolution-best.dat" 1 5 0.40
chk "evolution: 8Ki's optimum" best "$O/evolution-best.dat" 2 7 0.30
chk "evolution: 16Ki's optimum" best "$O/evolution-best.dat" 3 8.7 0.25
if awk '!/^#/ && NF { z[$6] = 1 } END { exit !(length(z) == 3 && (0.015625 in z)) }' "$O/evolution.dat"; then
  ok "evolution: coloured by training time in Mimg"
else not_ok "evolution: coloured by training time in Mimg" "$(tail -2 "$O/evolution.dat")"; fi
if grep -q "training time (Mimg)" "$O/evolution.svg"; then ok "evolution: the colour box is labelled"; else
  not_ok "evolution: the colour box is labelled" "SVG text"; fi

# guidance: fid by default (val-loss has no guidance), one curve per strength.
expect "guidance draws" 0 "" -- "$P" guidance --run "$A" --out "$O" --quiet
chk "guidance: PNG, SVG and PDF" formats "$O" guidance png,svg,pdf
chk "guidance.dat: three strengths" blocks "$O/guidance.dat" $cols 10,10,10
chk "guidance 1: optimum" best "$O/guidance-best.dat" 1 10 8
chk "guidance 1.2: optimum" best "$O/guidance-best.dat" 2 6 6
chk "guidance 1.4: optimum" best "$O/guidance-best.dat" 3 4.1 5.5
if grep -q "FID vs EMA length per guidance" "$O/guidance.svg" && grep -q "guidance 1.4: best σ_rel 4.1 %" "$O/guidance.svg"; then
  ok "guidance: FID named, each curve's optimum in the key"
else not_ok "guidance: FID named, each curve's optimum in the key" "SVG text"; fi
expect "guidance --metric val-loss: only guidance 1" 1 "guidance: skipped, no data" -- \
  "$P" guidance --run "$A" --metric val-loss --out "$O/none" --quiet
expect "guidance on run b: no guided sweeps" 1 "skipped, no data" -- "$P" guidance --run "$W/runs/b" --out "$O/none" --quiet

# lr-interaction: runs a, b, c (d has no database, .hidden is no run), by decay.
expect "lr-interaction --runs DIR" 0 "" -- "$P" lr-interaction --runs "$W/runs" --out "$O" --quiet
chk "lr-interaction: PNG, SVG and PDF" formats "$O" lr-interaction png,svg,pdf
chk "lr-interaction.dat: three runs" blocks "$O/lr-interaction.dat" $cols 10,10,10
chk "lr-interaction: decay 1024 (run b) first" best "$O/lr-interaction-best.dat" 1 6.1 0.26
chk "lr-interaction: decay 2048 (run a)" best "$O/lr-interaction-best.dat" 2 8.7 0.25
chk "lr-interaction: decay 4096 (run c)" best "$O/lr-interaction-best.dat" 3 12.3 0.255
if grep -q "decay = 1024: best σ_rel 6.1 %" "$O/lr-interaction.svg" && grep -q "differing in decay" "$O/lr-interaction.svg"; then
  ok "lr-interaction: curves labelled by the decay"
else not_ok "lr-interaction: curves labelled by the decay" "SVG text"; fi
expect "lr-interaction --runs LIST --db shared" 0 "" -- \
  "$P" lr-interaction --runs "$W/runs/c,$W/runs/a" --db "$W/shared.sqlite" --out "$O/lr2" --quiet
chk "lr-interaction, shared database: two runs, by decay" best "$O/lr2/lr-interaction-best.dat" 2 12.3 0.255
expect "lr-interaction --db shared: every run in it" 0 "" -- "$P" lr-interaction --db "$W/shared.sqlite" --out "$O/lr3" --quiet
chk "lr-interaction, every run of the database" blocks "$O/lr3/lr-interaction.dat" $cols 10,10,10
expect "lr-interaction --key seed" 0 "" -- "$P" lr-interaction --runs "$W/runs" --key seed --out "$O/lr4" --quiet
if grep -q "seed = 97" "$O/lr4/lr-interaction.svg"; then ok "lr-interaction --key: labelled by that key"; else
  not_ok "lr-interaction --key: labelled by that key" "SVG text"; fi
expect "lr-interaction without --runs" 1 "lr-interaction: skipped, no data: needs --runs" -- \
  "$P" lr-interaction --run "$A" --out "$O/none" --quiet
expect "lr-interaction, one run with data" 1 "skipped, no data" -- \
  "$P" lr-interaction --runs "$W/runs/a,$W/runs/d" --out "$O/none" --quiet
expect "lr-interaction --runs not a folder" 1 "not a folder" -- "$P" lr-interaction --runs "$W/nope" --out "$O/none" --quiet

# metrics-compare: FID and FD_DINOv2 at 16Ki (not 8Ki: fid alone), three strengths.
expect "metrics-compare draws" 0 "" -- "$P" metrics-compare --run "$A" --out "$O" --quiet
chk "metrics-compare: PNG, SVG and PDF" formats "$O" metrics-compare png,svg,pdf
chk "metrics-compare-fid.dat" blocks "$O/metrics-compare-fid.dat" $cols 10,10,10
chk "metrics-compare-fd_dinov2.dat" blocks "$O/metrics-compare-fd_dinov2.dat" $cols 10,10,10
chk "metrics-compare: FID's optimum, guidance 1" best "$O/metrics-compare-fid-best.dat" 1 10 8
chk "metrics-compare: FD_DINOv2's optimum, guidance 1" best "$O/metrics-compare-fd_dinov2-best.dat" 1 16 150
chk "metrics-compare: FD_DINOv2's optimum, guidance 1.4" best "$O/metrics-compare-fd_dinov2-best.dat" 3 12.1 100
expect "metrics-compare --at 8Ki: fid alone" 1 "skipped, no data" -- "$P" metrics-compare --run "$A" --at 8Ki --out "$O/none" --quiet
expect "metrics-compare on run b: val-loss only" 1 "skipped, no data" -- "$P" metrics-compare --run "$W/runs/b" --out "$O/none" --quiet

# No data: a run without a database, a time without sweeps, one time only.
for f in ema-sweep per-tensor evolution guidance metrics-compare; do
  expect "$f without a database" 1 "$f: skipped, no data: " -- "$P" $f --run "$W/empty" --out "$O/none" --quiet
done
expect "ema-sweep --at a time without sweeps" 1 "skipped, no data" -- "$P" ema-sweep --run "$A" --at 1Ki --out "$O/none" --quiet
expect "ema-sweep --metric unknown" 1 "no nope sweeps" -- "$P" ema-sweep --run "$A" --metric nope --out "$O/none" --quiet
expect "per-tensor on run b: no per-tensor sweeps" 1 "skipped, no data" -- "$P" per-tensor --run "$W/runs/b" --out "$O/none" --quiet
expect "evolution on run b: one time" 1 "only one training time" -- "$P" evolution --run "$W/runs/b" --out "$O/none" --quiet
if [ -z "$(ls -A "$O/none" 2>/dev/null)" ]; then ok "no data: nothing written"; else
  not_ok "no data: nothing written" "$(ls "$O/none")"; fi
finish
