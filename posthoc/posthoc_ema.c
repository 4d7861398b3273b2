/* posthoc-ema: post-hoc EMA for EDM2 training runs.
 *
 *   posthoc-ema --list [--snapshots DIR] [--json] [--quick]
 *
 * Run it in a training run directory. This file parses the command line and dispatches; each
 * mode lives in its own cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "core/atomic.h"
#include "core/cli.h"
#include "edm2c_config.h"
#include "posthoc/cmd_list.h"

enum { OPT_LIST, OPT_SNAPSHOTS, OPT_JSON, OPT_QUICK, OPT_QUIET, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"list", 0, OPT_LIST, NULL,
     "list the snapshots (time, profiles, tensors, parameters, dtype, size) and check them: "
     "every snapshot must hold the same profiles, tensor names, shapes and buffers; times must be "
     "unique; every dataset is read, so checksums are verified and NaN/Inf are found. Exits 1 on "
     "any error"},
    {"snapshots", 1, OPT_SNAPSHOTS, "DIR",
     "snapshot directory (default: ./snapshots if it exists, else .)"},
    {"json", 0, OPT_JSON, NULL,
     "print JSON on stdout: {\"directory\", \"snapshots\": [{\"file\", \"nimg\", \"profiles\", "
     "\"tensors\", \"params\", \"dtype\", \"bytes\", \"usable\"}], \"problems\": [{\"severity\", "
     "\"file\", \"tensor\", \"message\"}]}"},
    {"quick", 0, OPT_QUICK, NULL, "with --list: read metadata only (no checksum verification)"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static const char description[] =
    "Post-hoc EMA (Karras et al., EDM2, CVPR 2024, section 3): the trainer stores snapshots of two "
    "power-function EMAs (sigma_rel 0.05 and 0.10) as HDF5 files snapshots/snapshot-<nimg>.h5; "
    "this tool checks them and (in later versions) reconstructs models of any EMA length.\n"
    "Problems are printed on stderr, one line each, naming the file and tensor. Exit status: 0 ok, "
    "1 bad input (a problem with the snapshots), 2 usage error.";

int main(int argc, char **argv) {
  ec_cli cli = {.prog = "posthoc-ema",
                .synopsis = "--list [--snapshots DIR] [--json] [--quick] [--quiet]",
                .description = description,
                .opts = options};
  list_args la = {0};
  int list = 0;
  const char *arg;
  ec_atomic_install_signal_cleanup();
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_LIST: list = 1; break;
    case OPT_SNAPSHOTS: la.snapshots = arg; break;
    case OPT_JSON: la.json = 1; break;
    case OPT_QUICK: la.quick = 1; break;
    case OPT_QUIET: la.quiet = 1; break;
    case OPT_VERSION: printf("posthoc-ema (edm2c) %s\n", EDM2C_VERSION); return 0;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    default: return 2;
    }
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (!list) return ec_exit_code(ec_cli_usage(&cli, "nothing to do: give --list"));
  return cmd_list(&la, stdout, stderr);
}
