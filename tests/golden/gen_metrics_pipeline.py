#!/usr/bin/python3
"""Golden data for metrics/detector.h (tests/unit/test_detector.c): the whole feature path of EDM2's
metrics, from uint8 images of several sizes to features, run by PyTorch exactly as EDM2's detectors
do it, on the reference networks with the deterministic hash weights (gen_inception.py,
gen_dinov2.py). Run by hand with Debian's python3-torch (1.13), python3-numpy, python3-h5py and the
two reference sources outside this repository (never vendored):

    /usr/bin/python3 tests/golden/gen_metrics_pipeline.py --pytorch-fid /tmp/pfid/src \
        --dinov2 /tmp/dinov2src [--out tests/golden/metrics_pipeline.h5]

Images: gen_resize.py's four cases (28×28 RGB, 64×64 RGB, 512×512 grayscale, 96×160 RGB: an
upsample, an upsample, an aliased downsample with the channel repeated, a non-square one), one
image per forward (sizes differ).
- FID: uint8 → float32 [0, 255], grayscale repeated to 3 channels, StyleGAN3's emulation of TF1
  resize_bilinear to 299×299 (affine_grid + grid_sample, gen_resize.tf_bilinear, as the detector
  EDM2 loads does), then (x − 128)/128, then pytorch-fid's FID Inception, pool_3 features.
- FD_DINOv2: uint8 → float32, grayscale repeated, F.interpolate(bicubic, antialias=True) to
  224×224, /255, ImageNet mean/std, then the official dinov2_vitl14, CLS token after the norm.

Format "edm2c-golden-metrics-pipeline", v1: one group per case holding x (uint8 C×H×W),
fid (float32 [2048]) and fd_dinov2 (float32 [1024]); root attributes generator, generator_sha256,
torch_version, numpy_version.
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='tests/golden/metrics_pipeline.h5')
    ap.add_argument('--pytorch-fid', required=True, help='directory holding the pytorch_fid package')
    ap.add_argument('--dinov2', required=True, help='directory holding the dinov2 package')
    args = ap.parse_args()
    sys.path.insert(0, args.pytorch_fid)
    import torch
    import torch.nn.functional as F
    import pytorch_fid.inception as pfi

    import gen_dinov2
    import gen_inception
    import gen_resize

    torch.set_num_threads(2)
    inception = gen_inception.build_net(pfi)
    dino = gen_dinov2.build_net(args.dinov2)
    mean = torch.tensor(gen_dinov2.MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(gen_dinov2.STD).reshape(1, 3, 1, 1)
    me = os.path.abspath(__file__)
    with h5py.File(args.out, 'w') as f, torch.no_grad():
        f.attrs.update(format='edm2c-golden-metrics-pipeline', format_version=np.int64(1),
                       generator='tests/golden/gen_metrics_pipeline.py',
                       generator_sha256=hashlib.sha256(open(me, 'rb').read()).hexdigest(),
                       torch_version=str(torch.__version__), numpy_version=np.__version__)
        for k, (name, (c, h, w)) in enumerate(gen_resize.CASES.items()):
            x8 = gen_resize.image(c, h, w, k + 1)
            x = torch.from_numpy(x8.astype(np.float32))[None]
            if c == 1:
                x = x.repeat(1, 3, 1, 1)
            xf = (gen_resize.tf_bilinear(x) - 128) / 128
            fid = inception(xf)[3].reshape(2048).numpy()
            xd = F.interpolate(x, size=(224, 224), mode='bicubic', antialias=True, align_corners=False)
            xd = (xd / 255 - mean) / std
            dv = dino(xd)[0].numpy()
            g = f.create_group(name)
            g.create_dataset('x', data=x8)
            g.create_dataset('fid', data=fid.astype(np.float32))
            g.create_dataset('fd_dinov2', data=dv.astype(np.float32))
            print(f'{name}: fid rms {np.sqrt((fid.astype(np.float64) ** 2).mean()):.4g}, '
                  f'dinov2 rms {np.sqrt((dv.astype(np.float64) ** 2).mean()):.4g}')
    print('wrote', args.out, os.path.getsize(args.out), 'bytes')


if __name__ == '__main__':
    main()
