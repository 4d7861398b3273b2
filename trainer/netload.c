/* Loading a network from a model file, a snapshot profile or a checkpoint (see netload.h). */
#include "trainer/netload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/tensor.h"
#include "posthoc/model.h"
#include "posthoc/snapshot.h"

ec_status edm2_netcfg_from_file(hid_t file, const char *path, edm2_netcfg *cfg, char *preset,
                                size_t preset_size) {
  char *pre = NULL, *json = NULL;
  ec_status st = EC_OK;
  if (h5io_attr_exists(file, "preset") && (st = h5io_attr_read_str(file, "preset", &pre))) goto done;
  if (h5io_attr_exists(file, "config") && (st = h5io_attr_read_str(file, "config", &json))) goto done;
  if (preset) snprintf(preset, preset_size, "%s", pre ? pre : "");
  if (pre && *pre) {
    const edm2_preset *p = edm2_preset_find(pre);
    if (!p) {
      st = edm2_preset_get(pre, &p);
      st = ec_err_context(st, "%s: attribute 'preset'", path);
      goto done;
    }
    *cfg = p->net;
  } else if (json && *json) {
    edm2_netcfg_default(cfg);
  } else {
    st = ec_err(EC_EFORMAT, "%s: neither a 'preset' nor a 'config' attribute says which network this is", path);
    goto done;
  }
  if (json && *json) {
    char what[1100];
    snprintf(what, sizeof what, "%s: attribute 'config'", path);
    st = edm2_netcfg_apply_json(cfg, json, what, 0);
  } else {
    st = edm2_netcfg_check(cfg, path);
  }
done:
  ec_freep(&pre);
  ec_freep(&json);
  return st;
}

/* Names of the datasets in a group, or 0 names when the group is absent. */
static ec_status list_group(hid_t file, const char *group, char ***names, int *count) {
  *names = NULL;
  *count = 0;
  if (!h5io_exists(file, group)) return EC_OK;
  hid_t g = H5I_INVALID_HID;
  ec_status st = h5io_group_open(file, group, &g);
  if (!st) st = h5io_list(g, names, count);
  h5io_close(&g);
  return st;
}

/* Reads every tensor of `kind` from `group`, checking names and shapes both ways. */
static ec_status load_group(edm2_net *net, hid_t file, const char *path, const char *group,
                            edm2_kind kind, const edm2_load_opts *opts, edm2_load_info *info) {
  const edm2_arch *a = &net->arch;
  char **names = NULL;
  int count = 0;
  ec_status st = list_group(file, group, &names, &count);
  if (st) return ec_err_context(st, "%s", path);
  /* A tensor in the file that the network does not have. */
  for (int j = 0; j < count && !st; j++) {
    int i = edm2_arch_find(a, names[j]);
    if (i < 0 || a->tensors[i].kind != kind)
      st = ec_err(EC_EFORMAT, "%s: tensor '%s/%s' is not part of the network (%s); the file holds another configuration",
                  path, group, names[j], info->preset[0] ? info->preset : "its config attribute");
  }
  for (int i = 0; i < a->n_tensors && !st; i++) {
    const edm2_tensor *t = &a->tensors[i];
    if (t->kind != kind) continue;
    char dpath[EDM2_NAME_MAX + 64], want[96], got[96];
    snprintf(dpath, sizeof dpath, "%s/%s", group, t->name);
    if (!h5io_exists(file, dpath)) {
      st = ec_err(EC_EFORMAT, "%s: tensor '%s' is missing; the file holds another configuration", path, dpath);
      break;
    }
    h5io_dset d;
    if ((st = h5io_dset_open(file, dpath, &d))) break;
    int same = d.shape.ndim == t->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = d.shape.dims[k] == t->shape[k];
    if (!same) {
      edm2_tensor ft = {.ndim = d.shape.ndim};
      for (int k = 0; k < d.shape.ndim && k < 4; k++) ft.shape[k] = d.shape.dims[k];
      st = ec_err(EC_EFORMAT, "%s: tensor '%s' has shape %s, the network expects %s", path, dpath,
                  edm2_tensor_shape_str(&ft, got, sizeof got), edm2_tensor_shape_str(t, want, sizeof want));
      h5io_dset_close(&d);
      break;
    }
    float *dst = edm2_net_tensor(net, i);
    st = h5io_dset_read(&d, EC_F32, dst, 0, t->numel);
    h5io_dset_close(&d);
    if (st) break;
    for (int64_t k = 0; k < t->numel; k++)
      if (!isfinite(dst[k])) {
        info->nonfinite_tensors++;
        if (!opts->quiet)
          fprintf(stderr, "warning: %s: tensor '%s' holds %s (element %lld)\n", path, dpath,
                  isnan(dst[k]) ? "NaN" : "Inf", (long long)k);
        break;
      }
  }
  h5io_free_names(&names, count);
  return st;
}

