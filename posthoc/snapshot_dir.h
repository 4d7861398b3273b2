/* A directory of snapshots: listing in time order, and validation of the whole set.
 *
 * Only complete snapshots count: files named exactly snapshot-<12 digits>.h5. A leftover
 * `snapshot-….h5.tmp` from a writer that crashed is ignored (and reported as a warning). The
 * checks find everything the reconstruction relies on: every snapshot opens, has the same
 * profiles, tensor names, shapes and buffers; times are unique and agree with the file names;
 * optionally every byte of data is read, so checksums are verified and non-finite values found. */
#ifndef EDM2C_POSTHOC_SNAPSHOT_DIR_H
#define EDM2C_POSTHOC_SNAPSHOT_DIR_H

#include <stdint.h>

#include "core/status.h"
#include "posthoc/snapshot.h"

typedef struct {
  char *name; /* file name */
  char *path; /* dir/name */
  int64_t nimg; /* from the name */
  int64_t bytes; /* file size */
} snapdir_entry;

typedef struct {
  char *dir;
  int n;
  snapdir_entry *entries; /* sorted by nimg */
  int nstale;
  char **stale; /* names of leftover .tmp files */
} snapdir;

/* The default snapshot directory: ./snapshots when it exists, else ".". */
const char *snapdir_default(void);

/* Lists `dir`. A missing or unreadable directory is an error; an empty one is not (the caller
 * decides; snapdir_check reports it). */
ec_status snapdir_scan(snapdir *d, const char *dir);
void snapdir_free(snapdir *d);

/* Notes are facts --list reports that need no action (the snapshot a training run writes at
 * nimg = 0); the reconstruction commands do not repeat them. */
typedef enum { SNAP_WARNING = 0, SNAP_ERROR = 1, SNAP_NOTE = 2 } snap_severity;

typedef struct {
  snap_severity severity;
  char *file;    /* file name, or NULL for the directory */
  char *tensor;  /* "/ema/0.050/<name>" or NULL */
  char *message; /* one line, already naming file and tensor */
} snap_problem;

typedef struct {
  int n, cap;
  snap_problem *items;
  int errors, warnings;
} snap_problems;

void snap_problems_free(snap_problems *p);

/* What --list shows for one snapshot. */
typedef struct {
  const snapdir_entry *entry;
  int opened;      /* the file opened and its structure is sound */
  int usable;      /* opened, consistent with the set, nimg > 0 and no data errors */
  int64_t nimg;    /* from the attribute when opened */
  int nprofiles;
  double *sigma_rel; /* nprofiles values */
  int ntensors;
  int64_t params;  /* per profile */
  char dtype[16];  /* "float16", "float32", "mixed" */
  snap_file *file; /* with SNAPDIR_MAP, when opened: its tables, dataset maps and buffer hashes
                      (the HDF5 handle is closed) */
} snap_summary;

enum {
  SNAPDIR_CHECK_DATA = 1, /* read every dataset: verifies checksums, finds NaN/Inf */
  SNAPDIR_MAP = 2         /* keep each snapshot's tables and dataset maps (snap_open_flags) */
};

/* Progress callback for data checks: bytes of the current directory verified so far. */
typedef void (*snapdir_progress_fn)(void *ctx, int64_t bytes_done, int64_t bytes_total);

/* Checks every snapshot of `d`. Fills one summary per entry (free with snap_summaries_free) and
 * appends problems. Returns EC_OK when the check ran (problems are data, not failures), or an
 * error for a failure of the checking itself (out of memory). */
ec_status snapdir_check(const snapdir *d, unsigned flags, snap_summary **summaries,
                        snap_problems *problems, snapdir_progress_fn progress, void *ctx);
void snap_summaries_free(snap_summary **s, int n);

#endif
