/* Snapshot store: writer and reader of format v1; see snapshot.h and docs/formats.md. */
#include "snapshot.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/check.h"
#include "posthoc/phema_math.h"

char *snap_file_name(int64_t nimg, char *buf, size_t size) {
  snprintf(buf, size, "snapshot-%012lld.h5", (long long)nimg);
  return buf;
}

int snap_parse_name(const char *name, int64_t *nimg) {
  /* exactly "snapshot-" + 12 digits + ".h5" */
  if (strlen(name) != 9 + 12 + 3 || strncmp(name, "snapshot-", 9) || strcmp(name + 21, ".h5"))
    return 0;
  int64_t v = 0;
  for (int i = 9; i < 21; i++) {
    if (!isdigit((unsigned char)name[i])) return 0;
    v = v * 10 + (name[i] - '0');
  }
  *nimg = v;
  return 1;
}

char *snap_profile_key(double sigma_rel, char *buf, size_t size) {
  snprintf(buf, size, "%.3f", sigma_rel);
  return buf;
}

/* ---- writer --------------------------------------------------------------------------------- */

typedef struct {
  double sigma_rel;
  char key[32];
  hid_t group;
} writer_profile;

struct snap_writer {
  ec_atomic out;
  hid_t file, buffers;
  ec_dtype dtype;
  int nprofiles;
  writer_profile profiles[16];
};

const char *snap_writer_path(const snap_writer *w) { return w->out.final_path; }

static void writer_free(snap_writer **pw) {
  snap_writer *w = *pw;
  for (int i = 0; i < w->nprofiles; i++) h5io_close(&w->profiles[i].group);
  h5io_close(&w->buffers);
  h5io_close(&w->file);
  ec_freep(pw);
}

void snap_writer_abort(snap_writer **pw) {
  if (!*pw) return;
  snap_writer *w = *pw;
  for (int i = 0; i < w->nprofiles; i++) h5io_close(&w->profiles[i].group);
  h5io_close(&w->buffers);
  h5io_close(&w->file);
  ec_atomic_abort(&w->out);
  writer_free(pw);
}

ec_status snap_writer_open(snap_writer **pw, const char *dir, const snap_meta *meta) {
  *pw = NULL;
  struct stat st;
  if (meta->nimg < 0)
    return ec_err(EC_EINVAL, "snapshot time nimg = %lld must not be negative", (long long)meta->nimg);
  if (meta->dtype != EC_F16 && meta->dtype != EC_F32)
    return ec_err(EC_EINVAL, "snapshots store float16 or float32, not %s", ec_dtype_name(meta->dtype));
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return ec_err(EC_ENOENT, "snapshot directory %s does not exist", dir);
  snap_writer *w = ec_calloc(1, sizeof *w);
  if (!w) return EC_ENOMEM;
  w->file = w->buffers = H5I_INVALID_HID;
  w->dtype = meta->dtype;
  *pw = w;
  char name[64];
  char *path = ec_asprintf("%s/%s", dir, snap_file_name(meta->nimg, name, sizeof name));
  if (!path) {
    ec_freep(pw);
    return EC_ENOMEM;
  }
  ec_status s = ec_atomic_begin(&w->out, path, 0);
  ec_freep(&path);
  if (s) {
    ec_freep(pw);
    return s;
  }
  if ((s = h5io_file_create(w->out.tmp_path, &w->file)) ||
      (s = h5io_attr_write_str(w->file, "format", SNAP_FORMAT)) ||
      (s = h5io_attr_write_i64(w->file, "format_version", SNAP_FORMAT_VERSION)) ||
      (s = h5io_attr_write_i64(w->file, "nimg", meta->nimg)) ||
      (s = h5io_attr_write_i64(w->file, "batch_size", meta->batch_size)) ||
      (s = h5io_attr_write_str(w->file, "preset", meta->preset ? meta->preset : "")) ||
      (s = h5io_attr_write_str(w->file, "config", meta->config ? meta->config : "{}"))) {
    snap_writer_abort(pw);
    return s;
  }
  return EC_OK;
}

static writer_profile *writer_find(snap_writer *w, double sigma_rel) {
  char key[32];
  snap_profile_key(sigma_rel, key, sizeof key);
  for (int i = 0; i < w->nprofiles; i++)
    if (!strcmp(w->profiles[i].key, key)) return &w->profiles[i];
  return NULL;
}

