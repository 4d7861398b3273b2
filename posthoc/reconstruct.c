/* The reconstruction engine; see reconstruct.h. */
#include "reconstruct.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/fs.h"
#include "core/h5direct.h"
#include "core/pool.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "posthoc/combine.h"
#include "posthoc/model.h"
#include "posthoc/snapshot.h"
#include "posthoc/tensor_rules.h"

/* Memory the budget reserves besides the slice buffers: the program, HDF5 and OpenBLAS
 * (measured peak RSS of a tiny run: ~30 MiB); per snapshot, the chunk maps of its datasets
 * (256 KiB budgeted; about 250 bytes per dataset plus 40 per chunk), or HDF5's metadata cache
 * (~0.7 MiB measured, 1 MiB budgeted) for a snapshot whose data must be read through HDF5; per
 * output being written, its metadata cache, one chunk being assembled and a conversion buffer;
 * per reading thread, the scratch for one stored chunk (added when the maps are known). */
#define FIXED_BYTES ((int64_t)48 << 20)
#define PER_SNAPSHOT_BYTES ((int64_t)256 << 10)
#define PER_HDF5_SNAPSHOT_BYTES ((int64_t)1 << 20)
#define PER_OUTPUT_BYTES ((int64_t)4 << 20)
/* The smallest slice worth streaming: below it per-read overhead dominates. */
#define MIN_SLICE 1024

void recon_args_init(recon_args *a) {
  memset(a, 0, sizeof *a);
  plan_args_init(&a->plan);
  a->out_dir = "phema";
  a->out_dtype = EC_F32;
  a->mem_limit = (int64_t)4 << 30;
  a->threads = ec_cpu_count();
}

void recon_output_name(char *buf, size_t size, int64_t nimg, const char *label, int format) {
  snprintf(buf, size, "phema-%012lld-%s.%s", (long long)nimg, label,
           format == RECON_SAFETENSORS ? "safetensors" : "h5");
}

void recon_report_free(recon_report *r) {
  for (int i = 0; r->outputs && i < r->noutputs; i++) ec_freep(&r->outputs[i].path);
  ec_freep(&r->outputs);
  r->noutputs = 0;
}

static int64_t peak_rss_bytes(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- outputs -------------------------------------------------------------------------------- */

typedef struct {
  recon_output *info;
  int target;         /* index of its global target in the plan */
  model_writer *h5;   /* RECON_H5 */
  ec_atomic st_file;  /* RECON_SAFETENSORS */
  ec_st_writer st;
  int st_open;
} out_writer;

static void writer_abort(out_writer *w) {
  model_writer_abort(&w->h5);
  if (w->st_open) {
    ec_st_writer_free(&w->st);
    ec_atomic_abort(&w->st_file);
    w->st_open = 0;
  }
}

/* JSON describing how the weights were made: the `ema` attribute / metadata. */
static char *ema_json(const plan_target *t, const tensor_rules *rules) {
  cJSON *o = cJSON_CreateObject();
  if (t->profile.kind == PHEMA_POWER) {
    cJSON_AddStringToObject(o, "kind", "power");
    cJSON_AddNumberToObject(o, "sigma_rel", t->profile.sigma_rel);
    cJSON_AddNumberToObject(o, "gamma", t->profile.gamma);
  } else {
    cJSON_AddStringToObject(o, "kind", "exponential");
    cJSON_AddNumberToObject(o, "half_life", t->profile.half_life);
  }
  cJSON_AddNumberToObject(o, "nimg", (double)t->profile.t);
  if (rules->n) {
    cJSON *a = cJSON_AddArrayToObject(o, "tensor_rules");
    for (int i = 0; i < rules->n; i++) {
      cJSON *r = cJSON_CreateObject();
      cJSON_AddStringToObject(r, "glob", rules->rules[i].glob);
      cJSON_AddNumberToObject(r, "sigma_rel", rules->rules[i].sigma_rel);
      cJSON_AddItemToArray(a, r);
    }
    cJSON_AddStringToObject(o, "rules_hash", rules->hash);
  }
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *out = text ? ec_strdup(text) : NULL;
  cJSON_free(text);
  return out;
}

/* Provenance for the safetensors metadata: sources, their times and profiles, coefficients. */
static char *posthoc_json(const plan *p, const int *cols, int ncols) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "at", (double)p->at);
  cJSON *src = cJSON_AddArrayToObject(o, "sources"), *ni = cJSON_AddArrayToObject(o, "source_nimg");
  cJSON *sg = cJSON_AddArrayToObject(o, "source_sigma_rel"), *co = cJSON_AddArrayToObject(o, "coefficients");
  for (int i = 0; i < p->ninputs; i++) {
    cJSON_AddItemToArray(src, cJSON_CreateString(p->dir.entries[p->inputs[i].snap].name));
    cJSON_AddItemToArray(ni, cJSON_CreateNumber((double)p->inputs[i].nimg));
    cJSON_AddItemToArray(sg, cJSON_CreateNumber(p->inputs[i].sigma_rel));
  }
  for (int c = 0; c < ncols; c++) {
    cJSON *row = cJSON_CreateArray();
    for (int i = 0; i < p->ninputs; i++)
      cJSON_AddItemToArray(row, cJSON_CreateNumber(p->x[(size_t)i * (size_t)p->ntargets + (size_t)cols[c]]));
    cJSON_AddItemToArray(co, row);
  }
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *out = text ? ec_strdup(text) : NULL;
  cJSON_free(text);
  return out;
}

/* Writes /posthoc into an HDF5 output: where the weights came from. cols[0] is the global target,
 * cols[1..] the rule targets. */
