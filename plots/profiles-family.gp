# edm2-plot profiles, the family (paper Figure 24): the power-function EMA profile of each
# --sigma-rel value ending at the same time t, one line each.
# data: profiles-family.dat, one block per sigma_rel: nimg, Mimg, tau_rel (tau / t), weight (per
#   Mimg, unit area over the Mimg axis); fig_profiles.c writes it.
# variables (from C): family_title, xmax, ntargets, FT[] (labels), FS[] (sigma_rel values),
#   family_palette (1: colour by sigma_rel on a scale instead of a legend), fs_min, fs_max.
# No computation here.
load scripts.'/style.gp'
set title family_title
set xrange [0:xmax]
set xlabel 'training time (Mimg)'
set ylabel 'EMA weight (normalised)'
set key top left Left reverse
if (family_palette) {
  set palette defined (0 '#0072B2', 1 '#009E73', 2 '#E69F00', 3 '#D55E00')
  set cbrange [fs_min:fs_max]
  set cblabel 'σ_rel'
  plot for [k=1:ntargets] datadir.'/profiles-family.dat' index (k-1) using 2:4 with lines lw 2 \
         lc palette cb FS[k] notitle
} else {
  plot for [k=1:ntargets] datadir.'/profiles-family.dat' index (k-1) using 2:4 with lines lw 2.5 \
         lt k title FT[k]
}