ec_status snap_writer_add_profile(snap_writer *w, double sigma_rel) {
  double gamma;
  ec_status s = phema_sigma_to_gamma(sigma_rel, &gamma);
  if (s) return s;
  if (writer_find(w, sigma_rel))
    return ec_err(EC_EINVAL, "%s: profile %.3f added twice (profiles are told apart by 3 decimals)",
                  w->out.final_path, sigma_rel);
  if (w->nprofiles == (int)(sizeof w->profiles / sizeof w->profiles[0]))
    return ec_err(EC_EINVAL, "%s: more than %d EMA profiles", w->out.final_path, w->nprofiles);
  writer_profile *p = &w->profiles[w->nprofiles];
  p->sigma_rel = sigma_rel;
  p->group = H5I_INVALID_HID;
  snap_profile_key(sigma_rel, p->key, sizeof p->key);
  char path[64];
  snprintf(path, sizeof path, "ema/%s", p->key);
  if ((s = h5io_group_create(w->file, path, &p->group))) return s;
  w->nprofiles++;
  if ((s = h5io_attr_write_f64(p->group, "sigma_rel", sigma_rel)) ||
      (s = h5io_attr_write_f64(p->group, "gamma", gamma)) ||
      (s = h5io_attr_write_str(p->group, "profile", "power")))
    return s;
  return EC_OK;
}

ec_status snap_writer_add_tensor(snap_writer *w, double sigma_rel, const char *name,
                                 const ec_shape *shape, ec_dtype mem_dtype, const void *data) {
  writer_profile *p = writer_find(w, sigma_rel);
  if (!p)
    return ec_err(EC_EINVAL, "%s: tensor %s added to profile %.3f before the profile",
                  w->out.final_path, name, sigma_rel);
  if (mem_dtype != EC_F32 && mem_dtype != EC_F16)
    return ec_err(EC_EINVAL, "%s: tensor %s: memory must be float32 or float16", w->out.final_path, name);
  return h5io_write_tensor(p->group, name, shape, w->dtype, mem_dtype, data, H5IO_CHECKSUM);
}

ec_status snap_writer_add_buffer(snap_writer *w, const char *name, const ec_shape *shape,
                                 const float *data) {
  ec_status s;
  if (w->buffers < 0 && (s = h5io_group_create(w->file, "buffers", &w->buffers))) return s;
  return h5io_write_tensor(w->buffers, name, shape, EC_F32, EC_F32, data, H5IO_CHECKSUM);
}

ec_status snap_writer_close(snap_writer **pw) {
  snap_writer *w = *pw;
  if (!w) return EC_OK;
  for (int i = 0; i < w->nprofiles; i++) h5io_close(&w->profiles[i].group);
  h5io_close(&w->buffers);
  ec_status s = h5io_file_close(&w->file);
  if (s) {
    snap_writer_abort(pw);
    return s;
  }
  s = ec_atomic_commit(&w->out);
  writer_free(pw);
  return s;
}

/* ---- reader --------------------------------------------------------------------------------- */

void snap_close(snap_file *s) {
  for (int i = 0; s->maps && i < s->nprofiles * s->ntensors; i++) h5direct_unmap(&s->maps[i]);
  ec_freep(&s->maps);
  ec_freep(&s->buffer_hash);
  for (int i = 0; i < s->ntensors; i++) ec_freep(&s->tensors[i].name);
  for (int i = 0; i < s->nbuffers; i++) ec_freep(&s->buffers[i].name);
  ec_freep(&s->tensors);
  ec_freep(&s->buffers);
  ec_freep(&s->profiles);
  ec_freep(&s->preset);
  ec_freep(&s->config);
  h5io_close(&s->file);
  ec_freep(&s->path);
  s->ntensors = s->nbuffers = s->nprofiles = 0;
}

static int cmp_profile(const void *a, const void *b) {
  double x = ((const snap_profile *)a)->sigma_rel, y = ((const snap_profile *)b)->sigma_rel;
  return (x > y) - (x < y);
}