static ec_status write_provenance(model_writer *w, const plan *p, const int *cols, int ncols,
                                  const phema_diag *d) {
  hid_t f = model_writer_file(w), g = H5I_INVALID_HID;
  int n = p->ninputs;
  const char **names = ec_calloc((size_t)n, sizeof *names);
  int64_t *nimg = ec_calloc((size_t)n, sizeof *nimg);
  double *sig = ec_calloc((size_t)n, sizeof *sig), *co = ec_calloc((size_t)n * (size_t)ncols, sizeof *co);
  ec_status s = (names && nimg && sig && co) ? EC_OK : EC_ENOMEM;
  for (int i = 0; !s && i < n; i++) {
    names[i] = p->dir.entries[p->inputs[i].snap].name;
    nimg[i] = p->inputs[i].nimg;
    sig[i] = p->inputs[i].sigma_rel;
    for (int c = 0; c < ncols; c++) co[(size_t)c * (size_t)n + (size_t)i] = p->x[(size_t)i * (size_t)p->ntargets + (size_t)cols[c]];
  }
  ec_shape s1 = ec_shape_make(1, (int64_t[]){n}), s2 = ec_shape_make(2, (int64_t[]){ncols, n});
  if (!s) s = h5io_group_create(f, "posthoc", &g);
  if (!s) s = h5io_write_strings(g, "sources", n, names);
  if (!s) s = h5io_write_tensor(g, "source_nimg", &s1, EC_I64, EC_I64, nimg, 0);
  if (!s) s = h5io_write_tensor(g, "source_sigma_rel", &s1, EC_F64, EC_F64, sig, 0);
  if (!s) s = h5io_write_tensor(g, "coefficients", &s2, EC_F64, EC_F64, co, 0);
  if (!s) s = h5io_attr_write_i64(g, "at", p->at);
  if (!s) s = h5io_attr_write_str(g, "method", phema_method_name(d->method));
  if (!s) s = h5io_attr_write_f64(g, "rel_error", d->rel_error);
  if (!s) s = h5io_attr_write_f64(g, "cond", d->cond);
  if (!s) s = h5io_attr_write_f64(g, "l1", d->norm1);
  if (!s) s = h5io_attr_write_f64(g, "l2", d->norm2);
  if (!s) s = h5io_attr_write_f64(g, "tikhonov", d->tikhonov);
  h5io_close(&g);
  ec_freep(&names);
  ec_freep(&nimg);
  ec_freep(&sig);
  ec_freep(&co);
  return s;
}

/* ---- the engine ----------------------------------------------------------------------------- */

/* One snapshot file among the inputs. Its datasets are mapped once (core/h5direct.h) and then
 * read with pread from any thread; the HDF5 handle stays open only when some dataset cannot be
 * mapped and must be read through HDF5 (serialised by HDF5's own lock). */
typedef struct {
  char *path;
  int fd;         /* -1 when `ulimit -n` leaves no room for it: opened for each read instead */
  snap_file file; /* open while setting up; kept open only if `hdf5` */
  int hdf5;
  int bytes_per_elem;
} source;

/* The descriptor to read source `sc` through: its own, or one opened for this read (*opened),
 * which the caller closes. */
static ec_status source_fd(const source *sc, int *fd, int *opened) {
  *opened = 0;
  if ((*fd = sc->fd) >= 0) return EC_OK;
  if ((*fd = open(sc->path, O_RDONLY | O_CLOEXEC)) < 0)
    return ec_err(EC_EIO, "cannot open %s: %s", sc->path, strerror(errno));
  *opened = 1;
  return EC_OK;
}

/* What every read of a slice needs, shared by the workers of the pool. */
typedef struct {
  const plan *p;
  source *src;
  const int *src_of;     /* input -> source */
  int *prof_of;          /* input -> profile index in its source (for the HDF5 path) */
  int **tmap_of;         /* source -> (reference tensor -> index in that file) */
  const h5direct_map **maps; /* input i, tensor j: maps[i * T + j] (owned by the plan) */
  int T;
  void **scratch;        /* per worker */
  size_t scratch_size;
  /* the slice being read */
  int j;
  int64_t off, len;
  void *buf;             /* N x len elements: float, or float16 bits when raw16 */
  int raw16;             /* every input is a mappable float16 dataset: read without converting */
  /* the first failure */
  atomic_int failed;
  ec_status status;
  char msg[1024];
  pthread_mutex_t mu;
} read_job;

static void read_input(void *ctx, int64_t i, int worker) {
  read_job *r = ctx;
  if (atomic_load(&r->failed)) return;
  const h5direct_map *m = r->maps[(size_t)i * (size_t)r->T + (size_t)r->j];
  source *sc = &r->src[r->src_of[i]];
  int fd = -1, opened = 0;
  ec_status st = m->mappable ? source_fd(sc, &fd, &opened) : EC_OK;
  if (st) {
    /* reported below */
  } else if (r->raw16) {
    uint16_t *dst = (uint16_t *)r->buf + (size_t)i * (size_t)r->len;
    st = h5direct_read_raw(m, fd, r->off, r->len, dst, r->scratch[worker], r->scratch_size);
  } else {
    float *dst = (float *)r->buf + (size_t)i * (size_t)r->len;
    st = m->mappable ? h5direct_read(m, fd, r->off, r->len, dst, r->scratch[worker], r->scratch_size)
                     : snap_read(&sc->file, r->prof_of[i], r->tmap_of[r->src_of[i]][r->j], r->off, r->len, dst);
  }
  if (opened) close(fd);
  if (st) {
    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->failed)) {
      r->status = st;
      snprintf(r->msg, sizeof r->msg, "%s", ec_errmsg());
      atomic_store(&r->failed, 1);
    }
    pthread_mutex_unlock(&r->mu);
  }
}

/* Combining one slice, split by columns across the pool. */
typedef struct {
  const float *w;   /* [K][N], or NULL when dw is used */
  const double *dw; /* float64 accumulation */
  int K, N;
  const void *in;   /* [N][len], float or (raw16) float16 bits */
  int raw16;
  int64_t len;
  float *out;       /* [K][len] */
  int blocks;
} combine_job;

static void combine_block(void *ctx, int64_t blk, int worker) {
  combine_job *c = ctx;
  int64_t per = (c->len + c->blocks - 1) / c->blocks;
  per = (per + COMBINE_COL_QUANTUM - 1) / COMBINE_COL_QUANTUM * COMBINE_COL_QUANTUM; /* whole tiles */
  int64_t e0 = blk * per, e1 = e0 + per < c->len ? e0 + per : c->len;
  if (e0 >= e1) return;
  if (c->raw16 && c->dw)
    combine_f64_h(c->dw, c->K, c->N, c->in, c->len, c->out, e0, e1);
  else if (c->raw16)
    combine_f32_h(c->w, c->K, c->N, c->in, c->len, c->out, e0, e1);
  else if (c->dw)
    combine_f64(c->dw, c->K, c->N, c->in, c->len, c->out, e0, e1);
  else
    combine_f32(c->w, c->K, c->N, c->in, c->len, c->out, e0, e1);
}

