/* Statistics files: edm2c's HDF5 stats (format "edm2c-stats", docs/formats.md) and pytorch-fid's
 * .npz (`mu`, `sigma`), read and written.
 *
 * An HDF5 stats file holds one group per metric, /fid and /fd_dinov2, each with mu [D] and
 * sigma [D, D] in float64. A .npz holds one unnamed set (pytorch-fid, clean-fid, TTUR and EDM1
 * files are FID statistics, but the file does not say so); it is read into `unnamed`.
 * Readers tell the kind of file by its first bytes, not by its name. */
#ifndef EDM2C_METRICS_STATS_IO_H
#define EDM2C_METRICS_STATS_IO_H

#include <stdint.h>

#include "core/status.h"

#define EDM2_STATS_FORMAT "edm2c-stats"
#define EDM2_STATS_FORMAT_VERSION 1

/* The metrics a stats file can hold, in file order. */
typedef enum { EDM2_METRIC_FID = 0, EDM2_METRIC_FD_DINOV2 = 1, EDM2_METRIC_COUNT = 2 } edm2_metric;
/* "fid", "fd_dinov2": the group names in files and the keys in --json output. */
const char *edm2_metric_name(edm2_metric m);
/* The feature dimension of a metric's network: 2048 (Inception pool3), 1024 (ViT-L/14 CLS). */
int64_t edm2_metric_dim(edm2_metric m);
/* Parses "fid" or "fd_dinov2"; EC_EINVAL otherwise. */
ec_status edm2_metric_parse(const char *s, edm2_metric *m);

/* One set of statistics. dim = 0 means absent. */
typedef struct {
  int64_t dim;
  int64_t num_images; /* −1 when unknown (.npz) */
  double *mu;         /* [dim] */
  double *sigma;      /* [dim, dim], row-major, symmetric */
} edm2_moments;

typedef struct {
  int is_npz;
  int64_t num_images;                      /* root attribute; −1 for .npz */
  edm2_moments metric[EDM2_METRIC_COUNT];  /* HDF5: the groups present */
  edm2_moments unnamed;                    /* .npz: mu and sigma */
} edm2_stats_file;

ec_status edm2_moments_alloc(edm2_moments *m, int64_t dim);
void edm2_moments_free(edm2_moments *m);
void edm2_stats_file_free(edm2_stats_file *f);

/* Relative tolerance of the symmetry check: |σᵢⱼ − σⱼᵢ| ≤ tol · max |σ|. */
#define EDM2_SIGMA_SYM_TOL 1e-8

/* Checks mu and sigma are finite, sigma is symmetric within EDM2_SIGMA_SYM_TOL and its diagonal
 * is not negative, then makes sigma exactly symmetric (the mean of both triangles). `where`
 * names the set in messages ("a.h5:/fid"). */
ec_status edm2_moments_validate(const char *where, edm2_moments *m);

/* Reads an HDF5 stats file or a .npz (validated as above). */
ec_status edm2_stats_read(const char *path, edm2_stats_file *f);

/* Writes an HDF5 stats file atomically (flags: core/atomic.h, e.g. EC_ATOMIC_NOCLOBBER) with the
 * metrics whose dim is nonzero; num_images is the root attribute. */
ec_status edm2_stats_write_h5(const char *path, const edm2_stats_file *f, int flags);

/* Writes a .npz (uncompressed members mu.npy and sigma.npy, float64) atomically. */
ec_status edm2_stats_write_npz(const char *path, const edm2_moments *m, int flags);

#endif
