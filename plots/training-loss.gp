# The training loss of an edm2-train run against images seen, from `edm2-log RUN/log.jsonl
# --columns nimg,loss` (two columns). gnuplot -e "data='loss.tsv'; out='loss.png'" training-loss.gp
# With out ending in .txt the plot is drawn as text (for a terminal).
if (!exists("data")) data = "loss.tsv"
if (!exists("out")) out = "loss.png"
if (strlen(out) > 3 && out[strlen(out)-2:strlen(out)] eq "txt") {
  set terminal dumb size 100,28
} else {
  set terminal pngcairo size 900,540 font "DejaVu Sans,11"
}
set output out
set xlabel "training images (k)"
set ylabel "loss (mean per element, with the learned log-variance)"
set grid
set key off
set title "edm2-train: training loss"
plot data using ($1/1000):2 with linespoints pt 7 ps 0.5 lw 2