/* Raises the open-file limit to its hard maximum and returns how many more descriptors this
 * process may open (INT_MAX when unknown). */
static int raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return INT_MAX;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  int open_now = ec_open_fd_count();
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX / 2 || open_now < 0) return INT_MAX;
  return (int)rl.rlim_cur - open_now;
}

/* Descriptors kept aside for what a run opens besides snapshots and outputs: the reference
 * snapshot through HDF5, the output directory, stdio, HDF5's own. */
#define FD_RESERVE 16

/* Attaches source `sc` to the snapshot the plan's directory check already opened and mapped
 * (`sf`: tables, dataset maps, buffer hashes): which file tensor and profile each input uses,
 * where its bytes lie, whether its buffers agree with the reference, and a file descriptor.
 * HDF5 reopens the file only when some dataset cannot be mapped. */
static ec_status attach_source(source *sc, const snap_file *sf, const plan *p, int first_input, int ninputs,
                               const snap_file *refsum, int **tmap, int *prof_of, const h5direct_map **maps,
                               int T, int *fd_room, FILE *err) {
  ec_status s = EC_OK;
  sc->bytes_per_elem = (sf->dtypes_seen & (1 << EC_F32)) ? 4 : 2;
  if (!(*tmap = ec_calloc((size_t)T, sizeof **tmap))) return EC_ENOMEM;
  for (int j = 0; j < T && !s; j++) {
    (*tmap)[j] = snap_find_tensor(sf, refsum->tensors[j].name);
    if ((*tmap)[j] < 0) /* the directory check makes this impossible */
      s = ec_err(EC_EFORMAT, "%s: tensor %s missing", sc->path, refsum->tensors[j].name);
  }
  for (int i = first_input; i < first_input + ninputs && !s; i++) {
    prof_of[i] = snap_find_profile(sf, p->inputs[i].sigma_rel);
    for (int j = 0; j < T; j++) {
      const h5direct_map *m = &sf->maps[(size_t)prof_of[i] * (size_t)sf->ntensors + (size_t)(*tmap)[j]];
      maps[(size_t)i * (size_t)T + (size_t)j] = m;
      if (!m->mappable) sc->hdf5 = 1;
    }
  }
  /* Buffers are copied, not averaged: they must agree across snapshots. */
  for (int b = 0; b < refsum->nbuffers && !s && sf != refsum; b++) {
    int ob = snap_find_buffer(sf, refsum->buffers[b].name);
    if (ob >= 0 && sf->buffer_hash[ob] != refsum->buffer_hash[b])
      fprintf(err, "posthoc-ema: warning: buffer %s differs between %s and %s; using the latter\n",
              refsum->buffers[b].name, sc->path, refsum->path);
  }
  /* A descriptor of its own while *fd_room allows (a source read through HDF5 must keep HDF5's
   * and its own); opened now in any case, so that an unreadable file stops the run before it
   * starts. */
  if (!s && (sc->fd = open(sc->path, O_RDONLY | O_CLOEXEC)) < 0)
    s = ec_err(EC_EIO, "cannot open %s: %s", sc->path, strerror(errno));
  if (!s && sc->hdf5 && (*fd_room -= 2) < 0)
    s = ec_err(EC_EINVAL, "too few open files allowed (`ulimit -n`) for %s, read through HDF5; raise `ulimit -n`",
               sc->path);
  else if (!s && !sc->hdf5 && *fd_room > 0)
    --*fd_room;
  else if (!s && !sc->hdf5) {
    close(sc->fd);
    sc->fd = -1;
  }
  if (!s && sc->hdf5) s = snap_open(&sc->file, sc->path);
  return s;
}

/* The coefficient matrix of tensor j: outputs x inputs (float32, and float64 when asked). */
static void tensor_weights(const plan *p, const int *colmap, const int *rule_col, const out_writer *ow,
                           int nactive, int N, int j, float *w, double *dw) {
  for (int q = 0; q < nactive; q++) {
    int col = colmap[j] >= 0 ? rule_col[colmap[j]] : ow[q].target;
    for (int i = 0; i < N; i++) {
      double x = p->x[(size_t)i * (size_t)p->ntargets + (size_t)col];
      w[(size_t)q * (size_t)N + (size_t)i] = (float)x;
      if (dw) dw[(size_t)q * (size_t)N + (size_t)i] = x;
    }
  }
}

/* Hands slice [off, off+len) of tensor t to every output (out: nactive rows of len floats). */
static ec_status write_slice(out_writer *ow, int nactive, const snap_tensor *t, int64_t off,
                             int64_t len, const float *out) {
  ec_status s = EC_OK;
  if (off == 0)
    for (int q = 0; q < nactive && !s; q++)
      if (ow[q].h5) s = model_writer_begin_param(ow[q].h5, t->name, &t->shape, EC_F32);
  for (int q = 0; q < nactive && !s; q++) {
    const float *o = out + (size_t)q * (size_t)len;
    s = ow[q].h5 ? model_writer_write(ow[q].h5, EC_F32, o, off, len) : ec_st_writer_write(&ow[q].st, EC_F32, o, len);
  }
  if (!s && off + len == t->numel)
    for (int q = 0; q < nactive && !s; q++)
      if (ow[q].h5) s = model_writer_end_param(ow[q].h5);
  /* the disk writes this slice while the next ones are computed, so that the commit's fsync
   * finds little left (it took 0.6 s of 3 for K = 32 at 8M parameters, N = 256) */
  for (int q = 0; q < nactive && !s; q++)
    if (ow[q].h5)
      model_writer_start_writeback(ow[q].h5);
    else
      ec_start_writeback(ow[q].st.fd);
  return s;
}

/* Writing one slice's outputs on a thread of its own, while the pool combines the next slice and
 * reads the one after: with many targets, writing K float32 models costs as much as combining
 * (fletcher32 and the copy into the page cache), and done in turn it left a core idle. */
typedef struct {
  out_writer *ow;
  int nactive;
  const snap_tensor *t;
  int64_t off, len;
  const float *out;
  ec_status status;
  char msg[1024];
} write_job;

