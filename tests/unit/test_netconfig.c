/* Network configurations, presets and structure (trainer/netconfig.h, trainer/arch.h): the
 * parameter counts and Gflops of all twelve paper presets against edm2-spec.md §5 (conditional
 * and unconditional, and the closed form), the XS tensor table against the reference's state
 * dict (tests/data/edm2-xs-tensors.txt), JSON configuration handling and its errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "trainer/arch.h"
#include "trainer/netconfig.h"

/* edm2-spec.md §5, measured by instantiating the reference classes: parameters conditional
 * (L = 1000) and unconditional, and count_flops.py's Gflops. */
static const struct {
  const char *preset;
  int channels, img_channels;
  long long params, params_uncond;
  double gflops;
} SPEC[] = {
    {"img512-xxs", 64, 4, 31309029LL, 31053029LL, 11.53},
    {"img512-xs", 128, 4, 124713253LL, 124201253LL, 45.50},
    {"img512-s", 192, 4, 280212837LL, 279444837LL, 101.92},
    {"img512-m", 256, 4, 497807781LL, 496783781LL, 180.79},
    {"img512-l", 320, 4, 777498085LL, 776218085LL, 282.10},
    {"img512-xl", 384, 4, 1119283749LL, 1117747749LL, 405.86},
    {"img512-xxl", 448, 4, 1523164773LL, 1521372773LL, 552.07},
    {"img64-xs", 128, 3, 124710949LL, 124198949LL, 45.49},
    {"img64-s", 192, 3, 280209381LL, 279441381LL, 101.90},
    {"img64-m", 256, 3, 497803173LL, 496779173LL, 180.77},
    {"img64-l", 320, 3, 777492325LL, 776212325LL, 282.08},
    {"img64-xl", 384, 3, 1119276837LL, 1117740837LL, 405.83},
};

TEST(paper_presets_match_spec) {
  for (size_t i = 0; i < sizeof SPEC / sizeof *SPEC; i++) {
    const edm2_preset *p = edm2_preset_find(SPEC[i].preset);
    ASSERT_TRUE(p != NULL);
    for (int uncond = 0; uncond < 2; uncond++) {
      edm2_netcfg c = p->net;
      if (uncond) c.label_dim = 0;
      edm2_arch a;
      ASSERT_OK(edm2_arch_init(&a, &c));
      long long C = SPEC[i].channels, L = c.label_dim, I = SPEC[i].img_channels;
      long long closed = 7580 * C * C + 4 * L * C + 9 * (2 * I + 1) * C + 165;
      long long want = uncond ? SPEC[i].params_uncond : SPEC[i].params;
      long long got = a.n_params;
      double gflops = edm2_arch_flops(&a) / 1e9;
      int n_tensors = a.n_tensors;
      edm2_arch_free(&a);
      ASSERT_EQ_INT(got, want);
      ASSERT_EQ_INT(closed, want);
      ASSERT_TRUE(n_tensors > 100);
      /* Conditional Gflops agree with the measured column to 0.1% (in fact to its rounding);
       * the labels add L·cemb multiply-adds, 0.002% of the total. */
      if (!uncond) ASSERT_NEAR(gflops, SPEC[i].gflops, 0.005);
      ASSERT_REL(gflops, SPEC[i].gflops, 1e-3);
    }
  }
}

TEST(preset_names) {
  ASSERT_EQ_INT(edm2_preset_count(), 15);
  ASSERT_TRUE(edm2_preset_find("edm2-img512-xs") == edm2_preset_find("img512-xs"));
  ASSERT_TRUE(edm2_preset_find("img512-q") == NULL);
  const edm2_preset *p;
  ASSERT_STATUS(edm2_preset_get("img512-q", &p), EC_EINVAL, "unknown preset 'img512-q' (known: img512-xxs, ");
  ASSERT_OK(edm2_preset_get("fmnist", &p));
  ASSERT_EQ_INT(p->net.img_resolution, 32);
  ASSERT_EQ_INT(p->net.img_channels, 1);
  ASSERT_EQ_INT(p->net.label_dim, 10);
  /* The paper's training hyper-parameters (edm2-spec.md §6.1). */
  ASSERT_OK(edm2_preset_get("img512-l", &p));
  ASSERT_EQ_INT(p->duration, 1879048192LL);
  ASSERT_EQ_INT(p->batch, 2048);
  ASSERT_NEAR(p->lr_ref, 0.0080, 0);
  ASSERT_NEAR(p->net.dropout, 0.10, 0);
  ASSERT_OK(edm2_preset_get("img64-xl", &p));
  ASSERT_EQ_INT(p->decay, 35000);
  ASSERT_NEAR(p->P_mean, -0.8, 0);
  ASSERT_NEAR(p->P_std, 1.6, 0);
  for (int i = 0; i < edm2_preset_count(); i++) ASSERT_OK(edm2_netcfg_check(&edm2_preset_at(i)->net, NULL));
}

