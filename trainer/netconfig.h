/* The EDM2 network's configuration: the reference constructor's arguments (Precond + UNet +
 * Block, edm2-spec.md §2–4), the named presets (§6.1, plus small presets that train on a CPU),
 * and their JSON form. JSON keys are the reference's argument names, so a file's `config`
 * attribute such as {"label_dim": 0} reads the same here and in PyTorch. */
#ifndef EDM2C_TRAINER_NETCONFIG_H
#define EDM2C_TRAINER_NETCONFIG_H

#include <stdint.h>

#include "core/status.h"

#define EDM2_MAX_LEVELS 8

typedef struct {
  int img_resolution, img_channels;
  int label_dim; /* 0 = unconditional */
  int model_channels;
  int n_levels, channel_mult[EDM2_MAX_LEVELS];
  int channel_mult_noise, channel_mult_emb; /* 0 = the reference's None (derive from channel_mult) */
  int num_blocks;
  int n_attn, attn_resolutions[EDM2_MAX_LEVELS];
  double label_balance, concat_balance;
  int channels_per_head;
  double dropout, res_balance, attn_balance;
  double clip_act; /* 0 = the reference's None (no clipping) */
  double sigma_data;
  int logvar_channels;
} edm2_netcfg;

typedef struct {
  const char *name;  /* "img512-xs"; "edm2-img512-xs" is accepted too */
  const char *about; /* one line for --help and --list-presets */
  edm2_netcfg net;
  /* Training hyper-parameters (edm2-spec.md §6.1): duration and batch in images, reference
   * learning rate, decay time t_ref in iterations, and the σ distribution of the loss. */
  int64_t duration, batch;
  double lr_ref;
  int64_t decay;
  double P_mean, P_std;
  /* Learning-rate warm-up in images, and the default status, snapshot and checkpoint intervals
   * in images (the reference's CLI defaults for the paper presets; shorter for the small ones). */
  int64_t rampup, status, snapshot, checkpoint;
} edm2_preset;

/* The reference constructor's defaults (Precond with UNet's and Block's defaults). The image
 * size, channels and label_dim have no defaults there; these are set to 64, 3 and 1000. */
void edm2_netcfg_default(edm2_netcfg *c);

/* Derived sizes: channels of level l, Fourier features, embedding width. */
int edm2_netcfg_cblock(const edm2_netcfg *c, int level);
int edm2_netcfg_cnoise(const edm2_netcfg *c);
int edm2_netcfg_cemb(const edm2_netcfg *c);
/* Attention heads of a block with `out` channels (0: none), as the reference computes them. */
int edm2_netcfg_heads(const edm2_netcfg *c, int out, int attention);

/* EC_EINVAL with a message naming the offending argument when the configuration cannot be built
 * (the reference would fail or silently build something else). `what` prefixes the message. */
ec_status edm2_netcfg_check(const edm2_netcfg *c, const char *what);

/* Applies a JSON object of constructor arguments on top of *c. Wrong types and values out of
 * range are errors naming the key; `what` (a file name, "--config") prefixes the message. With
 * strict, unknown keys are errors too (a command-line --config); without, they are ignored (a
 * file's `config` attribute may also record training settings; a misspelt network argument
 * then shows up as a tensor whose shape does not match). The result is checked with
 * edm2_netcfg_check. */
ec_status edm2_netcfg_apply_json(edm2_netcfg *c, const char *json, const char *what, int strict);
/* The whole configuration as a JSON object (keys in the reference's order); free() it. NULL when
 * out of memory. */
char *edm2_netcfg_to_json(const edm2_netcfg *c);
int edm2_netcfg_equal(const edm2_netcfg *a, const edm2_netcfg *b);

/* Presets. find returns NULL for an unknown name. */
int edm2_preset_count(void);
const edm2_preset *edm2_preset_at(int i);
const edm2_preset *edm2_preset_find(const char *name);
/* EC_EINVAL "unknown preset 'x' (known: ...)" when the name is not a preset. */
ec_status edm2_preset_get(const char *name, const edm2_preset **out);

#endif
