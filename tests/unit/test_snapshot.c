/* posthoc/snapshot, snapshot_dir and model: the writer/reader round trip, slices, atomicity,
 * API-level errors, directory scanning, model files and their safetensors export. The
 * command-line view of the bad inputs is in tests/cli/posthoc_list.sh. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/half.h"
#include "core/safetensors.h"
#include "posthoc/model.h"
#include "posthoc/snapshot.h"
#include "posthoc/snapshot_dir.h"
#include "tests/test.h"

static int exists(const char *p) { return access(p, F_OK) == 0; }

enum { NW = 4 * 3 * 3 * 3 };
static float conv_w[NW], lin_w[6], freqs[5];

static void fill(void) {
  for (int i = 0; i < NW; i++) conv_w[i] = (float)(i - 50) / 7.0f;
  for (int i = 0; i < 6; i++) lin_w[i] = (float)i * 1e-3f;
  for (int i = 0; i < 5; i++) freqs[i] = (float)i + 0.25f;
}

/* Writes a two-profile snapshot at nimg into dir. */
static ec_status write_snapshot(const char *dir, int64_t nimg, ec_dtype dtype) {
  snap_writer *w;
  snap_meta m = {nimg, 2048, "edm2-img64-xs", "{\"lr\": 0.012}", dtype};
  ec_shape conv = ec_shape_make(4, (int64_t[]){4, 3, 3, 3}), lin = ec_shape_make(2, (int64_t[]){2, 3});
  ec_shape gain = ec_shape_make(0, NULL), fb = ec_shape_make(1, (int64_t[]){5});
  float g = 0.5f;
  ec_status s = snap_writer_open(&w, dir, &m);
  if (s) return s;
  double sig[2] = {0.10, 0.05}; /* written out of order on purpose */
  for (int k = 0; k < 2 && !s; k++) {
    if (!s) s = snap_writer_add_profile(w, sig[k]);
    if (!s) s = snap_writer_add_tensor(w, sig[k], "unet.out_gain", &gain, EC_F32, &g);
    if (!s) s = snap_writer_add_tensor(w, sig[k], "unet.enc.8x8_conv.weight", &conv, EC_F32, conv_w);
    if (!s) s = snap_writer_add_tensor(w, sig[k], "logvar_linear.weight", &lin, EC_F32, lin_w);
  }
  if (!s) s = snap_writer_add_buffer(w, "unet.emb_fourier.freqs", &fb, freqs);
  if (s) {
    snap_writer_abort(&w);
    return s;
  }
  return snap_writer_close(&w);
}

TEST(names) {
  char buf[64];
  int64_t n = -1;
  ASSERT_STR_EQ(snap_file_name(8388608, buf, sizeof buf), "snapshot-000008388608.h5");
  ASSERT_TRUE(snap_parse_name("snapshot-000008388608.h5", &n) && n == 8388608);
  ASSERT_TRUE(!snap_parse_name("snapshot-8388608.h5", &n));
  ASSERT_TRUE(!snap_parse_name("snapshot-000008388608.h5.tmp", &n));
  ASSERT_TRUE(!snap_parse_name("snapshot-00000838860x.h5", &n));
  ASSERT_TRUE(!snap_parse_name("network-snapshot-0008388-0.050.pkl", &n));
  ASSERT_STR_EQ(snap_profile_key(0.05, buf, sizeof buf), "0.050");
  ASSERT_STR_EQ(snap_profile_key(0.1, buf, sizeof buf), "0.100");
}

