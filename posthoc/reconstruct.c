/* The reconstruction engine; see reconstruct.h. */
#include "reconstruct.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "posthoc/model.h"
#include "posthoc/snapshot.h"
#include "posthoc/tensor_rules.h"

/* Memory the budget reserves besides the slice buffers: the program, HDF5 and OpenBLAS
 * (measured peak RSS of a tiny run: ~30 MiB), HDF5's metadata cache of each open snapshot
 * (~0.7 MiB measured; 1 MiB budgeted), and each output being written (metadata cache, one
 * chunk being assembled, conversion buffer). */
#define FIXED_BYTES ((int64_t)48 << 20)
#define PER_SNAPSHOT_BYTES ((int64_t)1 << 20)
#define PER_OUTPUT_BYTES ((int64_t)4 << 20)
/* The smallest slice worth streaming: below it per-read overhead dominates. */
#define MIN_SLICE 1024

void recon_args_init(recon_args *a) {
  memset(a, 0, sizeof *a);
  plan_args_init(&a->plan);
  a->out_dir = "phema";
  a->out_dtype = EC_F32;
  a->mem_limit = (int64_t)4 << 30;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  a->threads = n > 0 ? (int)n : 1;
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

typedef struct {
  snap_file file;
  int *tmap; /* tensor j of the reference table -> index in this file */
  int bytes_per_elem;
} source;

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
  if (!s) s = plan_build(p, &pa);
  for (int r = 0; !s && r < rules.n; r++) rule_col[r] += p->nmain;

  source *src = NULL, *ref = NULL;
  int nsrc = 0, *src_of = NULL; /* input i -> its source */
  out_writer *ow = NULL;
  float *in = NULL, *out = NULL, *row = NULL, *wmat = NULL;
  double *din = NULL, *dout = NULL, *dwmat = NULL;
  int *colmap = NULL, *active = NULL;
  char *ema = NULL;
  ec_progress bar = {0};
  int K = 0, nactive = 0, N = 0, T = 0;
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

  /* Sources: one open snapshot per distinct time among the inputs; the reference (the latest)
   * provides the tensor table, the buffers and the configuration. */
  N = p->ninputs;
  src = ec_calloc((size_t)N, sizeof *src);
  src_of = ec_calloc((size_t)N, sizeof *src_of);
  if (!src || !src_of) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int i = 0; i < N && !s; i++) {
    if (i > 0 && p->inputs[i].snap == p->inputs[i - 1].snap) {
      src_of[i] = src_of[i - 1];
      continue;
    }
    src_of[i] = nsrc;
    s = snap_open(&src[nsrc].file, p->dir.entries[p->inputs[i].snap].path);
    if (!s) nsrc++;
  }
  if (s) goto done;
  ref = &src[nsrc - 1];
  rep->nsnapshots = nsrc;
  rep->ntensors = ref->file.ntensors;
  rep->params = snap_param_count(&ref->file);
  T = ref->file.ntensors;
  for (int f = 0; f < nsrc && !s; f++) {
    source *sc = &src[f];
    sc->bytes_per_elem = (sc->file.dtypes_seen & (1 << EC_F32)) ? 4 : 2;
    if (!(sc->tmap = ec_calloc((size_t)T, sizeof *sc->tmap))) {
      s = EC_ENOMEM;
      break;
    }
    for (int j = 0; j < T; j++) {
      sc->tmap[j] = snap_find_tensor(&sc->file, ref->file.tensors[j].name);
      if (sc->tmap[j] < 0) /* the directory check makes this impossible unless files changed */
        s = ec_err(EC_EFORMAT, "%s: tensor %s missing", sc->file.path, ref->file.tensors[j].name);
    }
  }
  if (s) goto done;

  /* Per-tensor rules: which coefficient column each (tensor, output) uses. */
  if (!(colmap = ec_calloc((size_t)T, sizeof *colmap))) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int j = 0; j < T; j++) {
    int r = tensor_rules_match(&rules, ref->file.tensors[j].name);
    colmap[j] = r;
    if (r >= 0) rules.rules[r].matches++;
  }
  for (int r = 0; r < rules.n; r++)
    if (!rules.rules[r].matches)
      fprintf(err, "posthoc-ema: warning: --tensor-sigma '%s=%g' matches no tensor; it has no effect\n",
              rules.rules[r].glob, rules.rules[r].sigma_rel);

  /* Slice size from the memory budget. */
  int acc = a->accumulate_f64 ? 8 : 4;
  int64_t max_numel = 1;
  for (int j = 0; j < T; j++)
    if (ref->file.tensors[j].numel > max_numel) max_numel = ref->file.tensors[j].numel;
  int64_t fixed = FIXED_BYTES + (int64_t)nsrc * PER_SNAPSHOT_BYTES + (int64_t)nactive * PER_OUTPUT_BYTES;
  int64_t per_elem = (int64_t)acc * (N + nactive) + 4 /* float row */ + (a->accumulate_f64 ? 4 : 0);
  int64_t min_slice = max_numel < MIN_SLICE ? max_numel : MIN_SLICE;
  rep->budget_min = fixed + per_elem * min_slice;
  if (a->mem_limit < rep->budget_min) {
    char lim[32], mn[32];
    s = ec_err(EC_EINVAL,
               "--mem-limit %s is below what this run needs: at least %s (%d snapshot files, %d "
               "outputs, slices of %lld elements x (%d inputs + %d outputs))",
               ec_format_bytes(lim, sizeof lim, (double)a->mem_limit),
               ec_format_bytes(mn, sizeof mn, (double)rep->budget_min), nsrc, nactive,
               (long long)min_slice, N, nactive);
    goto done;
  }
  int64_t P = (a->mem_limit - fixed) / per_elem;
  if (P > max_numel) P = max_numel;
  rep->slice_elems = P;

  in = ec_aligned_alloc((size_t)N * (size_t)P * sizeof *in);
  row = ec_aligned_alloc((size_t)P * sizeof *row);
  wmat = ec_calloc((size_t)nactive * (size_t)N, sizeof *wmat);
  if (a->accumulate_f64) {
    din = ec_aligned_alloc((size_t)N * (size_t)P * sizeof *din);
    dout = ec_aligned_alloc((size_t)nactive * (size_t)P * sizeof *dout);
    dwmat = ec_calloc((size_t)nactive * (size_t)N, sizeof *dwmat);
    if (!din || !dout || !dwmat) s = EC_ENOMEM;
  } else if (!(out = ec_aligned_alloc((size_t)nactive * (size_t)P * sizeof *out))) {
    s = EC_ENOMEM;
  }
  if (!in || !row || !wmat || s) {
    s = EC_ENOMEM;
    goto done;
  }

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
      model_meta mm = {p->at, ref->file.preset, ref->file.config, ema, a->out_dtype};
      s = model_writer_open(&w->h5, w->info->path, &mm, flags);
    } else {
      s = ec_atomic_begin(&w->st_file, w->info->path, flags);
      if (s) break;
      w->st_open = 1;
      for (int j = 0; j < T && !s; j++)
        s = ec_st_writer_add(&w->st, ref->file.tensors[j].name, a->out_dtype, ref->file.tensors[j].shape);
      for (int b = 0; b < ref->file.nbuffers && !s; b++)
        s = ec_st_writer_add(&w->st, ref->file.buffers[b].name, EC_F32, ref->file.buffers[b].shape);
      int cols[64], ncols = 1;
      cols[0] = w->target;
      for (int e = 0; e < nextra && ncols < 64; e++) cols[ncols++] = p->nmain + e;
      char nimg[32], *ph = posthoc_json(p, cols, ncols);
      snprintf(nimg, sizeof nimg, "%lld", (long long)p->at);
      if (!ph) s = EC_ENOMEM;
      if (!s) s = ec_st_writer_meta(&w->st, "format", MODEL_FORMAT);
      if (!s) s = ec_st_writer_meta(&w->st, "format_version", "1");
      if (!s) s = ec_st_writer_meta(&w->st, "nimg", nimg);
      if (!s) s = ec_st_writer_meta(&w->st, "preset", ref->file.preset);
      if (!s) s = ec_st_writer_meta(&w->st, "config", ref->file.config);
      if (!s) s = ec_st_writer_meta(&w->st, "ema", ema);
      if (!s) s = ec_st_writer_meta(&w->st, "posthoc", ph);
      ec_freep(&ph);
      if (!s) s = ec_st_writer_begin(&w->st, w->st_file.tmp_path);
    }
  }
  if (s) goto done;

  /* The streaming pass. */
  int64_t total_bytes = 0;
  for (int i = 0; i < N; i++) total_bytes += rep->params * src[src_of[i]].bytes_per_elem;
  openblas_set_num_threads(a->threads);
  ec_progress_begin(&bar, "reconstructing", total_bytes, 1, a->quiet);
  for (int j = 0; j < T && !s; j++) {
    const snap_tensor *tj = &ref->file.tensors[j];
    /* The coefficient matrix of this tensor: K outputs x N inputs. */
    for (int q = 0; q < nactive; q++) {
      int col = colmap[j] >= 0 ? rule_col[colmap[j]] : ow[q].target;
      for (int i = 0; i < N; i++) {
        double x = p->x[(size_t)i * (size_t)p->ntargets + (size_t)col];
        wmat[(size_t)q * (size_t)N + (size_t)i] = (float)x;
        if (dwmat) dwmat[(size_t)q * (size_t)N + (size_t)i] = x;
      }
    }
    /* Slices: whole chunks of the float16 snapshot layout where possible, so that no stored
     * chunk is read twice. */
    int64_t step = P;
    hsize_t ch[EC_MAX_DIMS];
    if (tj->shape.ndim > 0) {
      h5io_chunk_shape(&tj->shape, (size_t)ref->bytes_per_elem, ch);
      int64_t c = 1;
      for (int d = 0; d < tj->shape.ndim; d++) c *= (int64_t)ch[d];
      if (c <= P) step = P / c * c;
    }
    for (int q = 0; q < nactive && !s; q++)
      if (ow[q].h5) s = model_writer_begin_param(ow[q].h5, tj->name, &tj->shape, EC_F32);
    for (int64_t off = 0; off < tj->numel && !s; off += step) {
      int64_t len = tj->numel - off < step ? tj->numel - off : step;
      for (int i = 0; i < N && !s; i++) {
        source *sc = &src[src_of[i]];
        int prof = snap_find_profile(&sc->file, p->inputs[i].sigma_rel);
        s = snap_read(&sc->file, prof, sc->tmap[j], off, len, in + (size_t)i * (size_t)len);
        if (din && !s)
          for (int64_t e = 0; e < len; e++) din[(size_t)i * (size_t)len + (size_t)e] = in[(size_t)i * (size_t)len + (size_t)e];
        ec_progress_add(&bar, len * sc->bytes_per_elem);
      }
      if (s) break;
      if (din)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nactive, (int)len, N, 1.0, dwmat, N,
                    din, (int)len, 0.0, dout, (int)len);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nactive, (int)len, N, 1.0f, wmat, N,
                    in, (int)len, 0.0f, out, (int)len);
      for (int q = 0; q < nactive && !s; q++) {
        const float *o = out ? out + (size_t)q * (size_t)len : row;
        if (dout)
          for (int64_t e = 0; e < len; e++) row[e] = (float)dout[(size_t)q * (size_t)len + (size_t)e];
        if (ow[q].h5)
          s = model_writer_write(ow[q].h5, EC_F32, o, off, len);
        else
          s = ec_st_writer_write(&ow[q].st, EC_F32, o, len);
      }
    }
    for (int q = 0; q < nactive && !s; q++)
      if (ow[q].h5) s = model_writer_end_param(ow[q].h5);
  }
  ec_progress_end(&bar);
  rep->bytes_read = total_bytes;
  if (s) goto done;

  /* Buffers: copied from the reference after checking that every snapshot agrees. */
  for (int b = 0; b < ref->file.nbuffers && !s; b++) {
    const snap_tensor *tb = &ref->file.buffers[b];
    float *rv = ec_mallocarray((size_t)tb->numel, sizeof *rv), *ov = ec_mallocarray((size_t)tb->numel, sizeof *ov);
    if (!rv || !ov) s = EC_ENOMEM;
    if (!s) s = snap_read_buffer(&ref->file, b, rv);
    for (int f = 0; f < nsrc && !s; f++) {
      int ob = snap_find_buffer(&src[f].file, tb->name);
      if (ob < 0 || src[f].file.buffers[ob].numel != tb->numel) continue; /* checked earlier */
      if ((s = snap_read_buffer(&src[f].file, ob, ov))) break;
      if (memcmp(rv, ov, (size_t)tb->numel * sizeof *rv)) {
        fprintf(err, "posthoc-ema: warning: buffer %s differs between %s and %s; using the latest\n",
                tb->name, src[f].file.path, ref->file.path);
        break;
      }
    }
    for (int q = 0; q < nactive && !s; q++)
      s = ow[q].h5 ? model_writer_add_buffer(ow[q].h5, tb->name, &tb->shape, rv)
                   : ec_st_writer_write(&ow[q].st, EC_F32, rv, tb->numel);
    ec_freep(&rv);
    ec_freep(&ov);
  }

  /* Provenance, then commit every output. */
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
  for (int q = 0; ow && q < nactive; q++) writer_abort(&ow[q]); /* no-ops for committed ones */
  for (int f = 0; src && f < nsrc; f++) {
    snap_close(&src[f].file);
    ec_freep(&src[f].tmap);
  }
  ec_freep(&src);
  ec_freep(&src_of);
  ec_freep(&ow);
  ec_freep(&in);
  ec_freep(&out);
  ec_freep(&row);
  ec_freep(&wmat);
  ec_freep(&din);
  ec_freep(&dout);
  ec_freep(&dwmat);
  ec_freep(&colmap);
  ec_freep(&active);
  ec_freep(&ema);
  ec_freep(&extra);
  ec_freep(&rule_col);
  tensor_rules_free(&rules);
  rep->seconds = now() - t0;
  rep->peak_rss = peak_rss_bytes();
  return s;
}
