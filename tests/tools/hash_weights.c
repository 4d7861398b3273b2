/* hash_weights fid|fd_dinov2 OUT.safetensors [f32|f16] [SPOIL]: the feature networks' test weights
 * as a weights file (tests/tools/hash_weights.h), for the command-line tests of edm2-metrics. */
#include <stdio.h>
#include <string.h>

#include "hash_weights.h"

int main(int argc, char **argv) {
  edm2_metric m;
  if (argc < 3 || argc > 5 || edm2_metric_parse(argv[1], &m)) {
    fprintf(stderr, "usage: hash_weights fid|fd_dinov2 OUT.safetensors [f32|f16] [missing:|shape:|nan:|huge:NAME]\n");
    return 2;
  }
  ec_dtype dt = argc > 3 && !strcmp(argv[3], "f16") ? EC_F16 : EC_F32;
  return hash_weights_write(m, argv[2], dt, argc > 4 ? argv[4] : NULL);
}