static void write_job_run(void *ctx, int64_t unused, int worker) {
  (void)unused, (void)worker;
  write_job *w = ctx;
  w->status = write_slice(w->ow, w->nactive, w->t, w->off, w->len, w->out);
  if (w->status) snprintf(w->msg, sizeof w->msg, "%s", ec_errmsg());
}

/* ---- the streaming pass (a few targets from float16 snapshots) ------------------------------
 * With K <= STREAM_MAX_K the work per input byte is small, so the best order is the reader's:
 * the pool's workers read (pread, checksum, no conversion) the inputs of every slice, in order,
 * into a ring of chunk-sized buffers, and this thread adds each one to the outputs the moment it
 * is ready, while it is still in cache, converting float16 as it goes. No N-sized buffers, no
 * second pass over memory. Inputs are added in input order, so the bits equal the tiled kernel's
 * (combine.h). Items are claimed in order and each waits only for the slot of the item R before
 * it, which this thread frees in order: no deadlock. */
enum { STREAM_MAX_K = 4 };

typedef struct {
  const h5direct_map *const *maps;
  const source *src;
  const int *src_of;
  int T, N;
  const int *sj;          /* slice -> tensor */
  const int64_t *soff, *slen;
  int R;
  uint16_t **ring;        /* R buffers */
  int64_t *ready;         /* slot -> item it holds (-1: none) */
  void **scratch;
  size_t scratch_size;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t consumed;       /* items added to the outputs so far */
  int stop;
  ec_status status;
  char msg[1024];
} stream_job;

static void stream_read(void *ctx, int64_t q, int worker) {
  stream_job *J = ctx;
  int slot = (int)(q % J->R);
  pthread_mutex_lock(&J->mu);
  while (!J->stop && q >= J->consumed + J->R) pthread_cond_wait(&J->cv, &J->mu);
  int stop = J->stop;
  pthread_mutex_unlock(&J->mu);
  if (stop) return;
  int64_t sl = q / J->N;
  int i = (int)(q % J->N);
  const h5direct_map *m = J->maps[(size_t)i * (size_t)J->T + (size_t)J->sj[sl]];
  int fd, opened;
  ec_status st = source_fd(&J->src[J->src_of[i]], &fd, &opened);
  if (!st) st = h5direct_read_raw(m, fd, J->soff[sl], J->slen[sl], J->ring[slot], J->scratch[worker], J->scratch_size);
  if (opened) close(fd);
  pthread_mutex_lock(&J->mu);
  if (st && !J->stop) {
    J->stop = 1;
    J->status = st;
    snprintf(J->msg, sizeof J->msg, "%s", ec_errmsg());
  }
  J->ready[slot] = q;
  pthread_cond_broadcast(&J->cv);
  pthread_mutex_unlock(&J->mu);
}

/* Runs the streaming pass over every slice; see above. */
static ec_status stream_pass(const plan *p, const h5direct_map **maps, const source *src, const int *src_of,
                             int T, int N, const snap_file *ref, int64_t P, int R, void **scratch,
                             size_t scratch_size, ec_pool *pool, out_writer *ow, int nactive,
                             const int *colmap, const int *rule_col, float *wmat, double *dwmat, float *out,
                             int64_t bytes_per_elem_all, ec_progress *bar) {
  /* The slices, as in the tiled pass: whole stored chunks of input 0. */
  int *sj = NULL;
  int64_t *soff = NULL, *slen = NULL, nslices = 0;
  stream_job J;
  memset(&J, 0, sizeof J);
  double *dacc = NULL;
  ec_status s = EC_OK;
  /* count first, then fill */
  for (int pass = 0; pass < 2 && !s; pass++) {
    nslices = 0;
    for (int j = 0; j < T; j++)
      for (int64_t off = 0; off < ref->tensors[j].numel;) {
        int64_t left = ref->tensors[j].numel - off, len = left < P ? left : P;
        if (maps[j]->mappable) len = h5direct_aligned_count(maps[j], off, len);
        if (pass) {
          sj[nslices] = j;
          soff[nslices] = off;
          slen[nslices] = len;
        }
        nslices++;
        off += len;
      }
    if (!pass && (!(sj = ec_calloc((size_t)nslices + 1, sizeof *sj)) ||
                  !(soff = ec_calloc((size_t)nslices + 1, sizeof *soff)) ||
                  !(slen = ec_calloc((size_t)nslices + 1, sizeof *slen))))
      s = EC_ENOMEM;
  }
  J.ring = ec_calloc((size_t)R, sizeof *J.ring);
  J.ready = ec_calloc((size_t)R, sizeof *J.ready);
  if (dwmat) dacc = ec_aligned_alloc((size_t)nactive * (size_t)P * sizeof *dacc);
  if (!J.ring || !J.ready || (dwmat && !dacc)) s = EC_ENOMEM;
  for (int r = 0; !s && r < R; r++) {
    J.ready[r] = -1;
    if (!(J.ring[r] = ec_aligned_alloc((size_t)P * sizeof(uint16_t)))) s = EC_ENOMEM;
  }
  if (s) goto done;
  J.maps = maps;
  J.src = src;
  J.src_of = src_of;
  J.T = T;
  J.N = N;
  J.sj = sj;
  J.soff = soff;
  J.slen = slen;
  J.R = R;
  J.scratch = scratch;
  J.scratch_size = scratch_size;
  pthread_mutex_init(&J.mu, NULL);
  pthread_cond_init(&J.cv, NULL);
  ec_pool_start(pool, nslices * N, stream_read, &J);
  for (int64_t sl = 0; sl < nslices && !s; sl++) {
    int j = sj[sl];
    int64_t len = slen[sl];
    if (soff[sl] == 0) tensor_weights(p, colmap, rule_col, ow, nactive, N, j, wmat, dwmat);
    if (dacc)
      memset(dacc, 0, (size_t)nactive * (size_t)len * sizeof *dacc);
    else
      memset(out, 0, (size_t)nactive * (size_t)len * sizeof *out);
    for (int i = 0; i < N && !s;) {
      /* wait for the next input, then take every following one that is already read (up to
       * COMBINE_AXPY_MAX): one pass over the outputs for all of them */
      int64_t q = sl * N + i;
      int n = 1;
      pthread_mutex_lock(&J.mu);
      while (!J.stop && J.ready[q % R] != q) pthread_cond_wait(&J.cv, &J.mu);
      if (J.stop) s = J.status ? ec_err(J.status, "%s", J.msg) : EC_EINTR;
      while (!s && n < COMBINE_AXPY_MAX && i + n < N && J.ready[(q + n) % R] == q + n) n++;
      pthread_mutex_unlock(&J.mu);
      if (s) break;
      const uint16_t *rows[COMBINE_AXPY_MAX];
      for (int r = 0; r < n; r++) rows[r] = J.ring[(q + r) % R];
      for (int k = 0; k < nactive; k++) {
        if (dacc)
          combine_axpyn_h64(dacc + (size_t)k * (size_t)len, dwmat + (size_t)k * (size_t)N + (size_t)i, rows, n, len);
        else
          combine_axpyn_h(out + (size_t)k * (size_t)len, wmat + (size_t)k * (size_t)N + (size_t)i, rows, n, len);
      }
      pthread_mutex_lock(&J.mu);
      J.consumed = q + n;
      pthread_cond_broadcast(&J.cv);
      pthread_mutex_unlock(&J.mu);
      i += n;
    }
    if (s) break;
    if (dacc)
      for (size_t e = 0; e < (size_t)nactive * (size_t)len; e++) out[e] = (float)dacc[e];
    s = write_slice(ow, nactive, &ref->tensors[j], soff[sl], len, out);
    ec_progress_add(bar, len * bytes_per_elem_all);
  }
  /* Stop the readers still waiting for a slot (after a failure), then let the loop finish. */
  pthread_mutex_lock(&J.mu);
  if (s) J.stop = 1;
  pthread_cond_broadcast(&J.cv);
  pthread_mutex_unlock(&J.mu);
  ec_pool_wait(pool);
  pthread_mutex_destroy(&J.mu);
  pthread_cond_destroy(&J.cv);
done:
  for (int r = 0; J.ring && r < R; r++) ec_freep(&J.ring[r]);
  ec_freep(&J.ring);
  ec_freep(&J.ready);
  ec_freep(&dacc);
  ec_freep(&sj);
  ec_freep(&soff);
  ec_freep(&slen);
  return s;
}

