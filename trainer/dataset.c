/* Training datasets (dataset.h): which reader a path needs, and what every reader shares (labels,
 * bounds, closing). The readers are in dataset_idx.c and dataset_folder.c. */
#include "trainer/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "trainer/dataset_impl.h"

ec_status edm2_dataset_set_classes(edm2_dataset *d, int32_t **classes) {
  int32_t max = -1;
  for (int64_t i = 0; i < d->info.n; i++)
    if ((*classes)[i] > max) max = (*classes)[i];
  if (max >= EDM2_MAX_CLASSES) {
    ec_freep(classes);
    return ec_err(EC_EFORMAT, "%s: class label %d is too large (at most %d)", d->info.path, (int)max,
                  EDM2_MAX_CLASSES - 1);
  }
  d->classes = *classes;
  *classes = NULL;
  d->info.label_dim = max + 1;
  return EC_OK;
}

static int ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  if (n < k) return 0;
  for (size_t i = 0; i < k; i++) {
    char c = s[n - k + i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != suffix[i]) return 0;
  }
  return 1;
}

ec_status edm2_dataset_open(edm2_dataset **out, const char *path, const edm2_dataset_opts *opts_in) {
  *out = NULL;
  edm2_dataset_opts opts = opts_in ? *opts_in : (edm2_dataset_opts){0};
  struct stat sb;
  /* "SOURCE:test", when no file is named so: the test split of IDX data (dataset_idx.c). */
  char base[4096];
  size_t len = strlen(path);
  int test = len > 5 && !strcmp(path + len - 5, ":test") && stat(path, &sb) != 0;
  if (test) {
    if (len - 5 >= sizeof base) return ec_err(EC_EINVAL, "%.200s...: path too long", path);
    memcpy(base, path, len - 5);
    base[len - 5] = '\0';
    path = base;
  }
  const char *src = strcmp(path, "fashion-mnist") ? path : EDM2_FASHION_MNIST_DIR;
  if (stat(src, &sb) != 0) {
    int e = errno;
    if (src != path)
      return ec_err(EC_ENOENT, "fashion-mnist: %s: %s (install the Debian package dataset-fashion-mnist)",
                    src, strerror(e));
    return ec_err(e == ENOENT ? EC_ENOENT : EC_EIO, "%s: %s", src, strerror(e));
  }
  int is_dir = S_ISDIR(sb.st_mode), is_zip = 0;
  if (!is_dir) {
    if (!S_ISREG(sb.st_mode) || !ends_with_ci(src, ".zip"))
      return ec_err(EC_EINVAL, "%s: not a dataset: expected a directory (image folder or IDX files) or a .zip archive",
                    src);
    is_zip = 1;
  }
  if (test && !(is_dir && edm2_dataset_is_idx_test_dir(src)))
    return ec_err(EC_ENOENT,
                  "%s:test: %s holds no t10k-images-idx3-ubyte[.gz]: ':test' names the test split of IDX data "
                  "(Fashion-MNIST, MNIST); hold out a range of items of other data instead",
                  path, src);
  if (strlen(src) + (test ? 5 : 0) >= sizeof((edm2_dataset_info *)0)->path)
    return ec_err(EC_EINVAL, "%.200s...: path too long", src);

  edm2_dataset *d = ec_calloc(1, sizeof *d);
  if (!d) return EC_ENOMEM;
  char *real = realpath(src, NULL);
  snprintf(d->info.path, sizeof d->info.path, "%s%s",
           real && strlen(real) + (test ? 5 : 0) < sizeof d->info.path ? real : src, test ? ":test" : "");
  free(real);
  ec_status st;
  if (test) {
    snprintf(d->info.kind, sizeof d->info.kind, "idx");
    st = edm2_dataset_open_idx_test(d, src, &opts);
  } else if (is_dir && edm2_dataset_is_idx_dir(src)) {
    snprintf(d->info.kind, sizeof d->info.kind, "idx");
    st = edm2_dataset_open_idx(d, src, &opts);
  } else {
    snprintf(d->info.kind, sizeof d->info.kind, "%s", is_zip ? "zip" : "folder");
    st = edm2_dataset_open_folder(d, src, is_zip, &opts);
  }
  if (st) {
    edm2_dataset_close(&d);
    return st;
  }
  if (!opts.use_labels) {
    ec_freep(&d->classes);
    ec_freep(&d->vectors);
    d->info.label_dim = 0;
  }
  *out = d;
  return EC_OK;
}

const edm2_dataset_info *edm2_dataset_get_info(const edm2_dataset *d) { return &d->info; }

ec_status edm2_dataset_read(edm2_dataset *d, int64_t i, void *raw, float *label) {
  if (i < 0 || i >= d->info.n)
    return ec_err(EC_EINVAL, "%s: item %lld is out of range (the dataset holds %lld)", d->info.path,
                  (long long)i, (long long)d->info.n);
  ec_status st = d->read(d, i, raw);
  if (st) return st;
  if (label && d->info.label_dim > 0) {
    size_t dim = (size_t)d->info.label_dim;
    if (d->classes) {
      memset(label, 0, dim * sizeof *label);
      label[d->classes[i]] = 1.0f;
    } else {
      memcpy(label, d->vectors + (size_t)i * dim, dim * sizeof *label);
    }
  }
  return EC_OK;
}

void edm2_dataset_close(edm2_dataset **dp) {
  edm2_dataset *d = *dp;
  if (!d) return;
  if (d->free_impl) d->free_impl(d);
  ec_freep(&d->classes);
  ec_freep(&d->vectors);
  ec_freep(dp);
}
