/* posthoc-ema reconstruction mode; see cmd_reconstruct.h. JSON layout: docs/formats.md. */
#include "cmd_reconstruct.h"

#include <cjson/cJSON.h>

#include "core/cli.h"
#include "posthoc/cmd_solve.h"

static void print_json(const recon_report *r, FILE *out) {
  cJSON *root = cJSON_CreateObject(), *outs = cJSON_AddArrayToObject(root, "outputs");
  for (int k = 0; k < r->noutputs; k++) {
    const recon_output *o = &r->outputs[k];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", o->path);
    cJSON_AddStringToObject(j, "target", o->label);
    cJSON_AddBoolToObject(j, "skipped", o->skipped);
    cJSON_AddNumberToObject(j, "rel_error", o->rel_error);
    cJSON_AddNumberToObject(j, "l2", o->norm2);
    cJSON_AddStringToObject(j, "method", o->method);
    cJSON_AddItemToArray(outs, j);
  }
  cJSON_AddNumberToObject(root, "snapshots", r->nsnapshots);
  cJSON_AddNumberToObject(root, "inputs", r->ninputs);
  cJSON_AddNumberToObject(root, "tensors", r->ntensors);
  cJSON_AddNumberToObject(root, "params", (double)r->params);
  cJSON_AddNumberToObject(root, "bytes_read", (double)r->bytes_read);
  cJSON_AddNumberToObject(root, "seconds", r->seconds);
  cJSON_AddNumberToObject(root, "setup_seconds", r->setup_seconds);
  cJSON_AddNumberToObject(root, "fd_per_read", r->fd_per_read);
  cJSON_AddNumberToObject(root, "gb_per_s", r->seconds > 0 ? (double)r->bytes_read / r->seconds / 1e9 : 0);
  cJSON_AddNumberToObject(root, "slice_elems", (double)r->slice_elems);
  cJSON_AddNumberToObject(root, "peak_rss", (double)r->peak_rss);
  char *text = cJSON_Print(root);
  if (text) fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(root);
}

int cmd_reconstruct(const recon_args *a, int json, FILE *out, FILE *err) {
  plan p;
  recon_report r;
  ec_status st = reconstruct(a, &p, &r, err);
  print_plan_problems(&p, st, err);
  if (!st) {
    if (json) {
      print_json(&r, out);
    } else {
      char gb[32], rss[32], t[32];
      for (int k = 0; k < r.noutputs; k++)
        fprintf(out, "%s %s (rel.error %.3e, |x|_2 %.3g)\n", r.outputs[k].skipped ? "kept   " : "wrote  ",
                r.outputs[k].path, r.outputs[k].rel_error, r.outputs[k].norm2);
      fprintf(out, "posthoc-ema: %d target%s (%d written), %d snapshots (%d stored profiles), %s read in %s "
                   "(%.2f GB/s), peak RSS %s\n",
              r.noutputs, r.noutputs == 1 ? "" : "s", r.written, r.nsnapshots, r.ninputs,
              ec_format_bytes(gb, sizeof gb, (double)r.bytes_read), ec_format_duration(t, sizeof t, r.seconds),
              r.seconds > 0 ? (double)r.bytes_read / r.seconds / 1e9 : 0.0,
              ec_format_bytes(rss, sizeof rss, (double)r.peak_rss));
    }
  }
  recon_report_free(&r);
  plan_free(&p);
  return ec_exit_code(st);
}
