/* edm2-train: the EDM2 trainer's command line.
 *
 *   edm2-train --preset NAME --describe [--uncond] [--config JSON] [--json]
 *   edm2-train --list-presets [--json]
 *
 * --describe prints the network of a preset (or of a model file's configuration): every
 * state-dict tensor with its shape, the parameter count and the Gflops of one evaluation,
 * counted as the reference's count_flops.py counts them (edm2-spec.md §5). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "edm2c_config.h"
#include "trainer/arch.h"
#include "trainer/netconfig.h"

enum { OPT_PRESET, OPT_DESCRIBE, OPT_UNCOND, OPT_CONFIG, OPT_JSON, OPT_LIST_PRESETS, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"preset", 1, OPT_PRESET, "NAME",
     "network and training preset: img512-xxs ... img512-xxl, img64-xs ... img64-xl (the paper's; "
     "an 'edm2-' prefix is accepted), fmnist, test-tiny, test-micro (--list-presets shows them)"},
    {"describe", 0, OPT_DESCRIBE, NULL,
     "print the network: every state-dict tensor and its shape, the number of trainable "
     "parameters and the Gflops (multiply-adds) of one evaluation at batch 1"},
    {"uncond", 0, OPT_UNCOND, NULL, "the unconditional variant (label_dim = 0)"},
    {"config", 1, OPT_CONFIG, "JSON",
     "override network arguments, named as the reference's constructor arguments, e.g. "
     "'{\"model_channels\": 96, \"dropout\": 0.1}'"},
    {"json", 0, OPT_JSON, NULL,
     "machine-readable output: {\"preset\", \"config\", \"params\", \"gflops\", \"flops\", "
     "\"tensors\": [{\"name\", \"kind\", \"shape\"}]}"},
    {"list-presets", 0, OPT_LIST_PRESETS, NULL, "list the presets"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = "edm2-train",
    .synopsis = "--preset NAME --describe [--uncond] [--config JSON] [--json]\n--list-presets [--json]",
    .description =
        "Trains the EDM2 network (Karras et al., CVPR 2024). This version describes networks; "
        "training itself arrives with the trainer (docs/ lists what exists).",
    .opts = options,
};

static ec_status list_presets(int json) {
  if (json) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < edm2_preset_count(); i++) {
      const edm2_preset *p = edm2_preset_at(i);
      edm2_arch a;
      ec_status st = edm2_arch_init(&a, &p->net);
      if (st) {
        cJSON_Delete(arr);
        return st;
      }
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", p->name);
      cJSON_AddStringToObject(o, "about", p->about);
      cJSON_AddNumberToObject(o, "params", (double)a.n_params);
      cJSON_AddNumberToObject(o, "gflops", edm2_arch_flops(&a) / 1e9);
      cJSON_AddItemToArray(arr, o);
      edm2_arch_free(&a);
    }
    char *s = cJSON_Print(arr);
    cJSON_Delete(arr);
    if (!s) return ec_err(EC_ENOMEM, "out of memory");
    puts(s);
    free(s);
    return EC_OK;
  }
  printf("%-12s %15s %9s  %s\n", "preset", "parameters", "Gflops", "");
  for (int i = 0; i < edm2_preset_count(); i++) {
    const edm2_preset *p = edm2_preset_at(i);
    edm2_arch a;
    ec_status st = edm2_arch_init(&a, &p->net);
    if (st) return st;
    printf("%-12s %15lld %9.2f  %s\n", p->name, (long long)a.n_params, edm2_arch_flops(&a) / 1e9, p->about);
    edm2_arch_free(&a);
  }
  return EC_OK;
}

static ec_status describe(const char *preset, const edm2_netcfg *cfg, int json) {
  edm2_arch a;
  ec_status st = edm2_arch_init(&a, cfg);
  if (st) return st;
  double flops = edm2_arch_flops(&a);
  char *cfg_json = edm2_netcfg_to_json(cfg);
  if (!cfg_json) {
    edm2_arch_free(&a);
    return ec_err(EC_ENOMEM, "out of memory");
  }
  char shape[96];
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "preset", preset);
    cJSON_AddItemToObject(o, "config", cJSON_Parse(cfg_json));
    cJSON_AddNumberToObject(o, "params", (double)a.n_params);
    cJSON_AddNumberToObject(o, "gflops", flops / 1e9);
    cJSON_AddNumberToObject(o, "flops", flops);
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < a.n_tensors; i++) {
      const edm2_tensor *t = &a.tensors[i];
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "name", t->name);
      cJSON_AddStringToObject(e, "kind", t->kind == EDM2_PARAM ? "param" : "buffer");
      int dims[4];
      for (int d = 0; d < t->ndim; d++) dims[d] = (int)t->shape[d];
      cJSON_AddItemToObject(e, "shape", cJSON_CreateIntArray(dims, t->ndim));
      cJSON_AddItemToArray(ts, e);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (s) puts(s);
    free(s);
  } else {
    printf("# preset %s\n# config %s\n", preset, cfg_json);
    printf("# kind  name  shape  numel (P = trainable parameter, B = buffer)\n");
    for (int i = 0; i < a.n_tensors; i++) {
      const edm2_tensor *t = &a.tensors[i];
      printf("%c  %s  %s  %lld\n", t->kind == EDM2_PARAM ? 'P' : 'B', t->name,
             edm2_tensor_shape_str(t, shape, sizeof shape), (long long)t->numel);
    }
    int64_t head = a.tensors[a.logvar_linear].numel;
    printf("# trainable parameters: %lld  (U-Net %lld + uncertainty head %lld)\n", (long long)a.n_params,
           (long long)(a.n_params - head), (long long)head);
    printf("# buffer elements: %lld\n", (long long)a.n_buffer_elems);
    printf("# Gflops per evaluation: %.2f  (%.0f multiply-adds at batch 1, count_flops.py rules)\n",
           flops / 1e9, flops);
  }
  free(cfg_json);
  edm2_arch_free(&a);
  return EC_OK;
}

int main(int argc, char **argv) {
  const char *preset = NULL, *config = NULL, *arg;
  int do_describe = 0, uncond = 0, json = 0, do_list = 0;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_PRESET: preset = arg; break;
    case OPT_DESCRIBE: do_describe = 1; break;
    case OPT_UNCOND: uncond = 1; break;
    case OPT_CONFIG: config = arg; break;
    case OPT_JSON: json = 1; break;
    case OPT_LIST_PRESETS: do_list = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf("edm2-train %s\n", EDM2C_VERSION); return 0;
    default: return 2;
    }
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (do_list) {
    st = list_presets(json);
  } else if (!do_describe) {
    return ec_exit_code(ec_cli_usage(&cli, "nothing to do: give --describe or --list-presets "
                                           "(training is not implemented yet)"));
  } else if (!preset) {
    return ec_exit_code(ec_cli_usage(&cli, "--describe needs --preset NAME"));
  } else {
    const edm2_preset *p;
    edm2_netcfg cfg;
    if (!(st = edm2_preset_get(preset, &p))) {
      cfg = p->net;
      if (uncond) cfg.label_dim = 0;
      if (config) st = edm2_netcfg_apply_json(&cfg, config, "--config", 1);
      if (!st) st = describe(p->name, &cfg, json);
    }
  }
  if (st) fprintf(stderr, "edm2-train: %s\n", ec_errmsg());
  return ec_exit_code(st);
}