/* Reads the root attributes and checks format and version. */
static ec_status read_root(snap_file *s) {
  char *format = NULL;
  ec_status st;
  if (!h5io_attr_exists(s->file, "format"))
    return ec_err(EC_EFORMAT, "%s: not an edm2c snapshot (no 'format' attribute)", s->path);
  if ((st = h5io_attr_read_str(s->file, "format", &format))) return st;
  if (strcmp(format, SNAP_FORMAT)) {
    st = ec_err(EC_EFORMAT, "%s: not an edm2c snapshot (format = '%s', expected '%s')", s->path,
                format, SNAP_FORMAT);
    ec_freep(&format);
    return st;
  }
  ec_freep(&format);
  if ((st = h5io_attr_read_i64(s->file, "format_version", &s->format_version))) return st;
  if (s->format_version > SNAP_FORMAT_VERSION)
    return ec_err(EC_EFORMAT,
                  "%s: snapshot format_version %lld is newer than this edm2c supports (%d); "
                  "upgrade edm2c to read it",
                  s->path, (long long)s->format_version, SNAP_FORMAT_VERSION);
  if (s->format_version < 1)
    return ec_err(EC_EFORMAT, "%s: invalid format_version %lld", s->path, (long long)s->format_version);
  if ((st = h5io_attr_read_i64(s->file, "nimg", &s->nimg)) ||
      (st = h5io_attr_read_i64(s->file, "batch_size", &s->batch_size)) ||
      (st = h5io_attr_read_str(s->file, "preset", &s->preset)) ||
      (st = h5io_attr_read_str(s->file, "config", &s->config)))
    return st;
  if (s->nimg < 0) return ec_err(EC_EFORMAT, "%s: negative nimg %lld", s->path, (long long)s->nimg);
  return EC_OK;
}

/* Reads one profile group's attributes and checks them against each other. */
static ec_status read_profile(snap_file *s, hid_t ema, const char *key, snap_profile *p) {
  hid_t g = H5I_INVALID_HID;
  char *kind = NULL, expect[32];
  ec_status st;
  snprintf(p->key, sizeof p->key, "%s", key);
  if (!h5io_is_group(ema, key))
    return ec_err(EC_EFORMAT, "%s: /ema/%s is not a profile group", s->path, key);
  if ((st = h5io_group_open(ema, key, &g))) return st;
  if ((st = h5io_attr_read_f64(g, "sigma_rel", &p->sigma_rel)) ||
      (st = h5io_attr_read_f64(g, "gamma", &p->gamma)) ||
      (st = h5io_attr_read_str(g, "profile", &kind)))
    goto done;
  if (strcmp(kind, "power")) {
    st = ec_err(EC_EFORMAT, "%s: /ema/%s: unsupported profile kind '%s' (expected 'power')", s->path,
                key, kind);
    goto done;
  }
  double gamma;
  if ((st = phema_sigma_to_gamma(p->sigma_rel, &gamma))) {
    st = ec_err_context(st, "%s: /ema/%s", s->path, key);
    goto done;
  }
  if (!(fabs(gamma - p->gamma) <= 1e-9 * gamma)) {
    st = ec_err(EC_EFORMAT, "%s: /ema/%s: gamma %.17g does not match sigma_rel %.17g (expected %.17g)",
                s->path, key, p->gamma, p->sigma_rel, gamma);
    goto done;
  }
  if (strcmp(snap_profile_key(p->sigma_rel, expect, sizeof expect), key))
    st = ec_err(EC_EFORMAT, "%s: /ema/%s holds sigma_rel %.6g; its group must be named %s", s->path,
                key, p->sigma_rel, expect);
done:
  ec_freep(&kind);
  h5io_close(&g);
  return st;
}

/* Lists the datasets of `group` into a tensor table (name and shape); records dtypes. */
static ec_status read_table(snap_file *s, hid_t group, const char *gname, snap_tensor **out, int *n,
                            int params, h5direct_map **maps, const h5direct_file *fi) {
  char **names = NULL;
  int count = 0;
  ec_status st = h5io_list(group, &names, &count);
  if (st) return st;
  snap_tensor *t = ec_calloc((size_t)count + 1, sizeof *t);
  if (!t) st = EC_ENOMEM;
  if (!st && maps && !(*maps = ec_calloc((size_t)count + 1, sizeof **maps))) st = EC_ENOMEM;
  int k = 0;
  for (int i = 0; !st && i < count; i++) {
    h5io_dset d;
    if ((st = h5io_dset_open(group, names[i], &d))) {
      if (st == EC_EFORMAT && !h5io_is_dataset(group, names[i]))
        st = ec_err(EC_EFORMAT, "%s: %s/%s is not a dataset", s->path, gname, names[i]);
      break;
    }
    if (!ec_dtype_is_float(d.dtype))
      st = ec_err(EC_EFORMAT, "%s: %s/%s is stored as %s; tensors must be floating point", s->path,
                  gname, names[i], ec_dtype_name(d.dtype));
    if (params) {
      s->dtypes_seen |= 1 << d.dtype;
      if (d.shape.ndim > 0 && !d.checksummed) s->unchecksummed++;
    }
    t[k].shape = d.shape;
    t[k].numel = d.numel;
    if (!st && maps) st = h5direct_map_dataset_in(&d, fi, &(*maps)[k]);
    h5io_dset_close(&d);
    if (!st && !(t[k].name = ec_strdup(names[i]))) st = EC_ENOMEM;
    k++;
  }
  h5io_free_names(&names, count);
  if (st) {
    for (int i = 0; i < k; i++) ec_freep(&t[i].name);
    ec_freep(&t);
    for (int i = 0; maps && *maps && i < k; i++) h5direct_unmap(&(*maps)[i]);
    if (maps) ec_freep(maps);
    return st;
  }
  *out = t;
  *n = k;
  return EC_OK;
}

