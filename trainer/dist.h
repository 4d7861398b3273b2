/* Data-parallel communication for the trainer: K processes, each with a rank in [0, K), sum
 * their gradients and agree on their status. Built on MPI when meson finds it (EDM2C_HAVE_MPI in
 * edm2c_config.h); the CUDA backend will put NCCL behind the same calls. Without MPI, or when the
 * program was not started by an MPI launcher, world is 1 and every call returns at once.
 *
 *   edm2_dist d;
 *   edm2_dist_init(&d, &argc, &argv);          // MPI_Init only under mpirun (or srun, mpiexec)
 *   edm2_dist_allreduce_sum_f32(&d, grads, n);  // in place, on every rank
 *   edm2_dist_bcast_status(&d, &st, 0);         // rank 0's status and message, everywhere
 *   edm2_dist_finalize(&d);
 *
 * Every call is collective: all ranks make the same calls in the same order. Calls come from one
 * thread (the one that called init). */
#ifndef EDM2C_TRAINER_DIST_H
#define EDM2C_TRAINER_DIST_H

#include <stddef.h>

#include "core/status.h"

typedef struct {
  int rank, world;
  int mpi; /* MPI was initialised here (finalize ends it) */
} edm2_dist;

/* One process, no communication: what a program gets without MPI. */
#define EDM2_DIST_SINGLE ((edm2_dist){.rank = 0, .world = 1, .mpi = 0})

/* Detects an MPI launcher from its environment (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE, ...)
 * and initialises MPI only then, so a plain single-process start never touches MPI. A build
 * without MPI started by a launcher with several processes is refused (EC_EINVAL): they would
 * each train the whole run into the same directory. On failure d is EDM2_DIST_SINGLE with the
 * launcher's rank, so that only rank 0 prints the message. */
ec_status edm2_dist_init(edm2_dist *d, int *argc, char ***argv);

/* In-place sums / maxima over all ranks (identical results on every rank). */
ec_status edm2_dist_allreduce_sum_f32(const edm2_dist *d, float *buf, size_t n);
ec_status edm2_dist_allreduce_sum_f64(const edm2_dist *d, double *buf, size_t n);
ec_status edm2_dist_allreduce_max_int(const edm2_dist *d, int *buf, size_t n);

/* Makes root's *st, and its error message (ec_errmsg) when *st is not EC_OK, those of every rank.
 * Returns the agreed status. */
ec_status edm2_dist_bcast_status(const edm2_dist *d, ec_status *st, int root);

/* Every rank's verdict on a step that each rank did on its own: EC_OK when all succeeded,
 * otherwise the status and message of the lowest failing rank, on every rank. */
ec_status edm2_dist_agree(const edm2_dist *d, ec_status st);

/* Ends MPI (when init started it); d becomes EDM2_DIST_SINGLE. */
void edm2_dist_finalize(edm2_dist *d);

#endif
