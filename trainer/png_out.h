/* Images out of the sampler: the reference's uint8 conversion (edm2-spec.md §8.3), PNG files
 * written atomically, and image grids.
 *
 *   edm2_to_u8(x, C, H, W, hwc);                                  // one image, CHW float → HWC uint8
 *   edm2_png_write("out/000016.png", hwc, W, H, C, EC_ATOMIC_NOCLOBBER);
 *   edm2_grid_shape(n, &cols, &rows);                             // near-square, row-major
 *   edm2_grid_place(grid, cols, W, H, C, j, hwc);                  // image j into its cell
 *
 * PNGs are 8-bit grayscale (C = 1) or RGB (C = 3), no interlacing, zlib's default compression
 * and no time or text chunks, so the same pixels always give the same bytes. */
#ifndef EDM2C_TRAINER_PNG_OUT_H
#define EDM2C_TRAINER_PNG_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* uint8(clamp(x·127.5 + 128, 0, 255)) in float32, truncating, as the reference's
 * StandardRGBEncoder.decode; NaN becomes 0. chw (C, H, W) in, hwc (H, W, C) out. */
void edm2_to_u8(const float *chw, int C, int H, int W, uint8_t *hwc);

/* Encodes hwc (H, W, C; C = 1 or 3) as PNG and writes it to path atomically (core/atomic.h);
 * flags: 0 or EC_ATOMIC_NOCLOBBER (an existing file is then EC_EEXIST, message naming it). */
ec_status edm2_png_write(const char *path, const uint8_t *hwc, int W, int H, int C, int flags);

/* The grid for n images: cols = ceil(sqrt(n)), rows = ceil(n / cols). */
void edm2_grid_shape(int n, int *cols, int *rows);

/* Copies image j (hwc, H × W × C) into cell (j / cols, j % cols) of grid (rows·H, cols·W, C). */
void edm2_grid_place(uint8_t *grid, int cols, int W, int H, int C, int j, const uint8_t *hwc);

#endif