TEST(roundtrip_float16) {
  fill();
  const char *dir = test_path("rt16");
  mkdir(dir, 0777);
  ASSERT_OK(write_snapshot(dir, 4096, EC_F16));
  char path[4200];
  snprintf(path, sizeof path, "%s/snapshot-000000004096.h5", dir);
  snap_file s;
  ASSERT_OK(snap_open(&s, path));
  ASSERT_EQ_INT(s.nimg, 4096);
  ASSERT_EQ_INT(s.batch_size, 2048);
  ASSERT_STR_EQ(s.preset, "edm2-img64-xs");
  ASSERT_STR_EQ(s.config, "{\"lr\": 0.012}");
  ASSERT_EQ_INT(s.nprofiles, 2);
  ASSERT_NEAR(s.profiles[0].sigma_rel, 0.05, 0); /* sorted */
  ASSERT_STR_EQ(s.profiles[1].key, "0.100");
  ASSERT_REL(s.profiles[0].gamma, 16.972198602303447, 1e-14);
  ASSERT_REL(s.profiles[1].gamma, 6.937203937601809, 1e-14);
  ASSERT_EQ_INT(s.ntensors, 3);
  ASSERT_STR_EQ(s.tensors[0].name, "unet.out_gain"); /* creation order */
  ASSERT_STR_EQ(s.tensors[2].name, "logvar_linear.weight");
  ASSERT_EQ_INT(s.tensors[1].numel, NW);
  ASSERT_EQ_INT(snap_param_count(&s), 1 + NW + 6);
  ASSERT_EQ_INT(s.dtypes_seen, 1 << EC_F16);
  ASSERT_EQ_INT(s.unchecksummed, 0);
  ASSERT_EQ_INT(s.nbuffers, 1);
  float out[NW];
  int t = snap_find_tensor(&s, "unet.enc.8x8_conv.weight");
  ASSERT_EQ_INT(t, 1);
  ASSERT_OK(snap_read(&s, 1, t, 0, NW, out));
  for (int i = 0; i < NW; i++) ASSERT_TRUE(out[i] == ec_half_to_float(ec_float_to_half(conv_w[i])));
  ASSERT_OK(snap_read(&s, 0, t, 17, 40, out)); /* a slice across rows */
  for (int i = 0; i < 40; i++) ASSERT_TRUE(out[i] == ec_half_to_float(ec_float_to_half(conv_w[17 + i])));
  ASSERT_OK(snap_read(&s, 0, snap_find_tensor(&s, "unet.out_gain"), 0, 1, out));
  ASSERT_TRUE(out[0] == 0.5f);
  ASSERT_OK(snap_read_buffer(&s, 0, out));
  for (int i = 0; i < 5; i++) ASSERT_TRUE(out[i] == freqs[i]); /* buffers stay float32 */
  ASSERT_EQ_INT(snap_find_profile(&s, 0.1), 1);
  ASSERT_EQ_INT(snap_find_profile(&s, 0.13), -1);
  ASSERT_EQ_INT(snap_find_tensor(&s, "nope"), -1);
  ASSERT_EQ_INT(snap_find_buffer(&s, "unet.emb_fourier.freqs"), 0);
  snap_close(&s);
  snap_close(&s); /* idempotent */
}

TEST(roundtrip_float32) {
  fill();
  const char *dir = test_path("rt32");
  mkdir(dir, 0777);
  ASSERT_OK(write_snapshot(dir, 12, EC_F32));
  char path[4200];
  snprintf(path, sizeof path, "%s/snapshot-000000000012.h5", dir);
  snap_file s;
  ASSERT_OK(snap_open(&s, path));
  ASSERT_EQ_INT(s.dtypes_seen, 1 << EC_F32);
  float out[NW];
  ASSERT_OK(snap_read(&s, 0, 1, 0, NW, out));
  for (int i = 0; i < NW; i++) ASSERT_TRUE(out[i] == conv_w[i]);
  snap_close(&s);
}