static void free_table(snap_tensor **t, int n) {
  for (int i = 0; i < n; i++) ec_freep(&(*t)[i].name);
  ec_freep(t);
}

/* Checks that profile p holds exactly the tensors of the first profile with the same shapes. */
static ec_status check_profile_table(snap_file *s, int p, const snap_tensor *t, int n) {
  char a[96], b[96];
  const char *k0 = s->profiles[0].key, *kp = s->profiles[p].key;
  for (int i = 0; i < s->ntensors; i++) {
    int j = -1;
    for (int m = 0; m < n; m++)
      if (!strcmp(t[m].name, s->tensors[i].name)) j = m;
    if (j < 0)
      return ec_err(EC_EFORMAT, "%s: tensor %s missing from /ema/%s (present in /ema/%s)", s->path,
                    s->tensors[i].name, kp, k0);
    if (!ec_shape_equal(&t[j].shape, &s->tensors[i].shape))
      return ec_err(EC_EFORMAT, "%s: tensor %s has shape %s in /ema/%s but %s in /ema/%s", s->path,
                    s->tensors[i].name, ec_shape_str(&t[j].shape, a, sizeof a), kp,
                    ec_shape_str(&s->tensors[i].shape, b, sizeof b), k0);
  }
  if (n != s->ntensors) {
    for (int m = 0; m < n; m++)
      if (snap_find_tensor(s, t[m].name) < 0)
        return ec_err(EC_EFORMAT, "%s: tensor %s in /ema/%s is missing from /ema/%s", s->path,
                      t[m].name, kp, k0);
  }
  return EC_OK;
}

static ec_status read_profiles(snap_file *s, unsigned flags) {
  hid_t ema = H5I_INVALID_HID;
  char **keys = NULL;
  int nkeys = 0;
  ec_status st;
  if (!h5io_is_group(s->file, "ema"))
    return ec_err(EC_EFORMAT, "%s: no /ema group (the snapshot holds no EMA profiles)", s->path);
  if ((st = h5io_group_open(s->file, "ema", &ema))) return st;
  if ((st = h5io_list(ema, &keys, &nkeys))) goto done;
  if (nkeys == 0) {
    st = ec_err(EC_EFORMAT, "%s: /ema holds no profiles", s->path);
    goto done;
  }
  if (!(s->profiles = ec_calloc((size_t)nkeys, sizeof *s->profiles))) {
    st = EC_ENOMEM;
    goto done;
  }
  for (int i = 0; i < nkeys && !st; i++) st = read_profile(s, ema, keys[i], &s->profiles[i]);
  h5direct_file fi = {0, 0}; /* once per file: it costs as much as a fifth of mapping a dataset */
  if (!st && (flags & SNAP_OPEN_MAP)) h5direct_file_info(s->file, &fi);
  if (st) goto done;
  s->nprofiles = nkeys;
  qsort(s->profiles, (size_t)nkeys, sizeof *s->profiles, cmp_profile);
  for (int p = 0; p < s->nprofiles && !st; p++) {
    hid_t g = H5I_INVALID_HID;
    snap_tensor *t = NULL;
    int n = 0;
    char gname[64];
    snprintf(gname, sizeof gname, "/ema/%s", s->profiles[p].key);
    h5direct_map *pm = NULL; /* this profile's maps, in its own listing order */
    if ((st = h5io_group_open(ema, s->profiles[p].key, &g))) break;
    st = read_table(s, g, gname, &t, &n, 1, (flags & SNAP_OPEN_MAP) ? &pm : NULL, &fi);
    h5io_close(&g);
    if (st) break;
    if (p == 0) {
      s->tensors = t;
      s->ntensors = n;
      if (n == 0) st = ec_err(EC_EFORMAT, "%s: /ema/%s holds no tensors", s->path, s->profiles[0].key);
      if (!st && pm && !(s->maps = ec_calloc((size_t)s->nprofiles * (size_t)n, sizeof *s->maps))) st = EC_ENOMEM;
    } else {
      st = check_profile_table(s, p, t, n);
    }
    /* maps move into place in the order of s->tensors */
    for (int m = 0; pm && m < n; m++) {
      int idx = st ? -1 : (p == 0 ? m : snap_find_tensor(s, t[m].name));
      if (idx >= 0)
        s->maps[(size_t)p * (size_t)s->ntensors + (size_t)idx] = pm[m];
      else
        h5direct_unmap(&pm[m]);
    }
    ec_freep(&pm);
    if (p > 0) free_table(&t, n);
  }
done:
  h5io_free_names(&keys, nkeys);
  h5io_close(&ema);
  return st;
}

