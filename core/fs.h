/* Small file-system helpers. */
#ifndef EDM2C_CORE_FS_H
#define EDM2C_CORE_FS_H

#include <stdint.h>

#include "status.h"

/* Creates a directory and its missing parents (mode 0777 minus umask), like `mkdir -p`. An
 * existing directory is fine; an existing non-directory is an error naming it. */
ec_status ec_mkdirs(const char *path);

/* 1 when path names a directory. */
int ec_is_dir(const char *path);

/* Starts writing an open file's dirty pages to disk without waiting for them (Linux:
 * sync_file_range), so that the fsync of a later commit finds little left to do: writers of
 * large outputs call it as they go and the disk works while they compute. Only a hint: does
 * nothing where unsupported or for fd < 0; write errors still surface at fsync. */
void ec_start_writeback(int fd);

/* Descriptors this process has open now (Linux: /proc/self/fd), or -1 where that is unknown. */
int ec_open_fd_count(void);

#endif
