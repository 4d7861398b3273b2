# edm2-plot loss: the training loss and the learning rate against training time.
# data: loss.dat (nimg, Mimg, loss, lr). No computation here.
load scripts.'/style.gp'
set title title_text
set xlabel 'training time (Mimg)'
set ylabel 'training loss'
set y2label 'learning rate'
set y2tics
set ytics nomirror
set key top right
plot datadir.'/loss.dat' using 2:3 with lines lt 1 title 'loss', \
     '' using 2:4 axes x1y2 with lines lt 2 dt 2 title 'learning rate'
