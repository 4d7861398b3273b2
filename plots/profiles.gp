# edm2-plot profiles (paper Figure 4): top, the stored snapshot EMA profiles as shaded areas;
# bottom, each target profile dashed and its least-squares reconstruction from them filled.
# data (densities per Mimg, unit area over the Mimg axis; fig_profiles.c writes them):
#   profiles-stored.dat  one block per stored profile: nimg, Mimg, weight
#   profiles.dat         one block per target: nimg, Mimg, target, recon
# variables (from C): title_text, xmax, stored_ymax, nstored, SB[] (the blocks
#   drawn: at most 16 snapshots), SLT[] (their colours), nkey, KLT[],
#   KT[] (stored legend), stored_title, ntargets, TLT[], RLT[], TT[], RT[] (target and
#   reconstruction colours and legend; an empty title is no key entry), TI[] (their blocks in
#   profiles.dat: at most 5 targets are drawn), recon_title, targets_key. No computation here.
load scripts.'/style.gp'
set multiplot layout 2,1 title title_text
set lmargin 12
set rmargin 3
set xrange [0:xmax]
set xlabel 'training time (Mimg)'
set ylabel 'EMA weight (normalised)'
# top: the stored profiles (the earliest, tallest ones are at the left)
set key top right Left reverse opaque
set title stored_title
set yrange [0:stored_ymax]
plot for [i=1:nstored] datadir.'/profiles-stored.dat' index SB[i] using 2:3 with filledcurves y1=0 \
       fs transparent solid 0.10 noborder lc rgb C[SLT[i]] notitle, \
     for [i=1:nstored] '' index SB[i] using 2:3 with lines lw 0.8 lc rgb C[SLT[i]] notitle, \
     for [j=1:nkey] NaN with filledcurves y1=0 fs transparent solid 0.35 noborder lc rgb C[KLT[j]] title KT[j]
# bottom: the targets and their reconstructions
set key top left Left reverse
set title recon_title
set autoscale y
plot for [k=1:ntargets] datadir.'/profiles.dat' index TI[k] using 2:4 with filledcurves y1=0 \
       fs transparent solid 0.45 noborder lc rgb C[RLT[k]] title RT[k], \
     for [k=1:ntargets] '' index TI[k] using 2:3 with lines dt 2 lw 2.5 lc rgb C[TLT[k]] title TT[k], \
     NaN with lines dt 2 lw 2.5 lc rgb '#404040' title targets_key
unset multiplot
