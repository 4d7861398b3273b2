/* Data-parallel communication (dist.h): MPI when built with it, one process otherwise. */
#include "trainer/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edm2c_config.h"

#if EDM2C_HAVE_MPI
#include <mpi.h>
#endif

/* The environment an MPI launcher gives its processes: Open MPI's mpirun, PMIx launchers
 * (Open MPI 5, srun --mpi=pmix) and Hydra (MPICH's mpiexec, srun --mpi=pmi2). Returns whether
 * one is present; *size is the number of processes (0 when the launcher does not say) and *rank
 * this process's rank (0 when unknown). */
static int env_int(const char *name, int *v) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  long x = strtol(s, &end, 10);
  if (*end || x < 0 || x > INT_MAX) return 0;
  *v = (int)x;
  return 1;
}

static int launched(int *size, int *rank) {
  *size = 0;
  *rank = 0;
  int found = env_int("OMPI_COMM_WORLD_SIZE", size) | env_int("PMI_SIZE", size);
  found |= env_int("OMPI_COMM_WORLD_RANK", rank) | env_int("PMI_RANK", rank) | env_int("PMIX_RANK", rank);
  return found;
}

#if EDM2C_HAVE_MPI

static ec_status mpi_err(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(rc, msg, &n) != MPI_SUCCESS) n = 0;
  msg[n] = 0;
  return ec_err(EC_EIO, "%s failed: %s", what, n ? msg : "MPI error");
}

ec_status edm2_dist_init(edm2_dist *d, int *argc, char ***argv) {
  *d = EDM2_DIST_SINGLE;
  int size, rank;
  if (!launched(&size, &rank)) return EC_OK;
  int inited = 0, provided, rc;
  MPI_Initialized(&inited);
  /* FUNNELED: the trainer's worker threads never call MPI; the main thread does. */
  if (!inited && (rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS) {
    d->rank = rank;
    return mpi_err(rc, "MPI_Init_thread");
  }
  d->mpi = !inited;
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->world);
  return EC_OK;
}

/* MPI counts are ints: large buffers go in pieces. */
enum { CHUNK = 1 << 30 };

static ec_status allreduce(const edm2_dist *d, void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op) {
  if (!d || d->world <= 1) return EC_OK;
  for (size_t i = 0; i < n; i += CHUNK) {
    int k = (int)(n - i < CHUNK ? n - i : CHUNK);
    int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * elem, k, type, op, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Allreduce");
  }
  return EC_OK;
}

ec_status edm2_dist_allreduce_sum_f32(const edm2_dist *d, float *buf, size_t n) {
  return allreduce(d, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM);
}

ec_status edm2_dist_allreduce_sum_f64(const edm2_dist *d, double *buf, size_t n) {
  return allreduce(d, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM);
}

ec_status edm2_dist_allreduce_max_int(const edm2_dist *d, int *buf, size_t n) {
  return allreduce(d, buf, n, sizeof *buf, MPI_INT, MPI_MAX);
}

ec_status edm2_dist_bcast_status(const edm2_dist *d, ec_status *st, int root) {
  if (!d || d->world <= 1) return *st;
  char msg[2048] = "";
  int v[2] = {(int)*st, 0};
  if (d->rank == root && *st) {
    snprintf(msg, sizeof msg, "%s", ec_errmsg());
    v[1] = (int)strlen(msg) + 1;
  }
  int rc = MPI_Bcast(v, 2, MPI_INT, root, MPI_COMM_WORLD);
  if (rc == MPI_SUCCESS && v[0] && v[1] > 0) rc = MPI_Bcast(msg, v[1], MPI_CHAR, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return *st = mpi_err(rc, "MPI_Bcast");
  if (d->rank != root) {
    msg[sizeof msg - 1] = 0;
    *st = v[0] ? ec_err((ec_status)v[0], "%s", msg) : EC_OK;
  }
  return *st;
}

void edm2_dist_finalize(edm2_dist *d) {
  if (d->mpi) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
  *d = EDM2_DIST_SINGLE;
}

#else /* no MPI in this build */

ec_status edm2_dist_init(edm2_dist *d, int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  *d = EDM2_DIST_SINGLE;
  int size, rank;
  if (launched(&size, &rank) && size > 1) {
    d->rank = rank;
    return ec_err(EC_EINVAL,
                  "started by an MPI launcher with %d processes, but this program was built without MPI "
                  "(install libopenmpi-dev and run meson setup again)",
                  size);
  }
  return EC_OK;
}

ec_status edm2_dist_allreduce_sum_f32(const edm2_dist *d, float *buf, size_t n) {
  (void)d, (void)buf, (void)n;
  return EC_OK;
}

ec_status edm2_dist_allreduce_sum_f64(const edm2_dist *d, double *buf, size_t n) {
  (void)d, (void)buf, (void)n;
  return EC_OK;
}

ec_status edm2_dist_allreduce_max_int(const edm2_dist *d, int *buf, size_t n) {
  (void)d, (void)buf, (void)n;
  return EC_OK;
}

ec_status edm2_dist_bcast_status(const edm2_dist *d, ec_status *st, int root) {
  (void)d, (void)root;
  return *st;
}

void edm2_dist_finalize(edm2_dist *d) { *d = EDM2_DIST_SINGLE; }

#endif

ec_status edm2_dist_agree(const edm2_dist *d, ec_status st) {
  if (!d || d->world <= 1) return st;
  /* The lowest failing rank r as world − r (0: nobody failed), maximised. */
  int v = st ? d->world - d->rank : 0;
  ec_status cs = edm2_dist_allreduce_max_int(d, &v, 1);
  if (cs) return cs;
  if (!v) return EC_OK;
  return edm2_dist_bcast_status(d, &st, d->world - v);
}
