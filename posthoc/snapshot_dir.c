/* Snapshot directories: scanning and whole-set validation; see snapshot_dir.h. */
#include "snapshot_dir.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "posthoc/snapshot.h"

/* Data checks read this many elements at a time. */
enum { CHECK_PIECE = 1 << 20 };

const char *snapdir_default(void) {
  struct stat st;
  return (stat("snapshots", &st) == 0 && S_ISDIR(st.st_mode)) ? "snapshots" : ".";
}

static int cmp_entry(const void *a, const void *b) {
  int64_t x = ((const snapdir_entry *)a)->nimg, y = ((const snapdir_entry *)b)->nimg;
  return (x > y) - (x < y);
}

void snapdir_free(snapdir *d) {
  for (int i = 0; i < d->n; i++) {
    ec_freep(&d->entries[i].name);
    ec_freep(&d->entries[i].path);
  }
  for (int i = 0; i < d->nstale; i++) ec_freep(&d->stale[i]);
  ec_freep(&d->entries);
  ec_freep(&d->stale);
  ec_freep(&d->dir);
  d->n = d->nstale = 0;
}

/* Appends to a growable array of `size`-byte elements. */
static void *grow(void *arr, int n, int *cap, size_t size) {
  if (n < *cap) return arr;
  int c = *cap ? 2 * *cap : 64;
  void *p = ec_realloc(arr, (size_t)c, size);
  if (p) *cap = c;
  return p;
}

ec_status snapdir_scan(snapdir *d, const char *dir) {
  memset(d, 0, sizeof *d);
  DIR *dp = opendir(dir);
  if (!dp) {
    int e = errno;
    if (e == ENOENT) return ec_err(EC_ENOENT, "snapshot directory %s does not exist", dir);
    if (e == ENOTDIR) return ec_err(EC_EINVAL, "%s is not a directory", dir);
    return ec_err(EC_EIO, "cannot read directory %s: %s", dir, strerror(e));
  }
  ec_status st = (d->dir = ec_strdup(dir)) ? EC_OK : EC_ENOMEM;
  int cap = 0, scap = 0;
  struct dirent *de;
  while (!st && (de = readdir(dp))) {
    int64_t nimg;
    size_t len = strlen(de->d_name);
    if (snap_parse_name(de->d_name, &nimg)) {
      snapdir_entry *e = grow(d->entries, d->n, &cap, sizeof *e);
      if (!e) {
        st = EC_ENOMEM;
        break;
      }
      d->entries = e;
      e = &d->entries[d->n];
      memset(e, 0, sizeof *e);
      e->nimg = nimg;
      e->name = ec_strdup(de->d_name);
      e->path = ec_asprintf("%s/%s", dir, de->d_name);
      struct stat sb;
      e->bytes = (e->path && stat(e->path, &sb) == 0) ? (int64_t)sb.st_size : -1;
      d->n++;
      if (!e->name || !e->path) st = EC_ENOMEM;
    } else if (len > 4 && !strcmp(de->d_name + len - 4, ".tmp")) {
      char base[512];
      snprintf(base, sizeof base, "%.*s", (int)(len - 4), de->d_name);
      if (!snap_parse_name(base, &nimg)) continue;
      char **s = grow(d->stale, d->nstale, &scap, sizeof *s);
      if (!s) {
        st = EC_ENOMEM;
        break;
      }
      d->stale = s;
      if (!(d->stale[d->nstale++] = ec_strdup(de->d_name))) st = EC_ENOMEM;
    }
  }
  closedir(dp);
  if (st) {
    snapdir_free(d);
    return st;
  }
  if (d->n > 1) qsort(d->entries, (size_t)d->n, sizeof *d->entries, cmp_entry); /* entries may be NULL */
  return EC_OK;
}

/* ---- problems ------------------------------------------------------------------------------- */

void snap_problems_free(snap_problems *p) {
  for (int i = 0; i < p->n; i++) {
    ec_freep(&p->items[i].file);
    ec_freep(&p->items[i].tensor);
    ec_freep(&p->items[i].message);
  }
  ec_freep(&p->items);
  p->n = p->cap = p->errors = p->warnings = 0;
}

