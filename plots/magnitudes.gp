# edm2-plot magnitudes (paper Figures 3 and 15): activation (left) and weight (right) magnitudes
# per resolution bucket over training time; one colour per bucket, max solid, mean dashed. Without
# activations in the log, the weights alone.
# data (fig_magnitudes.c writes them; one row per log.jsonl line that has the kind):
#   magnitudes-weights.dat      nimg, Mimg, then BUCKET.max, BUCKET.mean for each bucket
#   magnitudes-activations.dat  the same for the activations (only with --magnitudes)
# variables (from C): title_text, has_act; per panel P = W (weights), A (activations): nP,
#   P[b] (bucket names), PMAX[b], PMEAN[b] (their columns), PLT[b] (their colours).
# No computation here.
load scripts.'/style.gp'
set xlabel 'training time (Mimg)'
# one legend for both panels, right of them (a bucket has the same colour in both)
set key at screen 0.995, screen 0.86 top right Left reverse samplen 1.5 spacing 1.0
if (has_act) {
  set multiplot layout 1,2 title title_text margins 0.08, 0.86, 0.11, 0.87 spacing 0.08, 0
  set title 'activations'
  set ylabel 'magnitude (dimension-weighted L2 norm)'
  plot for [b=1:nA] datadir.'/magnitudes-activations.dat' using 2:(column(AMAX[b])) with lines lw 2 \
         lc rgb C[ALT[b]] notitle, \
       for [b=1:nA] '' using 2:(column(AMEAN[b])) with lines lw 2 dt 2 lc rgb C[ALT[b]] notitle
  set title 'weights'
  unset ylabel
} else {
  set title title_text
  set rmargin at screen 0.86
  set ylabel 'weight magnitude (dimension-weighted L2 norm)'
}
plot for [b=1:nW] datadir.'/magnitudes-weights.dat' using 2:(column(WMAX[b])) with lines lw 2 \
       lc rgb C[WLT[b]] title W[b], \
     for [b=1:nW] '' using 2:(column(WMEAN[b])) with lines lw 2 dt 2 lc rgb C[WLT[b]] notitle, \
     NaN with lines lw 2 lc rgb '#404040' title 'max', \
     NaN with lines lw 2 dt 2 lc rgb '#404040' title 'mean'
if (has_act) { unset multiplot }
