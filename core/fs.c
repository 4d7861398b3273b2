/* File-system helpers; see fs.h. */
#define _GNU_SOURCE /* sync_file_range */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"

void ec_start_writeback(int fd) {
#ifdef SYNC_FILE_RANGE_WRITE
  if (fd >= 0) (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
#endif
}

int ec_open_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory stream's own */
}

int ec_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

ec_status ec_mkdirs(const char *path) {
  char *p = ec_strdup(path);
  if (!p) return EC_ENOMEM;
  ec_status s = EC_OK;
  size_t n = strlen(p);
  /* Create each prefix ending at a '/', then the whole path. */
  for (size_t i = 1; i <= n && !s; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char save = p[i];
    p[i] = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
      s = ec_err(EC_EIO, "cannot create directory %s: %s", p, strerror(errno));
    else if (!ec_is_dir(p))
      s = ec_err(EC_EIO, "cannot create directory %s: a file of that name exists", p);
    p[i] = save;
  }
  ec_freep(&p);
  return s;
}
