# edm2-plot per-tensor (Figure 5b): one faint line per tensor whose EMA length alone is swept
# (every other tensor at the base), over the global sweep drawn bold.
# data: per-tensor.dat (blocks, one per tensor: sigma_rel_pct mean min max count z),
# per-tensor-best.dat (each tensor's optimum), per-tensor-top.dat (the best three: z = rank),
# per-tensor-global.dat and per-tensor-global-best.dat (the global sweep and its optimum).
# Variables: title_text, ylabel_text, ntensors, legend, tensors_title, have_global,
# global_title, base_pct, base_title, titles[], ntop, top_index[] (their blocks, from 0),
# top_titles[], ymin, ymax (the tensors' range). No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'EMA length σ_rel (%)'
set ylabel ylabel_text
set key below left Left reverse maxrows 8 height 0.6
set yrange [ymin:ymax]
if (base_pct > 0) {
  set arrow 1 from base_pct, graph 0 to base_pct, graph 1 nohead dt 3 lw 1.2 lc rgb '#808080'
}
t = datadir.'/per-tensor.dat'
g = datadir.'/per-tensor-global.dat'
if (legend) {
  plot for [i=1:ntensors] t index (i-1) using 1:2 with linespoints lt i lw 1.1 pt 7 ps 0.4 title titles[i], \
       datadir.'/per-tensor-best.dat' using 2:3:6 with points pt 7 ps 1.3 lc variable notitle, \
       for [k=1:have_global] g using 1:2 with linespoints lc rgb '#000000' lw 3.2 pt 7 ps 0.6 title global_title, \
       for [k=1:have_global] datadir.'/per-tensor-global-best.dat' using 2:3 with points pt 9 ps 2.2 lc rgb '#000000' title 'optimum', \
       for [k=1:(base_pct > 0)] keyentry with lines dt 3 lw 1.2 lc rgb '#808080' title base_title
} else {
  plot t using 1:2 with lines lc rgb '#b0b0b0' lw 1 title tensors_title, \
       for [j=1:ntop] t index top_index[j] using 1:2 with linespoints lt j lw 1.6 pt 7 ps 0.5 title top_titles[j], \
       datadir.'/per-tensor-top.dat' using 2:3:6 with points pt 7 ps 1.4 lc variable notitle, \
       for [k=1:have_global] g using 1:2 with linespoints lc rgb '#000000' lw 3.2 pt 7 ps 0.6 title global_title, \
       for [k=1:have_global] datadir.'/per-tensor-global-best.dat' using 2:3 with points pt 9 ps 2.2 lc rgb '#000000' title 'optimum', \
       for [k=1:(base_pct > 0)] keyentry with lines dt 3 lw 1.2 lc rgb '#808080' title base_title
}