ec_status edm2_net_load(edm2_net *net, const char *path, const edm2_load_opts *opts_in,
                        edm2_load_info *info_out) {
  edm2_load_opts opts = opts_in ? *opts_in : (edm2_load_opts){0};
  edm2_load_info info;
  memset(&info, 0, sizeof info);
  memset(net, 0, sizeof *net);
  hid_t file = H5I_INVALID_HID;
  char *format = NULL;
  char group[64];
  edm2_netcfg cfg;
  ec_status st = h5io_file_open(path, &file);
  if (st) return st;
  if (!h5io_attr_exists(file, "format")) {
    st = ec_err(EC_EFORMAT, "%s: no 'format' attribute: not an edm2c model, snapshot or checkpoint", path);
    goto done;
  }
  if ((st = h5io_attr_read_str(file, "format", &format))) goto done;
  snprintf(info.format, sizeof info.format, "%s", format);
  int is_snap = !strcmp(format, SNAP_FORMAT);
  if (!is_snap && strcmp(format, MODEL_FORMAT) && strcmp(format, EDM2_CHECKPOINT_FORMAT)) {
    st = ec_err(EC_EFORMAT, "%s: format '%s' is not an edm2c model, snapshot or checkpoint", path, format);
    goto done;
  }
  {
    /* Every format this reader knows is at version 1 (docs/formats.md). */
    int64_t version = 0;
    if ((st = h5io_attr_read_i64(file, "format_version", &version))) goto done;
    if (version > 1) {
      st = ec_err(EC_EFORMAT, "%s: %s format_version %lld is newer than this edm2c supports (1); upgrade edm2c",
                  path, format, (long long)version);
      goto done;
    }
    if (version < 1) {
      st = ec_err(EC_EFORMAT, "%s: invalid format_version %lld", path, (long long)version);
      goto done;
    }
  }
  if (is_snap) {
    char **profiles = NULL;
    int np = 0;
    if ((st = list_group(file, "ema", &profiles, &np))) goto done;
    if (opts.profile) {
      char *end;
      double s = strtod(opts.profile, &end);
      char key[32];
      snap_profile_key(s, key, sizeof key);
      int found = 0;
      for (int i = 0; i < np; i++) found |= !strcmp(profiles[i], key) || !strcmp(profiles[i], opts.profile);
      if (*end || end == opts.profile || !found) {
        char list[512] = "";
        for (int i = 0; i < np; i++)
          snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", profiles[i]);
        st = ec_err(EC_EINVAL, "%s: no EMA profile '%s' (the snapshot holds: %s)", path, opts.profile, list);
      } else {
        snprintf(info.profile, sizeof info.profile, "%s", key);
      }
    } else if (np == 1) {
      snprintf(info.profile, sizeof info.profile, "%s", profiles[0]);
    } else {
      char list[512] = "";
      for (int i = 0; i < np; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", profiles[i]);
      st = ec_err(EC_EINVAL, "%s: a snapshot holds several EMA profiles (%s): choose one with --profile", path,
                  np ? list : "none");
    }
    h5io_free_names(&profiles, np);
    if (st) goto done;
    snprintf(group, sizeof group, "ema/%s", info.profile);
  } else {
    if (opts.profile) {
      st = ec_err(EC_EINVAL, "%s: --profile applies to snapshots; this is a %s file", path, format);
      goto done;
    }
    snprintf(group, sizeof group, "params");
  }
  if ((st = edm2_netcfg_from_file(file, path, &cfg, info.preset, sizeof info.preset))) goto done;
  if ((st = edm2_net_init(net, &cfg))) goto done;
  if ((st = load_group(net, file, path, group, EDM2_PARAM, &opts, &info))) goto done;
  st = load_group(net, file, path, "buffers", EDM2_BUFFER, &opts, &info);
done:
  if (st) edm2_net_free(net);
  ec_freep(&format);
  h5io_close(&file);
  if (info_out) *info_out = info;
  return st;
}
