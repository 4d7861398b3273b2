/* Status codes and error messages.
 *
 * Library functions return an ec_status (0 = success, negative = failure). The function that
 * detects a failure records one human-readable line with ec_err(), naming what failed and where
 * (file, dataset, tensor). Callers higher up may prepend context with ec_err_context(). Programs
 * print ec_errmsg() once and exit with ec_exit_code(status). The message lives in thread-local
 * storage, so threads do not overwrite each other's messages. */
#ifndef EDM2C_CORE_STATUS_H
#define EDM2C_CORE_STATUS_H

#include <stdarg.h>

typedef enum {
  EC_OK = 0,
  EC_ENOMEM = -1,    /* allocation failed */
  EC_EIO = -2,       /* a system call failed while reading or writing (the message carries errno) */
  EC_EINVAL = -3,    /* bad input value: an argument, a number out of range, a malformed list */
  EC_EFORMAT = -4,   /* a file exists but its content is not what it should be */
  EC_ECHECKSUM = -5, /* stored data failed its checksum */
  EC_ENOENT = -6,    /* a file, dataset or attribute does not exist */
  EC_EEXIST = -7,    /* an output exists and would be overwritten */
  EC_EHDF5 = -8,     /* the HDF5 library failed in a way not covered above */
  EC_EUSAGE = -9,    /* wrong command-line usage (exit code 2) */
  EC_EINTR = -10,    /* interrupted by a signal */
  EC_ENOSPC = -11,   /* disk full or file size limit reached */
  EC_ECUDA = -12,    /* CUDA runtime or library failure */
  EC_ESINGULAR = -13 /* a linear system has no unique solution */
} ec_status;

/* Records the message for `code` and returns `code`, so that failures read
 * `return ec_err(EC_EFORMAT, "%s: attribute 'nimg' missing", path);`. */
ec_status ec_err(ec_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ec_status ec_verr(ec_status code, const char *fmt, va_list ap);

/* Prepends "context: " to the current message; returns `code` unchanged. */
ec_status ec_err_context(ec_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current thread's last message ("" when none). */
const char *ec_errmsg(void);
void ec_err_clear(void);

/* Short name of a code ("EC_EFORMAT") and a generic description ("bad file format"). */
const char *ec_status_name(ec_status code);
const char *ec_strerror(ec_status code);

/* Process exit code for a status: 0 ok, 2 usage, 130 interrupted, 1 anything else. */
int ec_exit_code(ec_status code);

#endif