ec_status reconstruct(const recon_args *a, plan *p, recon_report *rep, FILE *err) {
  double t0 = now();
  memset(rep, 0, sizeof *rep);
  memset(p, 0, sizeof *p);
  tensor_rules rules;
  ec_status s = tensor_rules_parse(&rules, a->nrules, a->rules);
  if (s) return s;

  /* Distinct rule sigmas become extra targets of the same solve. */
  double *extra = ec_calloc((size_t)rules.n + 1, sizeof *extra);
  int *rule_col = ec_calloc((size_t)rules.n + 1, sizeof *rule_col), nextra = 0;
  if (!extra || !rule_col) s = EC_ENOMEM;
  for (int r = 0; !s && r < rules.n; r++) {
    int k = 0;
    while (k < nextra && extra[k] != rules.rules[r].sigma_rel) k++;
    if (k == nextra) extra[nextra++] = rules.rules[r].sigma_rel;
    rule_col[r] = k;
  }
  plan_args pa = a->plan;
  pa.extra_sigma = extra;
  pa.nextra = nextra;
  pa.map_datasets = 1; /* the directory check maps every dataset once; the reads use the maps */
  if (!s) s = plan_build(p, &pa);
  for (int r = 0; !s && r < rules.n; r++) rule_col[r] += p->nmain;

  source *src = NULL;
  snap_file reff, *ref = NULL;
  memset(&reff, 0, sizeof reff);
  reff.file = H5I_INVALID_HID;
  int nsrc = 0, *src_of = NULL, *prof_of = NULL, **tmap_of = NULL;
  const h5direct_map **maps = NULL;
  out_writer *ow = NULL;
  void *inb[2] = {NULL, NULL};
  float *out = NULL, *out2 = NULL, *wmat = NULL, **refbuf = NULL;
  double *dwmat = NULL;
  int *colmap = NULL, *active = NULL;
  char *ema = NULL;
  ec_pool *pool = NULL, *wpool = NULL; /* wpool: the slice writer's one thread */
  write_job wj;
  memset(&wj, 0, sizeof wj);
  int writing = 0;
  void **scratch = NULL;
  int nscratch = 0;
  ec_progress bar = {0};
  read_job rj;
  memset(&rj, 0, sizeof rj);
  pthread_mutex_init(&rj.mu, NULL);
  int K = 0, nactive = 0, N = 0, T = 0, reading = 0, nthreads = a->threads > 0 ? a->threads : 1;
  if (s) goto done;

  /* The outputs: refuse existing ones unless --force or --skip-existing, before any work. */
  K = p->nmain;
  rep->outputs = ec_calloc((size_t)K, sizeof *rep->outputs);
  if (!rep->outputs) {
    s = EC_ENOMEM;
    goto done;
  }
  rep->noutputs = K;
  for (int k = 0; !s && k < K; k++) {
    recon_output *o = &rep->outputs[k];
    char name[256];
    if (rules.n)
      snprintf(o->label, sizeof o->label, "%s-t%s", p->targets[k].label, rules.hash);
    else
      snprintf(o->label, sizeof o->label, "%s", p->targets[k].label);
    recon_output_name(name, sizeof name, p->at, o->label, a->format);
    if (!(o->path = ec_asprintf("%s/%s", a->out_dir, name))) s = EC_ENOMEM;
    o->rel_error = p->diag[k].rel_error;
    o->norm2 = p->diag[k].norm2;
    o->method = phema_method_name(p->diag[k].method);
    if (!s && access(o->path, F_OK) == 0) {
      if (a->skip_existing)
        o->skipped = 1;
      else if (!a->force)
        s = ec_err(EC_EEXIST, "%s exists; use --force to overwrite it or --skip-existing to keep it",
                   o->path);
    }
  }
  if (s) goto done;
  if (!(active = ec_calloc((size_t)K + 1, sizeof *active))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int k = 0; k < K; k++)
    if (!rep->outputs[k].skipped) active[nactive++] = k;
  rep->ninputs = p->ninputs;
  if (nactive == 0) goto done; /* everything exists and --skip-existing: nothing to do */

  /* Sources: one per distinct snapshot among the inputs. The latest is the reference: its
   * tensor table, buffers and configuration go into the outputs, and it is opened first so that
   * the others' buffers can be compared with it. */
  N = p->ninputs;
  src = ec_calloc((size_t)N, sizeof *src);
  src_of = ec_calloc((size_t)N, sizeof *src_of);
  prof_of = ec_calloc((size_t)N, sizeof *prof_of);
  tmap_of = ec_calloc((size_t)N, sizeof *tmap_of);
  if (!src || !src_of || !prof_of || !tmap_of) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int i = 0; i < N; i++) {
    if (i > 0 && p->inputs[i].snap == p->inputs[i - 1].snap) {
      src_of[i] = src_of[i - 1];
      continue;
    }
    src_of[i] = nsrc;
    src[nsrc].fd = -1;
    src[nsrc].file.file = H5I_INVALID_HID;
    if (!(src[nsrc].path = ec_strdup(p->dir.entries[p->inputs[i].snap].path))) {
      s = EC_ENOMEM;
      goto done;
    }
    nsrc++;
  }
  int fd_room = raise_nofile();
  /* The reference's tables, buffers and configuration, open for the whole run (one file). */
  if ((s = snap_open(&reff, src[nsrc - 1].path))) goto done;
  ref = &reff;
  T = ref->ntensors;
  rep->nsnapshots = nsrc;
  rep->ntensors = T;
  rep->params = snap_param_count(ref);
  if (!(maps = ec_calloc((size_t)N * (size_t)T, sizeof *maps)) ||
      !(refbuf = ec_calloc((size_t)ref->nbuffers + 1, sizeof *refbuf))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int b = 0; b < ref->nbuffers && !s; b++) {
    if (!(refbuf[b] = ec_mallocarray((size_t)ref->buffers[b].numel, sizeof **refbuf)))
      s = EC_ENOMEM;
    else
      s = snap_read_buffer(ref, b, refbuf[b]);
  }
  /* Attach every source to the snapshot the plan's check opened and mapped. Open files are
   * budgeted from `ulimit -n`: the outputs, one per reading thread (sources without a descriptor
   * of their own open one per read) and a reserve come first; sources keep a descriptor while
   * there is room, later ones are opened for each read (about 2 us per stored chunk). */
  const snap_file *refsum = p->summaries[p->inputs[N - 1].snap].file;
  int keep_fds = fd_room == INT_MAX ? INT_MAX : fd_room - nactive - nthreads - FD_RESERVE;
  if (keep_fds < 0) {
    s = ec_err(EC_EINVAL,
               "too few open files allowed (`ulimit -n` leaves %d): %d outputs, %d reading threads and "
               "%d in reserve need %d; raise `ulimit -n` or write fewer targets per run",
               fd_room, nactive, nthreads, FD_RESERVE, nactive + nthreads + FD_RESERVE);
    goto done;
  }
  for (int f = 0; f < nsrc && !s; f++) {
    int first = 0, cnt = 0;
    for (int i = 0; i < N; i++)
      if (src_of[i] == f) {
        if (!cnt) first = i;
        cnt++;
      }
    s = attach_source(&src[f], p->summaries[p->inputs[first].snap].file, p, first, cnt, refsum, &tmap_of[f],
                      prof_of, maps, T, &keep_fds, err);
  }
  if (s) goto done;
  rep->fd_per_read = 0;
  for (int f = 0; f < nsrc; f++) rep->fd_per_read += src[f].fd < 0;
  if (rep->fd_per_read && !a->quiet)
    fprintf(err,
            "posthoc-ema: note: `ulimit -n` leaves room for %d open files: %d of %d snapshot files are "
            "opened for each read\n",
            fd_room, rep->fd_per_read, nsrc);

  /* Per-tensor rules: which coefficient column each (tensor, output) uses. */
  if (!(colmap = ec_calloc((size_t)T, sizeof *colmap))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int j = 0; j < T; j++) {
    int r = tensor_rules_match(&rules, ref->tensors[j].name);
    colmap[j] = r;
    if (r >= 0) rules.rules[r].matches++;
  }
  for (int r = 0; r < rules.n; r++)
    if (!rules.rules[r].matches)
      fprintf(err, "posthoc-ema: warning: --tensor-sigma '%s=%g' matches no tensor; it has no effect\n",
              rules.rules[r].glob, rules.rules[r].sigma_rel);

  /* Slice size from the memory budget: two input buffers (one being read while the other is
   * combined), two output buffers (one being written while the other is combined into), and
   * per-thread chunk scratch. */
  size_t scratch_size = 64 << 10;
  int nhdf5 = 0;
  for (size_t m = 0; m < (size_t)N * (size_t)T; m++)
    if (maps[m]->mappable && maps[m]->scratch_size > scratch_size) scratch_size = maps[m]->scratch_size;
  for (int f = 0; f < nsrc; f++) nhdf5 += src[f].hdf5;
  int64_t max_numel = 1;
  for (int j = 0; j < T; j++)
    if (ref->tensors[j].numel > max_numel) max_numel = ref->tensors[j].numel;
  int64_t fixed = FIXED_BYTES + (int64_t)nsrc * PER_SNAPSHOT_BYTES + (int64_t)nhdf5 * PER_HDF5_SNAPSHOT_BYTES +
                  (int64_t)nactive * PER_OUTPUT_BYTES + (int64_t)nthreads * (int64_t)scratch_size;
  /* float16 inputs that all map stay float16 until the kernel converts them */
  int raw16 = 1;
  for (size_t m = 0; m < (size_t)N * (size_t)T; m++) raw16 &= maps[m]->mappable && maps[m]->dtype == EC_F16;
  int64_t in_size = raw16 ? 2 : 4;
  /* the ring holds what the consumer adds at once plus as much again being read ahead */
  int streaming = raw16 && nactive <= STREAM_MAX_K, R = 2 * COMBINE_AXPY_MAX + 2 * nthreads;
  int64_t per_elem = streaming ? 2 * (int64_t)R + (a->accumulate_f64 ? 8 : 4) * (int64_t)nactive + 4
                               : 2 * in_size * (int64_t)N + 2 * 4 * (int64_t)nactive;
  int64_t min_slice = max_numel < MIN_SLICE ? max_numel : MIN_SLICE;
  rep->budget_min = fixed + per_elem * min_slice;
  if (a->mem_limit < rep->budget_min) {
    char lim[32], mn[32];
    s = ec_err(EC_EINVAL,
               "--mem-limit %s is below what this run needs: at least %s (%d snapshot files, %d "
               "inputs, %d outputs, slices of %lld elements)",
               ec_format_bytes(lim, sizeof lim, (double)a->mem_limit),
               ec_format_bytes(mn, sizeof mn, (double)rep->budget_min), nsrc, N, nactive,
               (long long)min_slice);
    goto done;
  }
  int64_t P = (a->mem_limit - fixed) / per_elem;
  if (P > max_numel) P = max_numel;
  /* Slices larger than a stored chunk only cost memory (and page faults): cap them there. */
  int64_t chunk_cap = 1 << 16;
  for (size_t m = 0; m < (size_t)N * (size_t)T; m++)
    for (int64_t e = 0; maps[m]->mappable && e < maps[m]->nextents; e++)
      if (maps[m]->extents[e].count > chunk_cap) chunk_cap = maps[m]->extents[e].count;
  if (P > chunk_cap) P = chunk_cap;
  rep->slice_elems = P;

  if (!streaming) {
    inb[0] = ec_aligned_alloc((size_t)N * (size_t)P * (size_t)in_size);
    inb[1] = ec_aligned_alloc((size_t)N * (size_t)P * (size_t)in_size);
    if (!inb[0] || !inb[1]) s = EC_ENOMEM;
  }
  out = ec_aligned_alloc((size_t)nactive * (size_t)P * sizeof *out);
  if (!streaming && !(out2 = ec_aligned_alloc((size_t)nactive * (size_t)P * sizeof *out2))) s = EC_ENOMEM;
  wmat = ec_calloc((size_t)nactive * (size_t)N, sizeof *wmat);
  if (a->accumulate_f64 && !(dwmat = ec_calloc((size_t)nactive * (size_t)N, sizeof *dwmat))) s = EC_ENOMEM;
  if (!out || !wmat || s) {
    s = EC_ENOMEM;
    goto done;
  }
  if ((s = ec_pool_create(&pool, nthreads))) goto done;
  if (!streaming && (s = ec_pool_create(&wpool, 1))) goto done;
  nscratch = ec_pool_threads(pool); /* may be fewer than asked if threads could not start */
  if (!(scratch = ec_calloc((size_t)nscratch, sizeof *scratch))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int w = 0; w < nscratch && !s; w++)
    if (!(scratch[w] = ec_aligned_alloc(scratch_size))) s = EC_ENOMEM;
  if (s) goto done;

  /* Open the writers. */
  if ((s = ec_mkdirs(a->out_dir))) goto done;
  if (!(ow = ec_calloc((size_t)nactive, sizeof *ow))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int q = 0; q < nactive && !s; q++) {
    out_writer *w = &ow[q];
    w->target = active[q];
    w->info = &rep->outputs[active[q]];
    ec_freep(&ema);
    if (!(ema = ema_json(&p->targets[w->target], &rules))) {
      s = EC_ENOMEM;
      break;
    }
    int flags = a->force ? 0 : EC_ATOMIC_NOCLOBBER;
    if (a->format == RECON_H5) {
      model_meta mm = {p->at, ref->preset, ref->config, ema, a->out_dtype};
      s = model_writer_open(&w->h5, w->info->path, &mm, flags);
    } else {
      s = ec_atomic_begin(&w->st_file, w->info->path, flags);
      if (s) break;
      w->st_open = 1;
      for (int j = 0; j < T && !s; j++)
        s = ec_st_writer_add(&w->st, ref->tensors[j].name, a->out_dtype, ref->tensors[j].shape);
      for (int b = 0; b < ref->nbuffers && !s; b++)
        s = ec_st_writer_add(&w->st, ref->buffers[b].name, EC_F32, ref->buffers[b].shape);
      int cols[64], ncols = 1;
      cols[0] = w->target;
      for (int e = 0; e < nextra && ncols < 64; e++) cols[ncols++] = p->nmain + e;
      char nimg[32], *ph = posthoc_json(p, cols, ncols);
      snprintf(nimg, sizeof nimg, "%lld", (long long)p->at);
      if (!ph) s = EC_ENOMEM;
      if (!s) s = ec_st_writer_meta(&w->st, "format", MODEL_FORMAT);
      if (!s) s = ec_st_writer_meta(&w->st, "format_version", "1");
      if (!s) s = ec_st_writer_meta(&w->st, "nimg", nimg);
      if (!s) s = ec_st_writer_meta(&w->st, "preset", ref->preset);
      if (!s) s = ec_st_writer_meta(&w->st, "config", ref->config);
      if (!s) s = ec_st_writer_meta(&w->st, "ema", ema);
      if (!s) s = ec_st_writer_meta(&w->st, "posthoc", ph);
      ec_freep(&ph);
      if (!s) s = ec_st_writer_begin(&w->st, w->st_file.tmp_path);
    }
  }
  if (s) goto done;

  /* The tiled pass, in slices in tensor order: the pool combines slice s (split by columns) while
   * the writer thread writes slice s - 1, then reads slice s + 1 (pread, checksum, float16 kept
   * as is or converted) while the writer goes on. */
  int64_t bytes_per_elem_all = 0;
  for (int i = 0; i < N; i++) bytes_per_elem_all += src[src_of[i]].bytes_per_elem;
  int64_t total_bytes = rep->params * bytes_per_elem_all;
  rj.p = p;
  rj.src = src;
  rj.src_of = src_of;
  rj.prof_of = prof_of;
  rj.tmap_of = tmap_of;
  rj.maps = maps;
  rj.T = T;
  rj.scratch = scratch;
  rj.scratch_size = scratch_size;
  rj.raw16 = raw16;
  combine_job cjob = {wmat, dwmat, nactive, N, NULL, raw16, 0, out, 0};
  rep->setup_seconds = now() - t0;
  ec_progress_begin(&bar, "reconstructing", total_bytes, 1, a->quiet);
  if (streaming) {
    s = stream_pass(p, maps, src, src_of, T, N, ref, P, R, scratch, scratch_size, pool, ow, nactive, colmap,
                    rule_col, wmat, dwmat, out, bytes_per_elem_all, &bar);
    ec_progress_end(&bar);
    rep->bytes_read = total_bytes;
    if (s) goto done;
    goto buffers;
  }
  int cj = 0, b = 0;
  int64_t coff = 0, clen = 0;
  /* Slices of tensor j: whole stored chunks of input 0 where possible (none is read twice). */