TEST(writer_is_atomic) {
  fill();
  const char *dir = test_path("atomic");
  mkdir(dir, 0777);
  char final[4200], tmp[4300];
  snprintf(final, sizeof final, "%s/snapshot-000000000064.h5", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", final);
  snap_writer *w;
  snap_meta m = {64, 64, "", "{}", EC_F16};
  ASSERT_OK(snap_writer_open(&w, dir, &m));
  ASSERT_STR_EQ(snap_writer_path(w), final);
  ASSERT_OK(snap_writer_add_profile(w, 0.05));
  ASSERT_TRUE(exists(tmp) && !exists(final));
  snap_writer_abort(&w);
  ASSERT_TRUE(w == NULL && !exists(tmp) && !exists(final));
  /* a stale .tmp from a crash is replaced by the next write of the same snapshot */
  test_write_file(tmp, "garbage", 7);
  ASSERT_OK(write_snapshot(dir, 64, EC_F16));
  ASSERT_TRUE(exists(final) && !exists(tmp));
}

TEST(writer_errors) {
  const char *dir = test_path("werr");
  mkdir(dir, 0777);
  snap_writer *w;
  snap_meta m = {128, 64, "", "{}", EC_F16};
  ec_shape sh = ec_shape_make(1, (int64_t[]){2});
  float v[2] = {1, 2};
  ASSERT_STATUS(snap_writer_open(&w, test_path("no-such-dir"), &m), EC_ENOENT, "snapshot directory");
  snap_meta bad = m;
  bad.dtype = EC_BF16;
  ASSERT_STATUS(snap_writer_open(&w, dir, &bad), EC_EINVAL, "float16 or float32, not bfloat16");
  bad = m;
  bad.nimg = -1;
  ASSERT_STATUS(snap_writer_open(&w, dir, &bad), EC_EINVAL, "must not be negative");
  ASSERT_OK(snap_writer_open(&w, dir, &m));
  ASSERT_STATUS(snap_writer_add_profile(w, 0.3), EC_EINVAL, "0.288675");
  ASSERT_STATUS(snap_writer_add_profile(w, 0.0), EC_EINVAL, "out of range");
  ASSERT_STATUS(snap_writer_add_tensor(w, 0.05, "x", &sh, EC_F32, v), EC_EINVAL, "before the profile");
  ASSERT_OK(snap_writer_add_profile(w, 0.05));
  ASSERT_STATUS(snap_writer_add_profile(w, 0.0501), EC_EINVAL, "added twice");
  ASSERT_STATUS(snap_writer_add_tensor(w, 0.05, "x", &sh, EC_F64, v), EC_EINVAL, "float32 or float16");
  ASSERT_OK(snap_writer_add_tensor(w, 0.05, "x", &sh, EC_F32, v));
  ASSERT_STATUS(snap_writer_add_tensor(w, 0.05, "x", &sh, EC_F32, v), EC_EHDF5, "cannot create dataset");
  snap_writer_abort(&w);
  ASSERT_EQ_INT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(reader_rejects_empty_profile_and_wrong_names) {
  const char *dir = test_path("rerr");
  mkdir(dir, 0777);
  snap_writer *w;
  snap_meta m = {256, 64, "", "{}", EC_F16};
  ASSERT_OK(snap_writer_open(&w, dir, &m));
  ASSERT_OK(snap_writer_add_profile(w, 0.05));
  ASSERT_OK(snap_writer_close(&w));
  char path[4200];
  snprintf(path, sizeof path, "%s/snapshot-000000000256.h5", dir);
  snap_file s;
  ASSERT_STATUS(snap_open(&s, path), EC_EFORMAT, "/ema/0.050 holds no tensors");
  ASSERT_STATUS(snap_open(&s, test_path("rerr/none.h5")), EC_ENOENT, "No such file");
  ASSERT_EQ_INT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(scan_sorts_and_finds_leftovers) {
  fill();
  const char *dir = test_path("scan");
  mkdir(dir, 0777);
  ASSERT_OK(write_snapshot(dir, 20000, EC_F16));
  ASSERT_OK(write_snapshot(dir, 3000, EC_F16));
  ASSERT_OK(write_snapshot(dir, 100000, EC_F16));
  char p[4200];
  snprintf(p, sizeof p, "%s/snapshot-000000500000.h5.tmp", dir);
  test_write_file(p, "x", 1);
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  test_write_file(p, "x", 1);
  snprintf(p, sizeof p, "%s/network-snapshot-0008388-0.050.pkl", dir);
  test_write_file(p, "x", 1);
  snapdir d;
  ASSERT_OK(snapdir_scan(&d, dir));
  ASSERT_EQ_INT(d.n, 3);
  ASSERT_EQ_INT(d.entries[0].nimg, 3000);
  ASSERT_EQ_INT(d.entries[2].nimg, 100000);
  ASSERT_TRUE(d.entries[1].bytes > 1000);
  ASSERT_EQ_INT(d.nstale, 1);
  ASSERT_STR_EQ(d.stale[0], "snapshot-000000500000.h5.tmp");
  snap_summary *sm;
  snap_problems pr = {0};
  ASSERT_OK(snapdir_check(&d, SNAPDIR_CHECK_DATA, &sm, &pr, NULL, NULL));
  ASSERT_EQ_INT(pr.errors, 0);
  ASSERT_EQ_INT(pr.warnings, 1); /* the leftover .tmp */
  ASSERT_CONTAINS(pr.items[0].message, "incomplete snapshot left by an interrupted writer");
  for (int i = 0; i < 3; i++) ASSERT_TRUE(sm[i].usable && sm[i].nprofiles == 2 && !strcmp(sm[i].dtype, "float16"));
  snap_summaries_free(&sm, d.n);
  snap_problems_free(&pr);
  snapdir_free(&d);
  ASSERT_STATUS(snapdir_scan(&d, test_path("absent")), EC_ENOENT, "does not exist");
  ASSERT_STATUS(snapdir_scan(&d, p), EC_EINVAL, "is not a directory");
}

TEST(check_survives_allocation_failures) {
  fill();
  const char *dir = test_path("allocfail");
  mkdir(dir, 0777);
  ASSERT_OK(write_snapshot(dir, 512, EC_F16));
  ASSERT_OK(write_snapshot(dir, 1024, EC_F16));
  int succeeded = 0;
  for (long n = 0; n < 5000 && !succeeded; n++) {
    snapdir d;
    snap_summary *sm = NULL;
    snap_problems pr = {0};
    ec_alloc_fail_after(n);
    ec_status s = snapdir_scan(&d, dir);
    if (!s) {
      s = snapdir_check(&d, SNAPDIR_CHECK_DATA, &sm, &pr, NULL, NULL);
      if (!s) {
        succeeded = pr.errors == 0;
        snap_summaries_free(&sm, d.n);
      }
      snap_problems_free(&pr);
      snapdir_free(&d);
    }
    ec_alloc_fail_after(-1);
    if (s) ASSERT_EQ_INT(s, EC_ENOMEM);
  }
  ASSERT_TRUE(succeeded);
  ASSERT_EQ_INT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(model_roundtrip_and_safetensors_export) {
  fill();
  const char *path = test_path("phema-000000004096-0.130.h5");
  model_writer *w;
  model_meta m = {4096, "edm2-img64-xs", "{\"lr\": 0.012}", "{\"kind\": \"power\", \"sigma_rel\": 0.13}", EC_F32};
  ec_shape conv = ec_shape_make(4, (int64_t[]){4, 3, 3, 3}), fb = ec_shape_make(1, (int64_t[]){5});
  ASSERT_OK(model_writer_open(&w, path, &m, EC_ATOMIC_NOCLOBBER));
  ASSERT_OK(model_writer_add_param(w, "unet.enc.8x8_conv.weight", &conv, EC_F32, conv_w));
  ASSERT_OK(model_writer_add_buffer(w, "unet.emb_fourier.freqs", &fb, freqs));
  ASSERT_OK(h5io_attr_write_str(model_writer_file(w), "note", "provenance goes here"));
  ASSERT_TRUE(!exists(path));
  ASSERT_OK(model_writer_close(&w));
  ASSERT_TRUE(exists(path));
  ASSERT_STATUS(model_writer_open(&w, path, &m, EC_ATOMIC_NOCLOBBER), EC_EEXIST, "refusing to overwrite");

  model_file mf;
  ASSERT_OK(model_open(&mf, path));
  ASSERT_EQ_INT(mf.nimg, 4096);
  ASSERT_STR_EQ(mf.ema, "{\"kind\": \"power\", \"sigma_rel\": 0.13}");
  ASSERT_EQ_INT(mf.nparams, 1);
  ASSERT_EQ_INT(mf.nbuffers, 1);
  ASSERT_EQ_INT(mf.params[0].dtype, EC_F32);
  ASSERT_EQ_INT(model_find_param(&mf, "unet.enc.8x8_conv.weight"), 0);
  float out[NW];
  ASSERT_OK(model_read_param(&mf, 0, EC_F32, out, 0, NW));
  for (int i = 0; i < NW; i++) ASSERT_TRUE(out[i] == conv_w[i]);

  const char *st_path = test_path("phema-000000004096-0.130.safetensors");
  ASSERT_OK(model_export_safetensors(&mf, st_path, EC_F16, EC_ATOMIC_NOCLOBBER));
  ASSERT_STATUS(model_export_safetensors(&mf, st_path, EC_F16, EC_ATOMIC_NOCLOBBER), EC_EEXIST, "refusing");
  model_close(&mf);
  ec_st_file sf;
  ASSERT_OK(ec_st_open(&sf, st_path));
  ASSERT_EQ_INT(sf.ntensors, 2);
  int k = ec_st_find(&sf, "unet.enc.8x8_conv.weight");
  ASSERT_TRUE(k >= 0 && sf.tensors[k].dtype == EC_F16 && sf.tensors[k].shape.ndim == 4);
  ASSERT_OK(ec_st_read(&sf, k, EC_F32, out, 0, NW));
  for (int i = 0; i < NW; i++) ASSERT_TRUE(out[i] == ec_half_to_float(ec_float_to_half(conv_w[i])));
  k = ec_st_find(&sf, "unet.emb_fourier.freqs");
  ASSERT_TRUE(k >= 0 && sf.tensors[k].dtype == EC_F32);
  ASSERT_STR_EQ(ec_st_meta(&sf, "format"), "edm2c-model");
  ASSERT_STR_EQ(ec_st_meta(&sf, "nimg"), "4096");
  ASSERT_STR_EQ(ec_st_meta(&sf, "ema"), "{\"kind\": \"power\", \"sigma_rel\": 0.13}");
  ec_st_close(&sf);
  ASSERT_EQ_INT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(model_rejects_snapshots_and_newer_versions) {
  fill();
  const char *dir = test_path("mrej");
  mkdir(dir, 0777);
  ASSERT_OK(write_snapshot(dir, 8, EC_F16));
  char p[4200];
  snprintf(p, sizeof p, "%s/snapshot-000000000008.h5", dir);
  model_file mf;
  ASSERT_STATUS(model_open(&mf, p), EC_EFORMAT, "not an edm2c model (format = 'edm2c-snapshot'");
  const char *path = test_path("future.h5");
  model_writer *w;
  model_meta m = {1, "", "{}", "{}", EC_F16};
  ASSERT_OK(model_writer_open(&w, path, &m, 0));
  ASSERT_OK(h5io_attr_write_i64(model_writer_file(w), "format_version", 7));
  ASSERT_OK(model_writer_close(&w));
  ASSERT_STATUS(model_open(&mf, path), EC_EFORMAT, "model format_version 7 is newer than this edm2c supports (1)");
  snap_file s;
  ASSERT_STATUS(snap_open(&s, path), EC_EFORMAT, "not an edm2c snapshot (format = 'edm2c-model'");
}

TEST_MAIN(names, roundtrip_float16, roundtrip_float32, writer_is_atomic, writer_errors,
          reader_rejects_empty_profile_and_wrong_names, scan_sorts_and_finds_leftovers,
          check_survives_allocation_failures, model_roundtrip_and_safetensors_export,
          model_rejects_snapshots_and_newer_versions)
