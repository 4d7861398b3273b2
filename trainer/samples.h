/* The files of edm2-generate besides its PNGs (docs/formats.md): the raw samples it writes with
 * --save-raw (format edm2c-samples) and the noise files it reads with --noise-from, of which a
 * samples file is one.
 *
 *   edm2_noise_file nf;
 *   edm2_noise_open(&nf, "noise.h5", n, C, R, L, "net.h5");  // checks shapes and values now
 *   edm2_noise_read(&nf, i, x);                                // image i's noise (C·R·R floats)
 *   nf.labels                                                  // [n, L] or NULL
 *   edm2_noise_close(&nf);
 *
 *   edm2_samples_write("raw.h5", EC_ATOMIC_NOCLOBBER, &meta, n, C, R, L, x, seeds, noise, labels); */
#ifndef EDM2C_TRAINER_SAMPLES_H
#define EDM2C_TRAINER_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "core/h5io.h"
#include "core/status.h"

#define EDM2_SAMPLES_FORMAT "edm2c-samples"

typedef struct {
  const char *path;
  hid_t file;
  h5io_dset noise; /* [n, C, R, R] */
  size_t M;        /* C·R·R */
  float *labels;   /* [n, L] when L > 0 was asked for, else NULL */
} edm2_noise_file;

/* Opens path and checks its dataset noise: shape [n, C, R, R] (any float type), finite. L > 0
 * also reads labels [n, L] (finite; any weights); a missing one is an error that suggests
 * --class, naming the network `net`. Every error names the file and dataset, with the shape found
 * and the shape needed. */
ec_status edm2_noise_open(edm2_noise_file *f, const char *path, int n, int C, int R, int L, const char *net);
/* Image i's noise (M floats). */
ec_status edm2_noise_read(const edm2_noise_file *f, int i, float *out);
/* Safe on a zeroed struct whose file is H5I_INVALID_HID, and twice. */
void edm2_noise_close(edm2_noise_file *f);

/* Attributes of a samples file ("" for the guiding network's when there is none). */
typedef struct {
  const char *net, *net_format, *profile, *preset, *config;
  const char *gnet, *gnet_format, *gprofile, *gpreset, *gconfig;
  const char *options; /* JSON of the sampling options */
} edm2_samples_meta;

/* Writes path atomically (flags: 0 or EC_ATOMIC_NOCLOBBER): x [n, C, R, R] float32 (x is read as
 * raw float32 bytes), seeds [n] int64, noise [n, C, R, R] float32, labels [n, L] float32 when
 * L > 0, and the attributes of m. */
ec_status edm2_samples_write(const char *path, int flags, const edm2_samples_meta *m, int n, int C, int R, int L,
                             const void *x, const int64_t *seeds, const float *noise, const float *labels);

#endif
