/* Snapshots written by h5py from the format description alone (tests/data/h5py-snapshots, made by
 * tests/data/gen_h5py_snapshots.py) read correctly: structure, name-order listing, float16
 * values, 0-d tensors, buffers. */
#include <stdlib.h>

#include "core/half.h"
#include "posthoc/snapshot.h"
#include "posthoc/snapshot_dir.h"
#include "tests/test.h"

/* The generator's table (order = index i in its value formula). */
static const char *tensors[] = {"unet.out_gain", "unet.emb_noise.weight", "unet.enc.8x8_conv.weight",
                                "unet.enc.8x8_block0.conv_res0.weight", "logvar_linear.weight"};
static const int64_t numel[] = {1, 64, 72, 144, 128};

static double value(int64_t k, int i, int p, int64_t nimg) {
  return (double)((k * 7 + i * 13) % 101 - 50) / 64 + p / 8.0 + (double)nimg / 1048576.0;
}

static const char *data_dir(void) {
  static char buf[4096];
  const char *d = getenv("EDM2C_TEST_DATA");
  snprintf(buf, sizeof buf, "%s/h5py-snapshots", d ? d : "tests/data");
  return buf;
}

TEST(directory_checks_clean) {
  snapdir d;
  ASSERT_OK(snapdir_scan(&d, data_dir()));
  ASSERT_EQ_INT(d.n, 2);
  snap_summary *sm;
  snap_problems p = {0};
  ASSERT_OK(snapdir_check(&d, SNAPDIR_CHECK_DATA, &sm, &p, NULL, NULL));
  for (int i = 0; i < p.n; i++) printf("# problem: %s\n", p.items[i].message);
  ASSERT_EQ_INT(p.n, 0);
  ASSERT_TRUE(sm[0].usable && sm[1].usable);
  ASSERT_EQ_INT(sm[1].params, 409);
  ASSERT_STR_EQ(sm[0].dtype, "float16");
  snap_summaries_free(&sm, d.n);
  snap_problems_free(&p);
  snapdir_free(&d);
}

TEST(values_match_the_generator) {
  snapdir d;
  ASSERT_OK(snapdir_scan(&d, data_dir()));
  float buf[256];
  for (int f = 0; f < d.n; f++) {
    snap_file s;
    ASSERT_OK(snap_open(&s, d.entries[f].path));
    ASSERT_EQ_INT(s.nimg, d.entries[f].nimg);
    ASSERT_EQ_INT(s.batch_size, 1024);
    ASSERT_CONTAINS(s.config, "gen_h5py_snapshots.py");
    ASSERT_EQ_INT(s.ntensors, 5);
    /* h5py does not track creation order: tensors list in name order */
    ASSERT_STR_EQ(s.tensors[0].name, "logvar_linear.weight");
    for (int p = 0; p < 2; p++)
      for (int i = 0; i < 5; i++) {
        int t = snap_find_tensor(&s, tensors[i]);
        ASSERT_TRUE(t >= 0);
        ASSERT_EQ_INT(s.tensors[t].numel, numel[i]);
        ASSERT_OK(snap_read(&s, p, t, 0, numel[i], buf));
        for (int64_t k = 0; k < numel[i]; k++) {
          float want = ec_half_to_float(ec_float_to_half((float)value(k, i, p, s.nimg)));
          if (buf[k] != want) ASSERT_NEAR(buf[k], want, 0);
        }
      }
    ASSERT_EQ_INT(s.nbuffers, 2);
    int b = snap_find_buffer(&s, "unet.emb_fourier.phases");
    ASSERT_OK(snap_read_buffer(&s, b, buf));
    for (int k = 0; k < 4; k++) ASSERT_TRUE(buf[k] == (float)k + 1.0f);
    snap_close(&s);
  }
  snapdir_free(&d);
}

TEST_MAIN(directory_checks_clean, values_match_the_generator)
