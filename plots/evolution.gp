# edm2-plot evolution (Figure 5c): the EMA sweep at several training times, coloured by time.
# data: evolution.dat (blocks, one per time: sigma_rel_pct mean min max count z = Mimg) and
# evolution-best.dat (each time's optimum: curve sigma_rel_pct value ... z fit label).
# Variables: title_text, ylabel_text, cbmin, cbmax (Mimg). No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'EMA length σ_rel (%)'
set ylabel ylabel_text
set key below left Left reverse height 0.6
set offsets 0, 0, graph 0.05, graph 0.08
# viridis, without its palest yellow
set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', 4 '#b5de2b')
set cbrange [cbmin:cbmax]
set cblabel 'training time (Mimg)'
set format cb '%.3g'
set cbtics nomirror
plot datadir.'/evolution.dat' using 1:2:6 with lines lw 2.2 lc palette notitle, \
     datadir.'/evolution-best.dat' using 2:3:6 with points pt 7 ps 1.8 lc palette notitle, \
     datadir.'/evolution-best.dat' using 2:3 with points pt 6 ps 1.8 lc rgb '#000000' title 'optimum of each time'
