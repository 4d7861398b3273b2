/* bench_h5direct: how fast tensors come out of an HDF5 file, page cache warm.
 *
 * Writes (in a temporary directory under $TMPDIR or /tmp) a file of float16 tensors, chunked
 * with Fletcher-32 as h5io writes snapshots (about 512 MB unless `bench_h5direct MB` says
 * otherwise), reads it once to warm the page cache, then times, best of 3, in GB/s of file bytes:
 *   - the read floor: read() of the whole file into a 1 MiB buffer (what `cat` does), 1 thread;
 *   - h5io_dset_read of every chunk-sized piece as float32 (through HDF5);
 *   - h5direct_read of the same pieces, 1 thread, and T threads (T = online CPUs);
 *   - Fletcher-32 alone over a 1 MiB buffer in cache: each h5direct kernel vs the plain loop.
 * Run: meson test -C build --benchmark h5direct --verbose, or build/core/bench_h5direct.
 * EDM2C_KEEP_TMP=1 keeps the file (its path is printed). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/h5direct.h"
#include "core/h5io.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The plain Fletcher-32 loop (HDF5's algorithm, one word at a time), for comparison. */
static uint32_t plain_fletcher32(const uint8_t *p, size_t len) {
  uint32_t s1 = 0, s2 = 0;
  for (size_t n = len / 2; n > 0;) {
    size_t t = n > 360 ? 360 : n;
    n -= t;
    for (; t > 0; t--, p += 2) {
      s1 += (uint32_t)p[0] << 8 | p[1];
      s2 += s1;
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
  }
  if (len % 2) {
    s1 += (uint32_t)p[0] << 8;
    s2 += s1;
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
  }
  s1 = (s1 & 0xffff) + (s1 >> 16);
  s2 = (s2 & 0xffff) + (s2 >> 16);
  return s2 << 16 | s1;
}

typedef struct {
  h5io_dset d;
  h5direct_map m;
} tensor;

typedef struct {
  tensor *t;
  int nt;
  int fd;
  int64_t max_piece;
  atomic_long next; /* index of the next work item (one chunk of one tensor) */
  long nitems;
  long *item_tensor, *item_extent;
} job;

typedef struct {
  job *j;
  ec_status status;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  job *j = a->j;
  size_t scratch_size = 0;
  for (int i = 0; i < j->nt; i++)
    if (j->t[i].m.scratch_size > scratch_size) scratch_size = j->t[i].m.scratch_size;
  void *scratch = ec_aligned_alloc(scratch_size);
  float *out = ec_aligned_alloc((size_t)j->max_piece * sizeof(float));
  if (!scratch || !out) {
    a->status = EC_ENOMEM;
  } else {
    memset(scratch, 0, scratch_size);
    memset(out, 0, (size_t)j->max_piece * sizeof(float));
    for (long w; !a->status && (w = atomic_fetch_add(&j->next, 1)) < j->nitems;) {
      const h5direct_map *m = &j->t[j->item_tensor[w]].m;
      const h5direct_extent *e = &m->extents[j->item_extent[w]];
      a->status = h5direct_read(m, j->fd, e->first, e->count, out, scratch, scratch_size);
    }
  }
  ec_freep(&scratch);
  ec_freep(&out);
  return NULL;
}

static ec_status run_direct(job *j, int nthreads) {
  atomic_store(&j->next, 0);
  pthread_t th[256];
  worker_arg args[256];
  if (nthreads > 256) nthreads = 256;
  for (int i = 0; i < nthreads; i++) {
    args[i] = (worker_arg){j, EC_OK};
    if (pthread_create(&th[i], NULL, worker, &args[i]))
      return ec_err(EC_EIO, "pthread_create failed");
  }
  ec_status s = EC_OK;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    if (args[i].status && !s) s = args[i].status;
  }
  return s;
}

