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

#endif
