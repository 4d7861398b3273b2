/* The feature networks' weights as edm2-metrics finds them: safetensors files written by
 * tools/convert-weights in a weights directory (docs/metrics.md, "Converting the weights"), tensors under their
 * PyTorch state-dict names.
 *
 *   fid        DIR/inception-2015-12-05.safetensors  (from pytorch-fid's
 *              pt_inception-2015-12-05-6726825d.pth)
 *   fd_dinov2  DIR/dinov2_vitl14.safetensors         (from dinov2_vitl14_pretrain.pth)
 *
 * DIR is --weights-dir, else $EDM2C_WEIGHTS_DIR, else $XDG_DATA_HOME/edm2c, else
 * ~/.local/share/edm2c. A missing file is an EC_ENOENT error that names the path, the file to
 * download and the tools/ command that converts it. edm2_weights_source checks every tensor the
 * network asks for against the shape that network needs (a missing or misshapen tensor is an
 * error naming the tensor, the file and both shapes) and reads it as float32 (F32, F16, BF16 and
 * F64 files are accepted). */
#ifndef EDM2C_METRICS_WEIGHTS_H
#define EDM2C_METRICS_WEIGHTS_H

#include <stddef.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "metrics/stats_io.h"

typedef struct {
  edm2_metric metric;
  ec_st_file file;
} edm2_weights;

/* The weights directory (see above) into buf; `dir` (may be NULL) is --weights-dir. */
ec_status edm2_weights_dir(const char *dir, char *buf, size_t cap);
/* The file name of a metric's weights in the directory. */
const char *edm2_weights_file(edm2_metric m);

/* Opens the weights of metric m from `dir` (NULL: the default directory). */
ec_status edm2_weights_open(edm2_weights *w, edm2_metric m, const char *dir);
/* Opens a given file as metric m's weights (tests, and files kept elsewhere). */
ec_status edm2_weights_open_file(edm2_weights *w, edm2_metric m, const char *path);
void edm2_weights_close(edm2_weights *w);

/* A weight source for inception_fid_create / dinov2_create: user = the edm2_weights. */
ec_status edm2_weights_source(void *user, const char *name, float *dst, size_t n);

/* The shape the network needs for tensor `name` (rank and dims), or EC_ENOENT when the network
 * has no such tensor. */
ec_status edm2_weights_expected_shape(edm2_metric m, const char *name, int *rank, int64_t dims[4]);

#endif
