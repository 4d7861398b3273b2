/* Assertions for programming errors (a broken contract, never bad user input). They stay on in
 * every build type and abort with file:line and the failed expression, as GGML_ASSERT does. */
#ifndef EDM2C_CORE_CHECK_H
#define EDM2C_CORE_CHECK_H

_Noreturn void ec_abort_at(const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define EC_ASSERT(cond)                                                                            \
  do {                                                                                             \
    if (!(cond)) ec_abort_at(__FILE__, __LINE__, __func__, "assertion failed: %s", #cond);        \
  } while (0)

#define EC_ASSERTF(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) ec_abort_at(__FILE__, __LINE__, __func__, __VA_ARGS__);                          \
  } while (0)

#define EC_ABORT(...) ec_abort_at(__FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
