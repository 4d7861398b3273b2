/* Atomic file creation and signal-time cleanup of temporary files; see atomic.h. */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

/* Temporary paths that a signal handler may unlink. Each slot holds its own copy of the path
 * (the handler must never read memory that another thread may be freeing) and a lock-free flag,
 * set after the path is written and cleared before the slot is reused; the handler only reads
 * them, and unlink() is async-signal-safe. Slots are claimed under a mutex. */
enum { MAX_ACTIVE = 256, MAX_PATH = 1024 };
static char active_path[MAX_ACTIVE][MAX_PATH];
static _Atomic int active_used[MAX_ACTIVE];
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;

/* Returns the slot, or -1 when none is free or the path is too long: the output is then still
 * written safely, only not removed by a signal. */
static int register_tmp(const char *path) {
  if (strlen(path) >= MAX_PATH) return -1;
  int slot = -1;
  pthread_mutex_lock(&active_mu);
  for (int i = 0; i < MAX_ACTIVE && slot < 0; i++)
    if (!atomic_load(&active_used[i])) {
      memcpy(active_path[i], path, strlen(path) + 1);
      atomic_store(&active_used[i], 1);
      slot = i;
    }
  pthread_mutex_unlock(&active_mu);
  return slot;
}

static void unregister_tmp(ec_atomic *a) {
  /* tmp_path is NULL in a zeroed struct, whose slot 0 is not its own */
  if (a->tmp_path && a->slot >= 0 && a->slot < MAX_ACTIVE) {
    pthread_mutex_lock(&active_mu);
    atomic_store(&active_used[a->slot], 0);
    pthread_mutex_unlock(&active_mu);
  }
  a->slot = -1;
}

static void release(ec_atomic *a) {
  unregister_tmp(a);
  ec_freep(&a->final_path);
  ec_freep(&a->tmp_path);
}

static ec_status io_err(const char *what, const char *path) {
  int e = errno;
  return ec_err((e == ENOSPC || e == EFBIG || e == EDQUOT) ? EC_ENOSPC : EC_EIO, "%s %s: %s", what,
                path, strerror(e));
}

ec_status ec_atomic_begin(ec_atomic *a, const char *final_path, int flags) {
  memset(a, 0, sizeof *a);
  a->slot = -1;
  a->flags = flags;
  struct stat st;
  if ((flags & EC_ATOMIC_NOCLOBBER) && lstat(final_path, &st) == 0)
    return ec_err(EC_EEXIST, "%s exists; refusing to overwrite it", final_path);
  a->final_path = ec_strdup(final_path);
  a->tmp_path = ec_asprintf("%s.tmp", final_path);
  if (!a->final_path || !a->tmp_path) {
    release(a);
    return EC_ENOMEM;
  }
  if (unlink(a->tmp_path) != 0 && errno != ENOENT) {
    ec_status s = io_err("cannot remove stale temporary file", a->tmp_path);
    release(a);
    return s;
  }
  /* Registered before it exists, so that a signal arriving in between still removes it. */
  a->slot = register_tmp(a->tmp_path);
  int fd = open(a->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    ec_status s = io_err("cannot create", a->tmp_path);
    release(a);
    return s;
  }
  close(fd);
  return EC_OK;
}

ec_status ec_fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_err("cannot open", path);
  /* Some file systems refuse fsync on directories (EINVAL); that is not a durability failure we
   * can do anything about. */
  if (fsync(fd) != 0 && errno != EINVAL) {
    ec_status s = io_err("cannot fsync", path);
    close(fd);
    return s;
  }
  close(fd);
  return EC_OK;
}

/* The directory part of a path ("." when there is none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return ec_strdup(".");
  if (slash == path) return ec_strdup("/");
  return ec_asprintf("%.*s", (int)(slash - path), path);
}

ec_status ec_atomic_commit(ec_atomic *a) {
  ec_status s = ec_fsync_path(a->tmp_path);
  if (s == EC_OK) {
    if (a->flags & EC_ATOMIC_NOCLOBBER) {
      /* link() fails with EEXIST instead of replacing, closing the race between the check in
       * begin and now. */
      if (link(a->tmp_path, a->final_path) != 0)
        s = errno == EEXIST ? ec_err(EC_EEXIST, "%s appeared while it was being written; left untouched",
                                     a->final_path)
                            : io_err("cannot create", a->final_path);
      else
        unlink(a->tmp_path);
    } else if (rename(a->tmp_path, a->final_path) != 0) {
      s = io_err("cannot rename temporary file to", a->final_path);
    }
  }
  if (s != EC_OK) {
    ec_atomic_abort(a);
    return s;
  }
  unregister_tmp(a);
  char *dir = dir_of(a->final_path);
  s = dir ? ec_fsync_path(dir) : EC_ENOMEM;
  ec_freep(&dir);
  release(a);
  return s;
}

void ec_atomic_abort(ec_atomic *a) {
  if (a->tmp_path) unlink(a->tmp_path);
  release(a);
}

static void cleanup_handler(int sig) {
  for (int i = 0; i < MAX_ACTIVE; i++)
    if (atomic_load(&active_used[i])) unlink(active_path[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

void ec_atomic_install_signal_cleanup(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = cleanup_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}