static ec_status add_problem(snap_problems *p, snap_severity sev, const char *file,
                             const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static ec_status add_problem(snap_problems *p, snap_severity sev, const char *file,
                             const char *tensor, const char *fmt, ...) {
  snap_problem *items = grow(p->items, p->n, &p->cap, sizeof *items);
  if (!items) return EC_ENOMEM;
  p->items = items;
  snap_problem *q = &p->items[p->n];
  memset(q, 0, sizeof *q);
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  q->severity = sev;
  q->message = ec_strdup(buf);
  q->file = file ? ec_strdup(file) : NULL;
  q->tensor = tensor ? ec_strdup(tensor) : NULL;
  p->n++;
  if (sev == SNAP_ERROR)
    p->errors++;
  else if (sev == SNAP_WARNING)
    p->warnings++;
  return (q->message && (!file || q->file) && (!tensor || q->tensor)) ? EC_OK : EC_ENOMEM;
}

/* ---- structure comparison ------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* A hash of everything that must agree across snapshots: profiles, tensors, buffers, shapes. */
static uint64_t structure_hash(const snap_file *s) {
  uint64_t h = 14695981039346656037ull;
  for (int i = 0; i < s->nprofiles; i++) h = fnv(h, s->profiles[i].key, strlen(s->profiles[i].key) + 1);
  for (int k = 0; k < 2; k++) {
    const snap_tensor *t = k ? s->buffers : s->tensors;
    int n = k ? s->nbuffers : s->ntensors;
    h = fnv(h, &k, sizeof k);
    for (int i = 0; i < n; i++) {
      h = fnv(h, t[i].name, strlen(t[i].name) + 1);
      h = fnv(h, &t[i].shape.ndim, sizeof t[i].shape.ndim);
      h = fnv(h, t[i].shape.dims, sizeof t[i].shape.dims[0] * (size_t)t[i].shape.ndim);
    }
  }
  return h;
}

/* Describes the first difference between `f` and the reference `r` as a problem; 1 if any. */
static int compare_structure(const snap_file *r, const char *rname, const snap_file *f,
                             const char *fname, snap_problems *p, ec_status *st) {
  char a[96], b[96], t[1100];
  for (int i = 0; i < r->nprofiles; i++)
    if (snap_find_profile(f, r->profiles[i].sigma_rel) < 0) {
      snprintf(t, sizeof t, "/ema/%s", r->profiles[i].key);
      *st = add_problem(p, SNAP_ERROR, fname, t, "%s: profile group /ema/%s missing (present in %s)",
                        f->path, r->profiles[i].key, rname);
      return 1;
    }
  for (int i = 0; i < f->nprofiles; i++)
    if (snap_find_profile(r, f->profiles[i].sigma_rel) < 0) {
      snprintf(t, sizeof t, "/ema/%s", f->profiles[i].key);
      *st = add_problem(p, SNAP_ERROR, fname, t, "%s: profile /ema/%s is not in the other snapshots (e.g. %s)",
                        f->path, f->profiles[i].key, rname);
      return 1;
    }
  for (int k = 0; k < 2; k++) {
    const char *kind = k ? "buffer" : "tensor", *group = k ? "/buffers" : "/ema/*";
    const snap_tensor *rt = k ? r->buffers : r->tensors, *ft = k ? f->buffers : f->tensors;
    int rn = k ? r->nbuffers : r->ntensors, fn = k ? f->nbuffers : f->ntensors;
    for (int i = 0; i < rn; i++) {
      int j = k ? snap_find_buffer(f, rt[i].name) : snap_find_tensor(f, rt[i].name);
      snprintf(t, sizeof t, "%s/%s", group, rt[i].name);
      if (j < 0) {
        *st = add_problem(p, SNAP_ERROR, fname, t, "%s: %s %s missing (present in %s)", f->path,
                          kind, rt[i].name, rname);
        return 1;
      }
      if (!ec_shape_equal(&rt[i].shape, &ft[j].shape)) {
        *st = add_problem(p, SNAP_ERROR, fname, t, "%s: %s %s has shape %s, but %s in %s", f->path,
                          kind, rt[i].name, ec_shape_str(&ft[j].shape, a, sizeof a),
                          ec_shape_str(&rt[i].shape, b, sizeof b), rname);
        return 1;
      }
    }
    for (int j = 0; j < fn; j++) {
      int i = k ? snap_find_buffer(r, ft[j].name) : snap_find_tensor(r, ft[j].name);
      if (i < 0) {
        snprintf(t, sizeof t, "%s/%s", group, ft[j].name);
        *st = add_problem(p, SNAP_ERROR, fname, t, "%s: %s %s is not in the other snapshots (e.g. %s)",
                          f->path, kind, ft[j].name, rname);
        return 1;
      }
    }
  }
  return 0;
}

/* ---- data checks ---------------------------------------------------------------------------- */

typedef struct {
  snapdir_progress_fn fn;
  void *ctx;
  int64_t base, total;
} progress_state;

/* Reads every element of every dataset of `f` (verifying checksums) and checks they are finite.
 * Reports the first bad tensor; returns 1 if there was one. `ref_buffers` (may be NULL) are the
 * reference snapshot's buffer values, compared with this file's. */
static int check_data(snap_file *f, const char *fname, float *buf, float **ref_buffers,
                      const char *rname, snap_problems *p, ec_status *st, progress_state *ps,
                      int64_t file_bytes) {
  int64_t total = 0, done = 0;
  for (int i = 0; i < f->ntensors; i++) total += f->tensors[i].numel;
  total *= f->nprofiles;
  for (int q = 0; q < f->nprofiles; q++)
    for (int i = 0; i < f->ntensors; i++) {
      const snap_tensor *t = &f->tensors[i];
      char tname[1100];
      snprintf(tname, sizeof tname, "/ema/%s/%s", f->profiles[q].key, t->name);
      for (int64_t off = 0; off < t->numel; off += CHECK_PIECE) {
        int64_t n = t->numel - off < CHECK_PIECE ? t->numel - off : CHECK_PIECE;
        ec_status rs = snap_read(f, q, i, off, n, buf);
        if (rs == EC_ENOMEM) {
          *st = rs;
          return 1;
        }
        if (rs) {
          *st = add_problem(p, SNAP_ERROR, fname, tname, "%s", ec_errmsg());
          return 1;
        }
        size_t k = ec_first_nonfinite(buf, (size_t)n);
        if (k < (size_t)n) {
          *st = add_problem(p, SNAP_ERROR, fname, tname,
                            "%s: tensor %s: element %lld is %s; the EMA weights are corrupt", f->path,
                            tname, (long long)(off + (int64_t)k), isnan(buf[k]) ? "NaN" : "infinite");
          return 1;
        }
        done += n;
        if (ps->fn && total > 0)
          ps->fn(ps->ctx, ps->base + (int64_t)((double)file_bytes * (double)done / (double)total), ps->total);
      }
    }
  for (int i = 0; i < f->nbuffers; i++) {
    const snap_tensor *t = &f->buffers[i];
    char tname[1100];
    snprintf(tname, sizeof tname, "/buffers/%s", t->name);
    float *vals = ec_malloc((size_t)t->numel * sizeof *vals);
    if (!vals) {
      *st = EC_ENOMEM;
      return 1;
    }
    ec_status rs = snap_read_buffer(f, i, vals);
    if (rs) {
      *st = add_problem(p, SNAP_ERROR, fname, tname, "%s", ec_errmsg());
      ec_freep(&vals);
      return 1;
    }
    if (ref_buffers && ref_buffers[i]) {
      double maxd = 0;
      for (int64_t k = 0; k < t->numel; k++) {
        double dd = fabs((double)vals[k] - (double)ref_buffers[i][k]);
        if (!(dd <= maxd)) maxd = dd; /* NaN-safe: a NaN difference counts */
      }
      if (maxd != 0)
        *st = add_problem(p, SNAP_WARNING, fname, tname,
                          "%s: buffer %s differs from %s (max |difference| %.3g); buffers are copied, not averaged",
                          f->path, t->name, rname, maxd);
      ec_freep(&vals);
    } else if (ref_buffers) {
      ref_buffers[i] = vals; /* this file is the reference: keep its values */
    } else {
      ec_freep(&vals);
    }
    if (*st) return 1;
  }
  return 0;
}

/* ---- the whole check ------------------------------------------------------------------------ */

void snap_summaries_free(snap_summary **s, int n) {
  if (!*s) return;
  for (int i = 0; i < n; i++) {
    ec_freep(&(*s)[i].sigma_rel);
    if ((*s)[i].file) snap_close((*s)[i].file);
    ec_freep(&(*s)[i].file);
  }
  ec_freep(s);
}

static void fill_summary(snap_summary *sm, const snap_file *f) {
  sm->opened = 1;
  sm->nimg = f->nimg;
  sm->nprofiles = f->nprofiles;
  sm->ntensors = f->ntensors;
  sm->params = snap_param_count(f);
  sm->sigma_rel = ec_calloc((size_t)f->nprofiles + 1, sizeof *sm->sigma_rel);
  for (int i = 0; sm->sigma_rel && i < f->nprofiles; i++) sm->sigma_rel[i] = f->profiles[i].sigma_rel;
  int seen = f->dtypes_seen;
  if (seen && !(seen & (seen - 1))) {
    for (int t = 0; t < EC_DTYPE_COUNT; t++)
      if (seen == 1 << t) snprintf(sm->dtype, sizeof sm->dtype, "%s", ec_dtype_name((ec_dtype)t));
  } else {
    snprintf(sm->dtype, sizeof sm->dtype, "mixed");
  }
}

ec_status snapdir_check(const snapdir *d, unsigned flags, snap_summary **summaries,
                        snap_problems *p, snapdir_progress_fn progress, void *ctx) {
  ec_status st = EC_OK;
  int n = d->n;
  snap_summary *sm = ec_calloc((size_t)n + 1, sizeof *sm);
  snap_file *files = ec_calloc((size_t)n + 1, sizeof *files);
  uint64_t *hash = ec_calloc((size_t)n + 1, sizeof *hash);
  float *buf = (flags & SNAPDIR_CHECK_DATA) ? ec_malloc(CHECK_PIECE * sizeof *buf) : NULL;
  float **ref_buffers = NULL; /* the reference snapshot's buffer values (pass 3) */
  int ref_nbuffers = 0;
  *summaries = NULL;
  if (!sm || !files || !hash || ((flags & SNAPDIR_CHECK_DATA) && !buf)) {
    st = EC_ENOMEM;
    goto done;
  }
  for (int i = 0; i < n; i++) files[i].file = H5I_INVALID_HID;

  /* With no snapshots at all, the one error below mentions the leftovers instead. */
  for (int i = 0; n > 0 && i < d->nstale && !st; i++)
    st = add_problem(p, SNAP_WARNING, d->stale[i], NULL,
                     "%s/%s: incomplete snapshot left by an interrupted writer; ignored (the next "
                     "write of that snapshot removes it)",
                     d->dir, d->stale[i]);
  if (n == 0 && !st) {
    st = add_problem(p, SNAP_ERROR, NULL, NULL,
                     "no snapshots in %s (expected files named snapshot-<12-digit nimg>.h5)%s", d->dir,
                     d->nstale ? "; only incomplete .tmp files" : "");
    goto done;
  }

  /* Pass 1: open every file, check it alone, and remember its structure. */
  for (int i = 0; i < n && !st; i++) {
    const snapdir_entry *e = &d->entries[i];
    sm[i].entry = e;
    sm[i].nimg = e->nimg;
    snprintf(sm[i].dtype, sizeof sm[i].dtype, "-");
    ec_status os = snap_open_flags(&files[i], e->path, (flags & SNAPDIR_MAP) ? SNAP_OPEN_MAP : 0);
    if (os == EC_ENOMEM) {
      st = os;
      break;
    }
    if (os) {
      st = add_problem(p, SNAP_ERROR, e->name, NULL, "%s", ec_errmsg());
      continue;
    }
    h5io_close(&files[i].file); /* keep the tables, release the handle until pass 3 */
    fill_summary(&sm[i], &files[i]);
    hash[i] = structure_hash(&files[i]);
    sm[i].usable = 1;
    if (files[i].nimg == 0 && e->nimg == 0) {
      st = add_problem(p, SNAP_NOTE, e->name, NULL,
                       "%s: nimg = 0: an EMA at t = 0 holds no training; unusable for "
                       "reconstruction (skipped)",
                       e->path);
      sm[i].usable = 0;
    }
    if (!st && files[i].unchecksummed)
      st = add_problem(p, SNAP_WARNING, e->name, NULL,
                       "%s: %d tensors are stored without checksums; corruption in them cannot be detected",
                       e->path, files[i].unchecksummed);
  }

  /* Times must agree with the file names. File names are unique, so a time that appears twice
   * is a file whose attribute disagrees with its name: most likely a copy of another snapshot. */
  for (int i = 0; i < n && !st; i++) {
    const snapdir_entry *e = &d->entries[i];
    if (!sm[i].opened || files[i].nimg == e->nimg) continue;
    int twin = -1;
    for (int j = 0; j < n; j++)
      if (j != i && d->entries[j].nimg == files[i].nimg) twin = j;
    if (twin >= 0)
      st = add_problem(p, SNAP_ERROR, e->name, NULL,
                       "%s: duplicate nimg %lld (also in %s); its name says %lld: a copy of that snapshot?",
                       e->path, (long long)files[i].nimg, d->entries[twin].name, (long long)e->nimg);
    else
      st = add_problem(p, SNAP_ERROR, e->name, NULL,
                       "%s: attribute nimg = %lld does not match the file name (%lld)", e->path,
                       (long long)files[i].nimg, (long long)e->nimg);
    sm[i].usable = 0;
  }

  /* Pass 2: the reference structure is the most common one (ties: the earliest file), so that
   * the odd file out is the one blamed. */
  int ref = -1, best = 0;
  for (int i = 0; i < n; i++) {
    if (!sm[i].opened) continue;
    int count = 0;
    for (int j = 0; j < n; j++) count += sm[j].opened && hash[j] == hash[i];
    if (count > best) {
      best = count;
      ref = i;
    }
  }
  for (int i = 0; i < n && !st && ref >= 0; i++)
    if (sm[i].opened && i != ref && hash[i] != hash[ref] &&
        compare_structure(&files[ref], d->entries[ref].name, &files[i], d->entries[i].name, p, &st))
      sm[i].usable = 0;

  /* Pass 3: every byte of data. */
  if ((flags & SNAPDIR_CHECK_DATA) && !st) {
    progress_state ps = {progress, ctx, 0, 0};
    for (int i = 0; i < n; i++) ps.total += d->entries[i].bytes > 0 ? d->entries[i].bytes : 0;
    if (ref >= 0) {
      ref_nbuffers = files[ref].nbuffers;
      if (!(ref_buffers = ec_calloc((size_t)ref_nbuffers + 1, sizeof *ref_buffers))) st = EC_ENOMEM;
    }
    /* The reference first, so its buffers are the ones others are compared with. */
    for (int k = -1; k < n && !st; k++) {
      int i = k < 0 ? ref : k;
      if (i < 0 || (k >= 0 && i == ref) || !sm[i].opened) continue;
      if (i != ref && hash[i] != hash[ref]) continue; /* structure already reported */
      ec_status os = h5io_file_open(d->entries[i].path, &files[i].file);
      if (os) { /* changed since pass 1 */
        st = add_problem(p, SNAP_ERROR, d->entries[i].name, NULL, "%s", ec_errmsg());
        sm[i].usable = 0;
        continue;
      }
      int64_t bytes = d->entries[i].bytes > 0 ? d->entries[i].bytes : 0;
      if (check_data(&files[i], d->entries[i].name, buf, ref_buffers, d->entries[ref].name, p, &st,
                     &ps, bytes))
        sm[i].usable = 0;
      h5io_close(&files[i].file);
      ps.base += bytes;
      if (progress) progress(ctx, ps.base, ps.total);
    }
  }

done:
  for (int i = 0; ref_buffers && i < ref_nbuffers; i++) ec_freep(&ref_buffers[i]);
  ec_freep(&ref_buffers);
  for (int i = 0; files && i < n; i++) {
    /* with SNAPDIR_MAP the opened snapshots move into their summaries */
    if (!st && (flags & SNAPDIR_MAP) && sm && sm[i].opened) {
      if (!(sm[i].file = ec_malloc(sizeof *sm[i].file))) {
        st = EC_ENOMEM;
      } else {
        h5io_close(&files[i].file);
        *sm[i].file = files[i];
        memset(&files[i], 0, sizeof files[i]);
        files[i].file = H5I_INVALID_HID;
      }
    }
    snap_close(&files[i]);
  }
  ec_freep(&files);
  ec_freep(&hash);
  ec_freep(&buf);
  if (st) {
    snap_summaries_free(&sm, n);
    return st;
  }
  *summaries = sm;
  return EC_OK;
}