#define SLICE_LEN(j, off)                                                                          \
  (maps[(size_t)(j)]->mappable                                                                     \
       ? h5direct_aligned_count(maps[(size_t)(j)], off, ref->tensors[j].numel - (off) < P ? ref->tensors[j].numel - (off) : P) \
       : (ref->tensors[j].numel - (off) < P ? ref->tensors[j].numel - (off) : P))
  while (cj < T && ref->tensors[cj].numel == 0) cj++;
  if (cj < T) {
    clen = SLICE_LEN(cj, 0);
    rj.j = cj;
    rj.off = 0;
    rj.len = clen;
    rj.buf = inb[0];
    ec_pool_start(pool, N, read_input, &rj);
    reading = 1;
  }
  while (cj < T && !s) {
    ec_pool_wait(pool); /* slice (cj, coff, clen) is in inb[b] */
    reading = 0;
    if (atomic_load(&rj.failed)) {
      s = ec_err(rj.status, "%s", rj.msg);
      break;
    }
    const snap_tensor *tj = &ref->tensors[cj];
    if (coff == 0) tensor_weights(p, colmap, rule_col, ow, nactive, N, cj, wmat, dwmat);
    cjob.in = inb[b];
    cjob.out = b ? out2 : out; /* the writer may still be writing the other one */
    cjob.len = clen;
    cjob.blocks = ec_pool_threads(pool) * 4;
    if (cjob.blocks > (clen + 255) / 256) cjob.blocks = (int)((clen + 255) / 256);
    if (cjob.blocks < 1) cjob.blocks = 1;
    ec_pool_start(pool, cjob.blocks, combine_block, &cjob);
    ec_pool_wait(pool);
    /* the next slice starts reading while this one is written */
    int nj = cj;
    int64_t noff = coff + clen, nlen = 0;
    while (nj < T && noff >= ref->tensors[nj].numel) {
      nj++;
      noff = 0;
    }
    if (nj < T) {
      nlen = SLICE_LEN(nj, noff);
      rj.j = nj;
      rj.off = noff;
      rj.len = nlen;
      rj.buf = inb[1 - b];
      ec_pool_start(pool, N, read_input, &rj);
      reading = 1;
    }
    if (writing) { /* slice s - 1 */
      ec_pool_wait(wpool);
      writing = 0;
      if (wj.status) {
        s = ec_err(wj.status, "%s", wj.msg);
        break;
      }
    }
    wj = (write_job){ow, nactive, tj, coff, clen, cjob.out, EC_OK, ""};
    ec_pool_start(wpool, 1, write_job_run, &wj);
    writing = 1;
    ec_progress_add(&bar, clen * bytes_per_elem_all);
    cj = nj;
    coff = noff;
    clen = nlen;
    b = 1 - b;
  }
