/* Loading an EDM2 network from a file: a model file (format edm2c-model, what posthoc-ema
 * writes), one EMA profile of a snapshot (edm2c-snapshot) or a checkpoint (edm2c-checkpoint).
 *
 * The configuration comes from the file: its `preset` attribute (a known preset name, with or
 * without the "edm2-" prefix; may be "") and its `config` attribute (JSON of the reference
 * constructor's arguments), which overrides the preset's values. Tensors are matched by
 * state-dict name and shape; a missing, extra or misshapen tensor is an error that names the
 * first one. Half-precision datasets are converted to float32. */
#ifndef EDM2C_TRAINER_NETLOAD_H
#define EDM2C_TRAINER_NETLOAD_H

#include "core/h5io.h"
#include "core/status.h"
#include "trainer/net.h"

#define EDM2_CHECKPOINT_FORMAT "edm2c-checkpoint"

typedef struct {
  const char *profile;   /* snapshots: which EMA profile ("0.100"; parsed as a number); NULL
                            picks the only one and is an error when there are several */
  int quiet;             /* 0: warn on stderr about tensors holding NaN or Inf */
} edm2_load_opts;

typedef struct {
  char format[32];       /* the file's format */
  char profile[32];      /* the snapshot profile loaded ("" otherwise) */
  char preset[64];       /* the preset named by the file ("" for none) */
  int nonfinite_tensors; /* tensors holding NaN or Inf (each warned about unless quiet) */
} edm2_load_info;

/* Builds *net from the file (net is initialised here; free it with edm2_net_free). */
ec_status edm2_net_load(edm2_net *net, const char *path, const edm2_load_opts *opts,
                        edm2_load_info *info);

/* Reads the configuration only (preset and config attributes) of an open file. */
ec_status edm2_netcfg_from_file(hid_t file, const char *path, edm2_netcfg *cfg, char *preset,
                                size_t preset_size);

#endif