ec_status snap_open(snap_file *s, const char *path) { return snap_open_flags(s, path, 0); }

ec_status snap_open_flags(snap_file *s, const char *path, unsigned flags) {
  memset(s, 0, sizeof *s);
  s->file = H5I_INVALID_HID;
  if (!(s->path = ec_strdup(path))) return EC_ENOMEM;
  ec_status st = h5io_file_open(path, &s->file);
  if (!st) st = read_root(s);
  if (!st) st = read_profiles(s, flags);
  if (!st && h5io_exists(s->file, "buffers")) {
    hid_t g = H5I_INVALID_HID;
    if (!h5io_is_group(s->file, "buffers"))
      st = ec_err(EC_EFORMAT, "%s: /buffers is not a group", path);
    else if (!(st = h5io_group_open(s->file, "buffers", &g)))
      st = read_table(s, g, "/buffers", &s->buffers, &s->nbuffers, 0, NULL, NULL);
    h5io_close(&g);
  }
  if (!st && (flags & SNAP_OPEN_MAP)) { /* buffers are tiny: read and hash them now */
    if (!(s->buffer_hash = ec_calloc((size_t)s->nbuffers + 1, sizeof *s->buffer_hash))) st = EC_ENOMEM;
    for (int b = 0; !st && b < s->nbuffers; b++) {
      float *v = ec_mallocarray((size_t)s->buffers[b].numel + 1, sizeof *v);
      if (!v) {
        st = EC_ENOMEM;
        break;
      }
      if (!(st = snap_read_buffer(s, b, v))) {
        uint64_t h = 14695981039346656037ull;
        const unsigned char *c = (const unsigned char *)v;
        for (size_t k = 0; k < (size_t)s->buffers[b].numel * sizeof *v; k++) h = (h ^ c[k]) * 1099511628211ull;
        s->buffer_hash[b] = h;
      }
      ec_freep(&v);
    }
  }
  if (st) snap_close(s);
  return st;
}

int snap_find_profile(const snap_file *s, double sigma_rel) {
  char key[32];
  snap_profile_key(sigma_rel, key, sizeof key);
  for (int i = 0; i < s->nprofiles; i++)
    if (!strcmp(s->profiles[i].key, key)) return i;
  return -1;
}

int snap_find_tensor(const snap_file *s, const char *name) {
  for (int i = 0; i < s->ntensors; i++)
    if (!strcmp(s->tensors[i].name, name)) return i;
  return -1;
}

int snap_find_buffer(const snap_file *s, const char *name) {
  for (int i = 0; i < s->nbuffers; i++)
    if (!strcmp(s->buffers[i].name, name)) return i;
  return -1;
}

int64_t snap_param_count(const snap_file *s) {
  int64_t n = 0;
  for (int i = 0; i < s->ntensors; i++) n += s->tensors[i].numel;
  return n;
}

static ec_status read_path(const snap_file *s, const char *path, int64_t numel, int64_t offset,
                           int64_t count, float *out) {
  h5io_dset d;
  ec_status st = h5io_dset_open(s->file, path, &d);
  if (st) return st;
  if (d.numel != numel) /* the file changed since snap_open */
    st = ec_err(EC_EFORMAT, "%s: %s changed size while open", s->path, path);
  else
    st = h5io_dset_read(&d, EC_F32, out, offset, count);
  h5io_dset_close(&d);
  return st;
}

ec_status snap_read(const snap_file *s, int profile, int tensor, int64_t offset, int64_t count,
                    float *out) {
  EC_ASSERT(profile >= 0 && profile < s->nprofiles && tensor >= 0 && tensor < s->ntensors);
  char path[1024];
  snprintf(path, sizeof path, "ema/%s/%s", s->profiles[profile].key, s->tensors[tensor].name);
  return read_path(s, path, s->tensors[tensor].numel, offset, count, out);
}

ec_status snap_read_buffer(const snap_file *s, int buffer, float *out) {
  EC_ASSERT(buffer >= 0 && buffer < s->nbuffers);
  char path[1024];
  snprintf(path, sizeof path, "buffers/%s", s->buffers[buffer].name);
  return read_path(s, path, s->buffers[buffer].numel, 0, s->buffers[buffer].numel, out);
}
