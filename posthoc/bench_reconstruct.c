/* Benchmark of the reconstruction engine (not a test; results in docs/performance.md).
 *
 *   bench_reconstruct --snapshots DIR [--k 1,8,32,128] [--baseline 8,32,49] [--threads N]
 *                     [--dtype float32|float16] [--tmp DIR]
 *
 * Measures, in one run on the same data:
 *   - the read floor: every snapshot file read once with read() (as `cat` to /dev/null) after a
 *     warming read, so the page cache holds what fits;
 *   - posthoc-ema's engine for each K of --k (targets spread over sigma_rel 0.05 .. 0.25), in a
 *     child process so that its peak RSS is its own;
 *   - EDM2's algorithm for each K of --baseline: targets in batches of 8 (numpy array_split),
 *     every snapshot re-read in full for each batch and accumulated tensor by tensor in float32,
 *     as reconstruct_phema.py does, with our readers and writers.
 * Every run writes real output files into a scratch directory that is emptied afterwards. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "core/pool.h"
#include "posthoc/model.h"
#include "posthoc/reconstruct.h"
#include "posthoc/snapshot.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void empty_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[4200];
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  if (d) closedir(d);
}

/* Reads every snapshot file once; returns seconds. */
static double read_floor(const snapdir *d, int64_t *bytes) {
  enum { BUF = 1 << 20 };
  char *buf = malloc(BUF);
  double t = now();
  *bytes = 0;
  for (int i = 0; i < d->n; i++) {
    int fd = open(d->entries[i].path, O_RDONLY);
    ssize_t r;
    while (fd >= 0 && (r = read(fd, buf, BUF)) > 0) *bytes += r;
    if (fd >= 0) close(fd);
  }
  t = now() - t;
  free(buf);
  return t;
}

/* "0.05,...": K values spread evenly over [0.05, 0.25]. */
static char *sigma_list(int K) {
  size_t cap = (size_t)K * 24 + 8;
  char *s = malloc(cap);
  size_t len = 0;
  s[0] = 0;
  for (int k = 0; k < K; k++)
    len += (size_t)snprintf(s + len, cap - len, k ? ",%.6f" : "%.6f", K == 1 ? 0.13 : 0.05 + 0.2 * k / (K - 1));
  return s;
}

typedef struct {
  double seconds;
  long peak_kib;
  int ok;
} result;

/* Runs fn in a child; its wall time and peak RSS. */
static result in_child(int (*fn)(void *), void *arg) {
  result r = {0, 0, 0};
  fflush(NULL);
  double t = now();
  pid_t pid = fork();
  if (pid == 0) _exit(fn(arg));
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  r.seconds = now() - t;
  r.peak_kib = ru.ru_maxrss;
  r.ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  return r;
}

typedef struct {
  const char *snapshots, *out;
  int K, threads;
  ec_dtype dtype;
} job;

static int run_engine(void *v) {
  job *j = v;
  recon_args a;
  recon_args_init(&a);
  a.plan.snapshots = j->snapshots;
  char *sig = sigma_list(j->K);
  a.plan.sigma_rel = sig;
  a.out_dir = j->out;
  a.quiet = 1;
  a.out_dtype = j->dtype;
  if (j->threads > 0) a.threads = j->threads;
  plan p;
  recon_report r;
  ec_status s = reconstruct(&a, &p, &r, stderr);
  if (s) fprintf(stderr, "engine: %s\n", ec_errmsg());
  recon_report_free(&r);
  plan_free(&p);
  free(sig);
  return s ? 1 : 0;
}

/* EDM2's reconstruct_phema.py loop with our I/O: batches of at most 8 targets (array_split),
 * each batch re-reads every input in full and accumulates tensor by tensor in float32. */
static int run_edm2(void *v) {
  job *j = v;
  recon_args a;
  recon_args_init(&a);
  a.plan.snapshots = j->snapshots;
  char *sig = sigma_list(j->K);
  a.plan.sigma_rel = sig;
  plan p;
  ec_status s = plan_build(&p, &a.plan);
  if (s) {
    fprintf(stderr, "edm2: %s\n", ec_errmsg());
    return 1;
  }
  int K = p.nmain, N = p.ninputs, nb = (K + 7) / 8;
  snap_file ref;
  if (snap_open(&ref, p.dir.entries[p.inputs[N - 1].snap].path)) return 1;
  int64_t params = snap_param_count(&ref);
  for (int b = 0; b < nb && !s; b++) {
    /* array_split: the first K % nb batches get one more */
    int k0 = b * (K / nb) + (b < K % nb ? b : K % nb), kn = K / nb + (b < K % nb);
    float **acc = calloc((size_t)kn, sizeof *acc);
    for (int k = 0; k < kn; k++) acc[k] = calloc((size_t)params, sizeof **acc);
    float *t = malloc((size_t)params * sizeof *t);
    for (int i = 0; i < N && !s; i++) { /* each input pickle: load it whole, add it to every output */
      snap_file f;
      if ((s = snap_open(&f, p.dir.entries[p.inputs[i].snap].path))) break;
      int prof = snap_find_profile(&f, p.inputs[i].sigma_rel);
      int64_t off = 0;
      for (int tt = 0; tt < ref.ntensors && !s; tt++) {
        int64_t n = ref.tensors[tt].numel;
        s = snap_read(&f, prof, snap_find_tensor(&f, ref.tensors[tt].name), 0, n, t + off);
        for (int k = 0; k < kn && !s; k++) {
          float x = (float)p.x[(size_t)i * (size_t)p.ntargets + (size_t)(k0 + k)];
          for (int64_t e = 0; e < n; e++) acc[k][off + e] += t[off + e] * x;
        }
        off += n;
      }
      snap_close(&f);
    }
    for (int k = 0; k < kn && !s; k++) { /* save each output */
      char path[4200];
      snprintf(path, sizeof path, "%s/edm2-%d.h5", j->out, k0 + k);
      model_writer *w;
      model_meta mm = {p.at, ref.preset, ref.config, "{}", j->dtype};
      if ((s = model_writer_open(&w, path, &mm, 0))) break;
      int64_t off = 0;
      for (int tt = 0; tt < ref.ntensors && !s; tt++) {
        s = model_writer_add_param(w, ref.tensors[tt].name, &ref.tensors[tt].shape, EC_F32, acc[k] + off);
        off += ref.tensors[tt].numel;
      }
      if (s)
        model_writer_abort(&w);
      else
        s = model_writer_close(&w);
    }
    for (int k = 0; k < kn; k++) free(acc[k]);
    free(acc);
    free(t);
  }
  if (s) fprintf(stderr, "edm2: %s\n", ec_errmsg());
  snap_close(&ref);
  plan_free(&p);
  free(sig);
  return s ? 1 : 0;
}