/* Every state-dict entry of XS, in order, with kind, name, shape and size, as the reference
 * lists them. */
TEST(xs_tensor_table_matches_reference) {
  const char *dir = getenv("EDM2C_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/edm2-xs-tensors.txt", dir ? dir : "tests/data");
  size_t size;
  char *text = test_read_file(path, &size);
  ASSERT_TRUE(text != NULL);
  const edm2_preset *p = edm2_preset_find("img512-xs");
  edm2_arch a;
  ASSERT_OK(edm2_arch_init(&a, &p->net));
  int row = 0, bad = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char kind, name[128], shape[64], want[64];
    long long numel;
    /* "P  unet.out_gain  []  1" */
    char *sh = strchr(line, '['), *she = sh ? strchr(sh, ']') : NULL;
    if (!sh || !she || sscanf(line, " %c %127s", &kind, name) != 2 || sscanf(she + 1, "%lld", &numel) != 1) {
      bad++;
      continue;
    }
    snprintf(want, sizeof want, "%.*s", (int)(she - sh + 1), sh);
    if (row >= a.n_tensors) {
      bad++;
      break;
    }
    const edm2_tensor *t = &a.tensors[row++];
    edm2_tensor_shape_str(t, shape, sizeof shape);
    if (strcmp(t->name, name) || strcmp(shape, want) || t->numel != numel ||
        (kind == 'P') != (t->kind == EDM2_PARAM)) {
      printf("# row %d: ours %s %s, reference %c %s %s\n", row, t->name, shape, kind, name, want);
      bad++;
    }
  }
  int n = a.n_tensors;
  edm2_arch_free(&a);
  free(text);
  ASSERT_EQ_INT(bad, 0);
  ASSERT_EQ_INT(row, 203);
  ASSERT_EQ_INT(n, 203);
}

/* XS structure facts of edm2-spec.md §3.6. */
TEST(xs_structure) {
  edm2_arch a;
  ASSERT_OK(edm2_arch_init(&a, &edm2_preset_find("img512-xs")->net));
  int attn = 0, gains = 0, convs = 0;
  for (int i = 0; i < a.n_blocks; i++) attn += a.blocks[i].heads > 0;
  for (int i = 0; i < a.n_tensors; i++) {
    gains += a.tensors[i].kind == EDM2_PARAM && a.tensors[i].ndim == 0;
    convs += a.tensors[i].ndim == 4;
  }
  for (int i = 0; i < a.n_blocks; i++) convs += a.blocks[i].resample != EDM2_KEEP;
  int n_blocks = a.n_blocks, n_enc = a.n_enc_blocks, skips = a.n_skips;
  int heads16 = 0, heads8 = 0;
  for (int i = 0; i < a.n_blocks; i++) {
    if (!strcmp(a.blocks[i].name, "unet.enc.16x16_block0")) heads16 = a.blocks[i].heads;
    if (!strcmp(a.blocks[i].name, "unet.dec.8x8_in0")) heads8 = a.blocks[i].heads;
  }
  edm2_arch_free(&a);
  ASSERT_EQ_INT(n_blocks, 36);
  ASSERT_EQ_INT(n_enc, 15);
  ASSERT_EQ_INT(attn, 15);
  ASSERT_EQ_INT(gains, 37);
  ASSERT_EQ_INT(convs, 129);
  ASSERT_EQ_INT(skips, 16);
  ASSERT_EQ_INT(heads16, 6);
  ASSERT_EQ_INT(heads8, 8);
}

TEST(slab_layout_is_aligned_and_disjoint) {
  edm2_arch a;
  ASSERT_OK(edm2_arch_init(&a, &edm2_preset_find("test-tiny")->net));
  size_t end[2] = {0, 0};
  int ok = 1;
  for (int i = 0; i < a.n_tensors; i++) {
    const edm2_tensor *t = &a.tensors[i];
    ok &= t->offset % EDM2_SLAB_ALIGN == 0 && t->offset >= end[t->kind];
    end[t->kind] = t->offset + (size_t)t->numel;
  }
  ok &= end[EDM2_PARAM] <= a.params_size && end[EDM2_BUFFER] <= a.buffers_size;
  edm2_arch_free(&a);
  ASSERT_TRUE(ok);
}

