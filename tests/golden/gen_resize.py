#!/usr/bin/python3
"""Golden data for nn/resize.h (tests/unit/test_resize.c): the two resizers of the metrics'
preprocessing run by PyTorch. Run by hand with Debian's python3-torch, python3-numpy, python3-h5py:

    /usr/bin/python3 tests/golden/gen_resize.py [--out tests/golden/resize.h5]

- tf_bilinear: EDM2's FID detector resizes to 299×299 as TF1's resize_bilinear(align_corners=False)
  does; its PyTorch port (StyleGAN's, metrics-reference.md §1.1) is an affine_grid with the
  translation 1/W − 1/299 and grid_sample(bilinear, padding 'border', align_corners=False), used
  here as the reference.
- bicubic_aa: DINOv2's preprocessing, F.interpolate(size=(224, 224), mode='bicubic',
  antialias=True, align_corners=False) on float [0, 255] (metrics-reference.md §1.2).

Inputs are uint8 images (stored) of sizes 28×28, 64×64, 512×512 and a non-square 96×160, RGB
(one channel for 512); outputs float32, only every 7th output row and the last (ROWS) to keep the
file small. Format "edm2c-golden-resize", v1: /<case>/x uint8 [C, H, W], /<case>/tf_rows and
/<case>/aa_rows int64 (the stored row indices), /<case>/tf_bilinear float32 [C, rows, 299],
/<case>/bicubic_aa float32 [C, rows, 224]; root attributes generator, generator_sha256,
torch_version, numpy_version.
"""
import argparse
import hashlib
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CASES = {'s28': (3, 28, 28), 's64': (3, 64, 64), 's512': (1, 512, 512), 'r96x160': (3, 96, 160)}


def image(c, h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127.5 + 100 * np.sin(xx / (3 + seed) + yy / 5.0)[None] * np.cos(np.arange(c)[:, None, None] + yy / 7.0)
    return np.clip(base + rng.normal(0, 20, size=(c, h, w)), 0, 255).astype(np.uint8)


def rows(n):
    return np.array(sorted(set(range(0, n, 7)) | {n - 1}), dtype=np.int64)


def tf_bilinear(x, size=299):
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=torch.float32)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.unsqueeze(0).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='tests/golden/resize.h5')
    args = ap.parse_args()
    me = os.path.abspath(__file__)
    with h5py.File(args.out, 'w') as f:
        f.attrs.update(format='edm2c-golden-resize', format_version=np.int64(1),
                       generator='tests/golden/gen_resize.py',
                       generator_sha256=hashlib.sha256(open(me, 'rb').read()).hexdigest(),
                       torch_version=str(torch.__version__), numpy_version=np.__version__)
        for k, (name, (c, h, w)) in enumerate(CASES.items()):
            x8 = image(c, h, w, k + 1)
            x = torch.from_numpy(x8.astype(np.float32))[None]
            g = f.create_group(name)
            g.create_dataset('x', data=x8)
            tf = tf_bilinear(x)[0].numpy()
            aa = F.interpolate(x, size=(224, 224), mode='bicubic', antialias=True, align_corners=False)[0].numpy()
            tf_rows, aa_rows = rows(299), rows(224)
            g.create_dataset('tf_rows', data=tf_rows)
            g.create_dataset('aa_rows', data=aa_rows)
            g.create_dataset('tf_bilinear', data=tf[:, tf_rows])
            g.create_dataset('bicubic_aa', data=aa[:, aa_rows])
    print('wrote', args.out, os.path.getsize(args.out), 'bytes')


if __name__ == '__main__':
    main()