#undef SLICE_LEN
  if (reading) ec_pool_wait(pool);
  reading = 0;
  if (writing) {
    ec_pool_wait(wpool);
    writing = 0;
    if (wj.status && !s) s = ec_err(wj.status, "%s", wj.msg);
  }
  ec_progress_end(&bar);
  rep->bytes_read = total_bytes;
  if (s) goto done;

buffers:
  /* Buffers (checked against every snapshot while mapping), then provenance, then commit. */
  for (int bb = 0; bb < ref->nbuffers && !s; bb++)
    for (int q = 0; q < nactive && !s; q++)
      s = ow[q].h5 ? model_writer_add_buffer(ow[q].h5, ref->buffers[bb].name, &ref->buffers[bb].shape, refbuf[bb])
                   : ec_st_writer_write(&ow[q].st, EC_F32, refbuf[bb], ref->buffers[bb].numel);
  for (int q = 0; q < nactive && !s; q++) {
    out_writer *w = &ow[q];
    if (w->h5) {
      int cols[64], ncols = 1;
      cols[0] = w->target;
      for (int e = 0; e < nextra && ncols < 64; e++) cols[ncols++] = p->nmain + e;
      s = write_provenance(w->h5, p, cols, ncols, &p->diag[w->target]);
      if (!s && rules.n) s = h5io_attr_write_str(model_writer_file(w->h5), "tensor_rules_hash", rules.hash);
      if (!s) s = model_writer_close(&w->h5);
    } else {
      s = ec_st_writer_finish(&w->st);
      ec_st_writer_free(&w->st);
      w->st_open = 0;
      if (s)
        ec_atomic_abort(&w->st_file);
      else
        s = ec_atomic_commit(&w->st_file);
    }
    if (!s) rep->written++;
  }

