/* Status codes and thread-local error messages; see status.h. */
#include "status.h"

#include <stdio.h>
#include <string.h>

enum { EC_ERRMSG_MAX = 2048 };

static _Thread_local char errmsg[EC_ERRMSG_MAX];

ec_status ec_verr(ec_status code, const char *fmt, va_list ap) {
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  return code;
}

ec_status ec_err(ec_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ec_verr(code, fmt, ap);
  va_end(ap);
  return code;
}

ec_status ec_err_context(ec_status code, const char *fmt, ...) {
  /* Room for both parts so that snprintf never truncates; the result is cut to fit below. */
  char prefix[EC_ERRMSG_MAX], joined[2 * EC_ERRMSG_MAX + 4];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  snprintf(joined, sizeof joined, "%s: %s", prefix, errmsg[0] ? errmsg : ec_strerror(code));
  size_t n = strnlen(joined, sizeof errmsg - 1);
  memcpy(errmsg, joined, n);
  errmsg[n] = '\0';
  return code;
}

const char *ec_errmsg(void) { return errmsg; }

void ec_err_clear(void) { errmsg[0] = '\0'; }

const char *ec_status_name(ec_status code) {
  switch (code) {
  case EC_OK: return "EC_OK";
  case EC_ENOMEM: return "EC_ENOMEM";
  case EC_EIO: return "EC_EIO";
  case EC_EINVAL: return "EC_EINVAL";
  case EC_EFORMAT: return "EC_EFORMAT";
  case EC_ECHECKSUM: return "EC_ECHECKSUM";
  case EC_ENOENT: return "EC_ENOENT";
  case EC_EEXIST: return "EC_EEXIST";
  case EC_EHDF5: return "EC_EHDF5";
  case EC_EUSAGE: return "EC_EUSAGE";
  case EC_EINTR: return "EC_EINTR";
  case EC_ENOSPC: return "EC_ENOSPC";
  case EC_ECUDA: return "EC_ECUDA";
  case EC_ESINGULAR: return "EC_ESINGULAR";
  }
  return "EC_UNKNOWN";
}

const char *ec_strerror(ec_status code) {
  switch (code) {
  case EC_OK: return "success";
  case EC_ENOMEM: return "out of memory";
  case EC_EIO: return "input/output error";
  case EC_EINVAL: return "invalid value";
  case EC_EFORMAT: return "bad file format";
  case EC_ECHECKSUM: return "checksum mismatch";
  case EC_ENOENT: return "not found";
  case EC_EEXIST: return "already exists";
  case EC_EHDF5: return "HDF5 error";
  case EC_EUSAGE: return "usage error";
  case EC_EINTR: return "interrupted";
  case EC_ENOSPC: return "no space left (disk full or file size limit)";
  case EC_ECUDA: return "CUDA error";
  case EC_ESINGULAR: return "singular system";
  }
  return "unknown error";
}

int ec_exit_code(ec_status code) {
  switch (code) {
  case EC_OK: return 0;
  case EC_EUSAGE: return 2;
  case EC_EINTR: return 130;
  default: return 1;
  }
}
