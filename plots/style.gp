# Shared look of every edm2-plot figure (loaded first by each script): the terminal for `fmt`
# (png, svg, pdf) at one size, one font and one palette, writing to `out`. No computation here.
if (fmt eq 'png') {
  set terminal pngcairo size 1200,750 font 'DejaVu Sans,15' linewidth 1.6 noenhanced
} else {
  if (fmt eq 'svg') {
    set terminal svg size 1200,750 font 'DejaVu Sans,15' linewidth 1.6 noenhanced background '#ffffff'
  } else {
    set terminal pdfcairo size 8in,5in font 'DejaVu Sans,10' linewidth 1.6 noenhanced
  }
}
set output out
set encoding utf8
set grid lc rgb '#e0e0e0' lw 1
set border 3 lc rgb '#404040'
set tics nomirror
set key noopaque samplen 2 spacing 1.1
# Okabe-Ito: distinguishable by colour-blind readers; line types 1..8 use them in order.
array C[8] = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442']
do for [i=1:8] { set linetype i lc rgb C[i] lw 2 pt 7 ps 0.7 }
