/* Checkpoints: everything a run needs to continue bit for bit (docs/formats.md, format
 * `edm2c-checkpoint` version 1): RUN/checkpoints/checkpoint-<nimg, 12 digits>.h5 with
 *   root attributes  format, format_version, nimg, batch_size, preset, config (the run's
 *                    traincfg JSON), adam_step, elapsed (seconds of training so far),
 *                    edm2c_version;
 *   /params/<name>   the raw trainable weights, float32;   /buffers/<name> float32;
 *   /adam/m/<name>, /adam/v/<name>   Adam's moments, float32;
 *   /ema/<σ_rel, 3 decimals>/<name>  the tracked averages, float32 (attributes sigma_rel, gamma).
 * The random streams are functions of (seed, nimg) and the data order of (seed, nimg), so the
 * image count is all the state they need. Written through `.tmp` and renamed. */
#ifndef EDM2C_TRAINER_CKPT_H
#define EDM2C_TRAINER_CKPT_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/ema.h"
#include "trainer/net.h"
#include "trainer/optim.h"

typedef struct {
  int64_t nimg, batch_size;
  const char *preset, *config;
  double elapsed;
} edm2_ckpt_meta;

/* Writes dir/checkpoint-<nimg>.h5 (dir must exist); an existing file of the same name is
 * replaced only when complete. */
ec_status edm2_ckpt_write(const char *dir, const edm2_ckpt_meta *meta, const edm2_net *net,
                          const edm2_adam *adam, const edm2_ema *ema);

/* The newest complete checkpoint in dir: *path = malloc'd path, or NULL when there is none (also
 * when dir does not exist). */
ec_status edm2_ckpt_latest(const char *dir, char **path, int64_t *nimg);

/* Reads the root attributes: *config malloc'd (free()), nimg, adam_step, elapsed. */
ec_status edm2_ckpt_read_meta(const char *path, char **config, int64_t *nimg, int64_t *adam_step,
                              double *elapsed);

/* Restores a network (built from the checkpoint's config), Adam and the EMAs (initialised with
 * the same profiles). Every tensor must be present with the table's size (errors name it). */
ec_status edm2_ckpt_load(const char *path, edm2_net *net, edm2_adam *adam, edm2_ema *ema);

#endif