static int parse_ints(const char *s, int *v, int max) {
  int n = 0;
  char *copy = strdup(s), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) v[n++] = atoi(t);
  free(copy);
  return n;
}

int main(int argc, char **argv) {
  const char *snapshots = NULL, *tmp = NULL, *klist = "1,8,32,128", *blist = "8,32,49";
  int threads = 0;
  ec_dtype dtype = EC_F32;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--snapshots")) snapshots = argv[i + 1];
    else if (!strcmp(argv[i], "--k")) klist = argv[i + 1];
    else if (!strcmp(argv[i], "--baseline")) blist = argv[i + 1];
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--tmp")) tmp = argv[i + 1];
    else if (!strcmp(argv[i], "--dtype")) dtype = strcmp(argv[i + 1], "float16") ? EC_F32 : EC_F16;
    else {
      fprintf(stderr, "usage: see the comment at the top of posthoc/bench_reconstruct.c\n");
      return 2;
    }
  }
  if (!snapshots) {
    fprintf(stderr, "bench_reconstruct: --snapshots DIR is required\n");
    return 2;
  }
  char outdir[4200];
  snprintf(outdir, sizeof outdir, "%s/edm2c-bench-out-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(outdir)) return 1;
  snapdir d;
  if (snapdir_scan(&d, snapshots)) {
    fprintf(stderr, "%s\n", ec_errmsg());
    return 1;
  }
  snap_file f;
  if (d.n == 0 || snap_open(&f, d.entries[d.n - 1].path)) return 1;
  int64_t params = snap_param_count(&f);
  int nprof = f.nprofiles;
  snap_close(&f);
  char model[256];
  ec_cpu_model(model, sizeof model);
  int64_t bytes;
  read_floor(&d, &bytes); /* warm */
  double floor = read_floor(&d, &bytes);
  char b1[32];
  printf("machine: %s, %ld cores; threads %d\n", model, sysconf(_SC_NPROCESSORS_ONLN), threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
  printf("data: %s: %d snapshots x %d profiles = %d stored, %lld parameters each, %s\n", snapshots, d.n, nprof,
         d.n * nprof, (long long)params, ec_format_bytes(b1, sizeof b1, (double)bytes));
  printf("read floor (read() of every file, page cache warm where it fits): %.2f s, %.2f GB/s\n\n", floor,
         (double)bytes / floor / 1e9);
  printf("%-8s %5s %9s %9s %9s %12s\n", "method", "K", "seconds", "GB/s", "x floor", "peak RSS");
  int ks[16], nk = parse_ints(klist, ks, 16), bs[16], nbase = parse_ints(blist, bs, 16);
  double engine_s[16] = {0};
  for (int i = 0; i < nk; i++) {
    job j = {snapshots, outdir, ks[i], threads, dtype};
    result r = in_child(run_engine, &j);
    empty_dir(outdir);
    engine_s[i] = r.seconds;
    printf("%-8s %5d %9.2f %9.2f %8.2fx %9.1f MiB%s\n", "edm2c", ks[i], r.seconds, (double)bytes / r.seconds / 1e9,
           r.seconds / floor, r.peak_kib / 1024.0, r.ok ? "" : "  FAILED");
    fflush(stdout);
  }
  for (int i = 0; i < nbase; i++) {
    job j = {snapshots, outdir, bs[i], threads, dtype};
    result r = in_child(run_edm2, &j);
    empty_dir(outdir);
    double mine = 0;
    for (int q = 0; q < nk; q++)
      if (ks[q] == bs[i]) mine = engine_s[q];
    if (mine == 0) { /* measure the engine at this K too, for the ratio */
      job e = {snapshots, outdir, bs[i], threads, dtype};
      result re = in_child(run_engine, &e);
      empty_dir(outdir);
      mine = re.seconds;
      printf("%-8s %5d %9.2f %9.2f %8.2fx %9.1f MiB%s\n", "edm2c", bs[i], re.seconds, (double)bytes / re.seconds / 1e9,
             re.seconds / floor, re.peak_kib / 1024.0, re.ok ? "" : "  FAILED");
    }
    printf("%-8s %5d %9.2f %9.2f %8.2fx %9.1f MiB%s   speed-up of edm2c: %.1fx\n", "EDM2", bs[i], r.seconds,
           (double)bytes / r.seconds / 1e9, r.seconds / floor, r.peak_kib / 1024.0, r.ok ? "" : "  FAILED",
           r.seconds / mine);
    fflush(stdout);
  }
  rmdir(outdir);
  snapdir_free(&d);
  return 0;
}