static ec_status run_h5io(job *j, float *out) {
  for (long w = 0; w < j->nitems; w++) {
    const tensor *t = &j->t[j->item_tensor[w]];
    const h5direct_extent *e = &t->m.extents[j->item_extent[w]];
    ec_status s = h5io_dset_read(&t->d, EC_F32, out, e->first, e->count);
    if (s) return s;
  }
  return EC_OK;
}

static ec_status run_cat(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return ec_err(EC_EIO, "open %s", path);
  static char buf[1 << 20];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) {
  }
  close(fd);
  return r < 0 ? ec_err(EC_EIO, "read %s", path) : EC_OK;
}

static int fail(const char *what) {
  fprintf(stderr, "bench_h5direct: %s: %s\n", what, ec_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  double target_mb = argc > 1 ? atof(argv[1]) : 512;
  const char *base = getenv("TMPDIR");
  char dir[4096], path[4200];
  snprintf(dir, sizeof dir, "%s/edm2c-bench-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(path, sizeof path, "%s/tensors.h5", dir);
  int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;

  /* Conv weights of [1024, 1024, 3, 3] float16: 18.9 MB each, in 19 chunks of 56 rows (1 MiB). */
  ec_shape shape = ec_shape_make(4, (int64_t[]){1024, 1024, 3, 3});
  int64_t numel = ec_shape_numel(&shape);
  int nt = (int)(target_mb * 1e6 / (double)(numel * 2) + 0.5);
  if (nt < 1) nt = 1;
  float *data = malloc((size_t)numel * sizeof *data);
  if (!data) return 1;
  uint64_t seed = 42;
  for (int64_t i = 0; i < numel; i++) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    data[i] = (float)((int32_t)(seed >> 32)) * (1.0f / 2147483648.0f);
  }
  double t0 = now();
  hid_t f;
  if (h5io_file_create(path, &f)) return fail("create");
  for (int i = 0; i < nt; i++) {
    char name[64];
    snprintf(name, sizeof name, "ema/w%03d", i);
    data[0] = (float)i;
    if (h5io_write_tensor(f, name, &shape, EC_F16, EC_F32, data, H5IO_CHECKSUM))
      return fail("write");
  }
  if (h5io_file_close(&f)) return fail("close");
  free(data);
  struct stat st;
  stat(path, &st);
  double gb = (double)st.st_size / 1e9;
  printf("file: %d float16 tensors [1024, 1024, 3, 3], chunked + Fletcher-32, %.1f MB (written in "
         "%.2f s)\n",
         nt, (double)st.st_size / 1e6, now() - t0);

  /* Open and map everything once (not timed: the engine does this at start). */
  if (h5io_file_open(path, &f)) return fail("open");
  tensor *t = calloc((size_t)nt, sizeof *t);
  job j = {.t = t, .nt = nt};
  t0 = now();
  for (int i = 0; i < nt; i++) {
    char name[64];
    snprintf(name, sizeof name, "ema/w%03d", i);
    if (h5io_dset_open(f, name, &t[i].d) || h5direct_map_dataset(&t[i].d, &t[i].m))
      return fail("map");
    if (!t[i].m.mappable) {
      fprintf(stderr, "bench_h5direct: %s not mappable: %s\n", name, t[i].m.why);
      return 1;
    }
    j.nitems += t[i].m.nextents;
  }
  double map_s = now() - t0;
  j.item_tensor = calloc((size_t)j.nitems, sizeof *j.item_tensor);
  j.item_extent = calloc((size_t)j.nitems, sizeof *j.item_extent);
  for (int i = 0, w = 0; i < nt; i++)
    for (int64_t e = 0; e < t[i].m.nextents; e++, w++) {
      j.item_tensor[w] = i;
      j.item_extent[w] = (long)e;
      if (t[i].m.extents[e].count > j.max_piece) j.max_piece = t[i].m.extents[e].count;
    }
  printf("mapped %d datasets, %ld chunks, in %.1f ms\n", nt, j.nitems, 1e3 * map_s);
  j.fd = open(path, O_RDONLY | O_CLOEXEC);
  float *out = ec_aligned_alloc((size_t)j.max_piece * sizeof(float));
  if (j.fd < 0 || !out) return 1;
  memset(out, 0, (size_t)j.max_piece * sizeof(float));
  if (run_cat(path)) return fail("warm"); /* page cache warm */

  const char *names[] = {"read() of the file (cat floor), 1 thread",
                         "h5io_dset_read -> float32 (HDF5)", "h5direct_read -> float32, 1 thread",
                         "h5direct_read -> float32, T threads"};
  double best[4] = {1e30, 1e30, 1e30, 1e30};
  for (int rep = 0; rep < 3; rep++) {
    for (int k = 0; k < 4; k++) {
      t0 = now();
      ec_status s = k == 0   ? run_cat(path)
                    : k == 1 ? run_h5io(&j, out)
                             : run_direct(&j, k == 2 ? 1 : ncpu);
      double dt = now() - t0;
      if (s) return fail(names[k]);
      if (dt < best[k]) best[k] = dt;
    }
  }
  printf("\n%-46s %8s %8s %9s\n", "what (page cache warm, best of 3)", "seconds", "GB/s",
         "vs floor");
  for (int k = 0; k < 4; k++) {
    char label[96];
    snprintf(label, sizeof label, "%s", names[k]);
    if (k == 3) snprintf(label, sizeof label, "h5direct_read -> float32, %d threads", ncpu);
    printf("%-46s %8.3f %8.2f %8.2fx\n", label, best[k], gb / best[k], best[k] / best[0]);
  }

  /* Fletcher-32 alone, 1 MiB in cache: each kernel the CPU has, then the plain loop. */
  enum { FL_BYTES = 1 << 20, FL_REPS = 512 };
  uint8_t *buf = malloc(FL_BYTES);
  if (!buf) return 1;
  for (size_t i = 0; i < FL_BYTES; i++) buf[i] = (uint8_t)(i * 2654435761u >> 13);
  const uint32_t want = plain_fletcher32(buf, FL_BYTES);
  const char *kname[] = {"portable C", "AVX2", "AVX-512"};
  unsigned have = h5direct_fletcher32_kernels();
  for (unsigned k = 0; k <= 3; k++) {
    unsigned kernel = 1u << k;
    if (k < 3 && !(have & kernel)) continue;
    double best_fl = 1e30;
    for (int rep = 0; rep < 3; rep++) {
      uint32_t got = 0;
      t0 = now();
      for (int r = 0; r < FL_REPS; r++)
        got = k < 3 ? h5direct_fletcher32_kernel(kernel, buf, FL_BYTES)
                    : plain_fletcher32(buf, FL_BYTES);
      double dt = now() - t0;
      if (dt < best_fl) best_fl = dt;
      if (got != want) {
        fprintf(stderr, "bench_h5direct: Fletcher-32 kernels disagree\n");
        return 1;
      }
    }
    char label[96];
    snprintf(label, sizeof label, "Fletcher-32 alone (1 MiB in cache), %s",
             k < 3 ? kname[k] : "plain loop");
    printf("%-46s %8.3f %8.2f\n", label, best_fl, (double)FL_BYTES * FL_REPS / 1e9 / best_fl);
  }
  free(buf);

  for (int i = 0; i < nt; i++) {
    h5direct_unmap(&t[i].m);
    h5io_dset_close(&t[i].d);
  }
  h5io_file_close(&f);
  close(j.fd);
  ec_freep(&out);
  free(t);
  free(j.item_tensor);
  free(j.item_extent);
  if (getenv("EDM2C_KEEP_TMP")) {
    printf("kept %s\n", path);
  } else {
    unlink(path);
    rmdir(dir);
  }
  return 0;
}
