/* Atomic file creation: write `name.tmp`, fsync it, rename it to `name`, fsync the directory.
 *
 * Readers never see a partial file under a final name: the rename is the completion marker.
 * A `name.tmp` left by a writer that crashed is ignored by readers (they only match final names)
 * and removed by the next ec_atomic_begin() of the same name. We remove only the stale file of
 * the name being written, never other `.tmp` files, because another process may be writing them.
 *
 *   ec_atomic a;
 *   if ((st = ec_atomic_begin(&a, "out/model.h5", EC_ATOMIC_NOCLOBBER))) return st;
 *   ... create and write a.tmp_path, close it ...
 *   st = ec_atomic_commit(&a);      // or ec_atomic_abort(&a) on any failure
 *
 * While a file is open for writing its temporary name is registered, so that
 * ec_atomic_install_signal_cleanup() can unlink it on SIGINT/SIGTERM/SIGHUP before the process
 * dies with the signal's usual status (130, 143, 129 in a shell). */
#ifndef EDM2C_CORE_ATOMIC_H
#define EDM2C_CORE_ATOMIC_H

#include "status.h"

enum {
  EC_ATOMIC_NOCLOBBER = 1 /* fail with EC_EEXIST if the final name exists (checked at begin and
                             again at commit, which then links instead of renaming) */
};

typedef struct {
  char *final_path;
  char *tmp_path;
  int flags;
  int slot; /* index in the signal-cleanup registry, -1 when not registered */
} ec_atomic;

/* Prepares to write `final_path`: checks no-clobber, removes a stale `final_path.tmp`, and
 * creates an empty `final_path.tmp` (mode 0644 minus umask) so that an unwritable directory is
 * reported now, with the path. */
ec_status ec_atomic_begin(ec_atomic *a, const char *final_path, int flags);

/* fsyncs the temporary file, renames it to the final name and fsyncs the directory. On failure
 * the temporary file is removed and the final name is untouched. Frees `a` either way. */
ec_status ec_atomic_commit(ec_atomic *a);

/* Removes the temporary file and frees `a`. Safe on a zeroed struct and after commit. */
void ec_atomic_abort(ec_atomic *a);

/* Installs SIGINT, SIGTERM and SIGHUP handlers that unlink every registered temporary file and
 * then re-raise the signal with its default action. Call once at program start. */
void ec_atomic_install_signal_cleanup(void);

/* fsyncs a file or directory by path. */
ec_status ec_fsync_path(const char *path);

#endif
