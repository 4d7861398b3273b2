# edm2-plot ema-sweep (Figure 5a): the metric against EMA length, one curve per run/config.
# data: ema-sweep.dat (blocks, one per curve: sigma_rel_pct mean min max count z) and
# ema-sweep-best.dat (one line per curve: curve sigma_rel_pct value ... fit label).
# Variables: title_text, ylabel_text, ncurves, band, band_title, labels, titles[]. No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'EMA length σ_rel (%)'
set ylabel ylabel_text
set key below left Left reverse samplen 3 width 2 height 0.6
set offsets 0, 0, graph 0.05, graph 0.12
f = datadir.'/ema-sweep.dat'
b = datadir.'/ema-sweep-best.dat'
plot for [i=1:ncurves] f index (i-1) using 1:3:4 with filledcurves lc i fs transparent solid 0.18 noborder notitle, \
     for [k=1:band] keyentry with filledcurves lc rgb '#b0b0b0' fs solid 0.5 noborder title band_title, \
     for [i=1:ncurves] f index (i-1) using 1:2 with linespoints lt i pt 7 ps 0.6 title titles[i], \
     b using 2:3 with points pt 9 ps 2.2 lc rgb '#000000' title 'optimum', \
     for [k=1:labels] b using 2:3:8 with labels offset 0,-1.4 font ',14' notitle