TEST(json_overrides_and_round_trip) {
  edm2_netcfg c = edm2_preset_find("img512-xs")->net;
  ASSERT_OK(edm2_netcfg_apply_json(&c, "{\"label_dim\": 0, \"dropout\": 0.1, \"attn_resolutions\": [8], "
                                       "\"channel_mult_emb\": null, \"use_fp16\": true}", "t", 1));
  ASSERT_EQ_INT(c.label_dim, 0);
  ASSERT_NEAR(c.dropout, 0.1, 0);
  ASSERT_EQ_INT(c.n_attn, 1);
  ASSERT_EQ_INT(c.model_channels, 128);
  char *json = edm2_netcfg_to_json(&c);
  ASSERT_TRUE(json != NULL);
  edm2_netcfg d;
  edm2_netcfg_default(&d);
  ec_status st = edm2_netcfg_apply_json(&d, json, "round trip", 1);
  free(json);
  ASSERT_OK(st);
  ASSERT_TRUE(edm2_netcfg_equal(&c, &d));
  /* clip_act null means no clipping; channel_mult sets the number of levels. */
  ASSERT_OK(edm2_netcfg_apply_json(&d, "{\"clip_act\": null, \"channel_mult\": [1, 2], \"img_resolution\": 32}", "t", 1));
  ASSERT_NEAR(d.clip_act, 0, 0);
  ASSERT_EQ_INT(d.n_levels, 2);
  edm2_arch a;
  ASSERT_OK(edm2_arch_init(&a, &d));
  int has8 = edm2_arch_find(&a, "unet.dec.16x16_in0.emb_gain") >= 0;
  edm2_arch_free(&a);
  ASSERT_TRUE(has8);
}

TEST(json_errors_name_the_key) {
  edm2_netcfg c = edm2_preset_find("fmnist")->net, keep = c;
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"model_chanels\": 8}", "--config", 1), EC_EINVAL,
                "--config: unknown config key 'model_chanels'");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"model_channels\": 8.5}", "f.h5", 1), EC_EINVAL,
                "f.h5: config key 'model_channels' must be an integer >= 1");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"dropout\": 1.5}", "x", 1), EC_EINVAL, "dropout must be in [0, 1)");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"channel_mult\": []}", "x", 1), EC_EINVAL,
                "'channel_mult' must have 1 to 8 entries");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"img_resolution\": 30}", "x", 1), EC_EINVAL,
                "img_resolution 30 cannot be halved 2 times");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"resample_filter\": [1, 3, 3, 1]}", "x", 1), EC_EINVAL,
                "only [1, 1] is supported");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "[1, 2]", "x", 1), EC_EINVAL, "not a JSON object");
  ASSERT_STATUS(edm2_netcfg_apply_json(&c, "{\"label_dim\": ", "x", 1), EC_EINVAL, "not a JSON object");
  ASSERT_TRUE(edm2_netcfg_equal(&c, &keep)); /* failures change nothing */
  /* Files may record training settings in their config: ignored without strict. */
  ASSERT_OK(edm2_netcfg_apply_json(&c, "{\"batch\": 32, \"lr\": 0.01, \"label_dim\": 0}", "f.h5", 0));
  ASSERT_EQ_INT(c.label_dim, 0);
}

TEST(flops_follow_the_counting_rules) {
  /* Doubling the resolution of a network without attention quadruples every per-pixel term. */
  edm2_netcfg c;
  edm2_netcfg_default(&c);
  c.img_resolution = 16;
  c.model_channels = 8;
  c.n_attn = 0;
  c.label_dim = 0;
  c.n_levels = 2;
  c.channels_per_head = 1000; /* no heads in the lowest level's in0 block either */
  edm2_arch a, b;
  ASSERT_OK(edm2_arch_init(&a, &c));
  c.img_resolution = 32;
  ASSERT_OK(edm2_arch_init(&b, &c));
  double fa = edm2_arch_flops(&a), fb = edm2_arch_flops(&b);
  edm2_arch_free(&a);
  edm2_arch_free(&b);
  ASSERT_TRUE(fb > 3.5 * fa && fb < 4 * fa);
}

TEST_MAIN(paper_presets_match_spec, preset_names, xs_tensor_table_matches_reference, xs_structure,
          slab_layout_is_aligned_and_disjoint, json_overrides_and_round_trip, json_errors_name_the_key,
          flops_follow_the_counting_rules)
