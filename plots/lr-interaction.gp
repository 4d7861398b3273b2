# edm2-plot lr-interaction (Figure 13): the metric against EMA length, one curve per run, the
# runs differing in a configuration key (the learning-rate decay in the paper).
# data: lr-interaction.dat (blocks, one per run: sigma_rel_pct mean min max count z = the key's
# value) and lr-interaction-best.dat (each run's optimum: curve sigma_rel_pct value ... label).
# Variables: title_text, ylabel_text, ncurves, band, band_title, titles[]. No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'EMA length σ_rel (%)'
set ylabel ylabel_text
set key below left Left reverse samplen 3 width 2 height 0.6
set offsets 0, 0, graph 0.05, graph 0.08
f = datadir.'/lr-interaction.dat'
b = datadir.'/lr-interaction-best.dat'
plot for [i=1:ncurves] f index (i-1) using 1:3:4 with filledcurves lc i fs transparent solid 0.15 noborder notitle, \
     for [k=1:band] keyentry with filledcurves lc rgb '#b0b0b0' fs solid 0.5 noborder title band_title, \
     for [i=1:ncurves] f index (i-1) using 1:2 with linespoints lt i pt 7 ps 0.6 title titles[i], \
     b using 2:3:1 with points pt 7 ps 2.0 lc variable notitle, \
     b using 2:3 with points pt 6 ps 2.0 lc rgb '#000000' title 'optimum'
