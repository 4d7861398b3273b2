# edm2-plot metrics-compare (Figure 14): FID (left axis, solid) and FD_DINOv2 (right axis,
# dashed) against EMA length, one colour per guidance strength.
# data: metrics-compare-fid.dat and metrics-compare-fd_dinov2.dat (blocks, one per guidance:
# sigma_rel_pct mean min max count z), and their optima (-best.dat: curve sigma_rel_pct value ...).
# Variables: title_text, ncurves, y1min, y1max, y2min, y2max, fid_titles[], fd_titles[].
# No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'EMA length σ_rel (%)'
set ylabel 'FID'
set y2label 'FD_DINOv2'
set border 11 lc rgb '#404040'
set ytics nomirror
set y2tics
set key below vertical left Left reverse maxrows (ncurves + 1) samplen 4 width 1 height 0.6
set yrange [y1min:y1max]
set y2range [y2min:y2max]
fi = datadir.'/metrics-compare-fid.dat'
fd = datadir.'/metrics-compare-fd_dinov2.dat'
plot for [i=1:ncurves] fi index (i-1) using 1:2 with linespoints lt i pt 7 ps 0.6 title fid_titles[i], \
     datadir.'/metrics-compare-fid-best.dat' using 2:3:1 with points pt 7 ps 2.0 lc variable notitle, \
     datadir.'/metrics-compare-fid-best.dat' using 2:3 with points pt 6 ps 2.0 lc rgb '#000000' title 'optimum (FID)', \
     for [i=1:ncurves] fd index (i-1) using 1:2 axes x1y2 with linespoints lt i dt 2 pt 5 ps 0.6 title fd_titles[i], \
     datadir.'/metrics-compare-fd_dinov2-best.dat' using 2:3:1 axes x1y2 with points pt 5 ps 1.8 lc variable notitle, \
     datadir.'/metrics-compare-fd_dinov2-best.dat' using 2:3 axes x1y2 with points pt 4 ps 1.8 lc rgb '#000000' title 'optimum (FD_DINOv2)'