done:
  if (reading) ec_pool_wait(pool);
  if (writing) ec_pool_wait(wpool);
  ec_pool_destroy(&pool);
  ec_pool_destroy(&wpool);
  for (int q = 0; ow && q < nactive; q++) writer_abort(&ow[q]); /* no-ops for committed ones */
  for (int f = 0; src && f < nsrc; f++) {
    snap_close(&src[f].file);
    if (src[f].fd >= 0) close(src[f].fd);
    ec_freep(&src[f].path);
    if (tmap_of) ec_freep(&tmap_of[f]);
  }
  for (int bb = 0; refbuf && ref && bb < ref->nbuffers; bb++) ec_freep(&refbuf[bb]);
  snap_close(&reff);
  for (int w = 0; scratch && w < nscratch; w++) ec_freep(&scratch[w]);
  ec_freep(&scratch);
  ec_freep(&refbuf);
  ec_freep(&maps);
  ec_freep(&src);
  ec_freep(&src_of);
  ec_freep(&prof_of);
  ec_freep(&tmap_of);
  ec_freep(&ow);
  ec_freep(&inb[0]);
  ec_freep(&inb[1]);
  ec_freep(&out);
  ec_freep(&out2);
  ec_freep(&wmat);
  ec_freep(&dwmat);
  ec_freep(&colmap);
  ec_freep(&active);
  ec_freep(&ema);
  ec_freep(&extra);
  ec_freep(&rule_col);
  tensor_rules_free(&rules);
  pthread_mutex_destroy(&rj.mu);
  rep->seconds = now() - t0;
  rep->peak_rss = peak_rss_bytes();
  return s;
}
