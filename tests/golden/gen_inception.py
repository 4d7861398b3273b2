#!/usr/bin/python3
"""Golden data for metrics/inception.h (tests/unit/test_inception.c): pytorch-fid's FID
Inception-v3 (the network of EDM2's FID, metrics-reference.md §1.1) with deterministic hash
weights, run by PyTorch. Run by hand with Debian's python3-torch (1.13), python3-torchvision (0.14),
python3-numpy and python3-h5py, and pytorch-fid's source outside this repository (never vendored):

    pip download --no-deps pytorch-fid -d /tmp/pfid && cd /tmp/pfid && \
        python3 -m zipfile -e pytorch_fid-*.whl src
    /usr/bin/python3 tests/golden/gen_inception.py --pytorch-fid /tmp/pfid/src \
        [--out tests/golden/inception_fid.h5]

The architecture is pytorch-fid's own: its fid_inception_v3() builds torchvision's Inception3
(num_classes=1008, aux_logits=False, no init) with Mixed_5b..7c replaced by FIDInceptionA/C/E_1/E_2,
then loads the released weights through load_state_dict_from_url; that loader is replaced here by
one that returns the hash weights below, so nothing is downloaded. Features are its InceptionV3
wrapper's block 3 output (pool_3, 2048-d) with resize_input=False and normalize_input=False, on
inputs already preprocessed as EDM2's detector does ((x − 128)/128 of uint8 values).

Weights (implemented identically in metrics/inception.c, inception_fid_hash_value()):
  fnv(name)    = FNV-1a 64 of the tensor name's ASCII bytes (offset 0xcbf29ce484222325,
                 prime 0x100000001b3), everything mod 2^64;
  r(name, i)   = splitmix64(fnv(name) + i): z += 0x9e3779b97f4a7c15;
                 z = (z ^ z >> 30)·0xbf58476d1ce4e5b9; z = (z ^ z >> 27)·0x94d049bb133111eb;
                 r = z ^ z >> 31;
  n(name, i)   = (((u0 + u1) + u2) + u3 − 2)·sqrt(3) in float64, u_k = (2·c_k + 1)/131072 with
                 c_k = (r >> 16k) & 0xffff: an Irwin-Hall sum of four uniforms, mean 0, variance 1,
                 |n| < 2·sqrt(3); exact except the final product, so C and numpy agree bit for bit;
  <L>.conv.weight[i]      = float32(n · sqrt(2 / fan_in)), fan_in = Cin·kh·kw (He scaling);
  <L>.bn.weight           = 1 (gamma, identically one in the released graph);
  <L>.bn.bias[i]          = float32(0.1 · n);
  <L>.bn.running_mean[i]  = float32(0.1 · n);
  <L>.bn.running_var[i]   = float32(1 + 0.2 · n)  (in [0.30, 1.70]);
  fc.weight, fc.bias      = 0 (not used by the features); i is the row-major element index.
Inputs: 2 images (3, 299, 299), x[i] = float32((b − 128)/128), b = r('input', i) >> 56 (i the
row-major index over the whole (2, 3, 299, 299) tensor).

Format "edm2c-golden-inception-fid", v1: /features float32 [2, 2048]; /x_head float32 [64] (the
first inputs, a check of the formula); debugging taps of image 0, the first 16 channels:
/block0 float32 [16, 73, 73] (after maxpool1), /mixed_5b [16, 35, 35], /block2 [16, 17, 17] (after
Mixed_6e); root attributes generator, generator_sha256, torch_version, torchvision_version,
numpy_version, pytorch_fid_version, torch_seconds_per_image_2threads.
"""
import argparse
import hashlib
import math
import os
import sys
import time

import h5py
import numpy as np

M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xcbf29ce484222325
    for b in name.encode('ascii'):
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def splitmix64(z):
    """z: uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(0x9e3779b97f4a7c15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def hash_bits(name, n):
    return splitmix64(np.uint64(fnv1a64(name)) + np.arange(n, dtype=np.uint64))


def hash_normal(name, n):
    r = hash_bits(name, n)
    u = [((r >> np.uint64(16 * k)) & np.uint64(0xffff)).astype(np.float64) * 2.0 + 1.0 for k in range(4)]
    u = [v / 131072.0 for v in u]
    return (((u[0] + u[1]) + u[2]) + u[3] - 2.0) * math.sqrt(3.0)


def hash_tensor(name, shape):
    n = int(np.prod(shape))
    if name.endswith('.conv.weight'):
        fan_in = int(np.prod(shape[1:]))
        v = hash_normal(name, n) * math.sqrt(2.0 / fan_in)
    elif name.endswith('.bn.weight'):
        v = np.ones(n)
    elif name.endswith('.bn.bias') or name.endswith('.bn.running_mean'):
        v = 0.1 * hash_normal(name, n)
    elif name.endswith('.bn.running_var'):
        v = 1.0 + 0.2 * hash_normal(name, n)
    elif name.startswith('fc.'):
        v = np.zeros(n)
    else:
        raise KeyError(name)
    return v.astype(np.float32).reshape(shape)


def inputs(n):
    shape = (n, 3, 299, 299)
    b = (hash_bits('input', int(np.prod(shape))) >> np.uint64(56)).astype(np.float64)
    return ((b - 128.0) / 128.0).astype(np.float32).reshape(shape)


def build_net(pfi):
    """pytorch-fid's own FID Inception (pytorch_fid.inception imported as pfi) with the hash weights,
    in eval mode; its loader is replaced by one that hands over the hash weights."""
    import torch
    # The skeleton, exactly as fid_inception_v3() builds it, only to learn names and shapes.
    skel = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    skel.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    skel.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    skel.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    skel.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    skel.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    skel.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    skel.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    skel.Mixed_7b = pfi.FIDInceptionE_1(1280)
    skel.Mixed_7c = pfi.FIDInceptionE_2(2048)
    sd = {}
    for k, v in skel.state_dict().items():
        sd[k] = v.clone() if k.endswith('num_batches_tracked') else torch.from_numpy(hash_tensor(k, tuple(v.shape)))
    nconv = sum(k.endswith('.conv.weight') for k in sd)
    print(f'{len(sd)} tensors, {nconv} convolutions')
    # pytorch-fid's own network, its loader handing over the hash weights.
    pfi.load_state_dict_from_url = lambda *a, **kw: sd
    net = pfi.InceptionV3(output_blocks=(0, 1, 2, 3), resize_input=False, normalize_input=False).eval()
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='tests/golden/inception_fid.h5')
    ap.add_argument('--pytorch-fid', required=True, help='directory holding the pytorch_fid package')
    args = ap.parse_args()
    sys.path.insert(0, args.pytorch_fid)
    import torch
    import torchvision
    import pytorch_fid
    import pytorch_fid.inception as pfi

    torch.set_num_threads(2)
    net = build_net(pfi)
    taps = {}
    net.blocks[2][0].register_forward_hook(lambda m, i, o: taps.setdefault('mixed_5b', o.detach().clone()))
    x = torch.from_numpy(inputs(2))
    with torch.no_grad():
        outs = net(x)
        secs = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            net(x[:1])
            secs = min(secs, time.perf_counter() - t0)
    feats = outs[3].reshape(2, 2048).numpy()
    for name, t in [('block0', outs[0]), ('block1', outs[1]), ('mixed_5b', taps['mixed_5b']), ('block2', outs[2]), ('features', outs[3])]:
        print(f'{name:9s} {tuple(t.shape)} rms {t.pow(2).mean().sqrt().item():.4g} max {t.max().item():.4g}')
    print(f'one 299x299 forward, 2 threads (best of 3): {secs:.3f} s')
    me = os.path.abspath(__file__)
    with h5py.File(args.out, 'w') as f:
        f.attrs.update(format='edm2c-golden-inception-fid', format_version=np.int64(1),
                       generator='tests/golden/gen_inception.py',
                       generator_sha256=hashlib.sha256(open(me, 'rb').read()).hexdigest(),
                       torch_version=str(torch.__version__), torchvision_version=str(torchvision.__version__),
                       numpy_version=str(np.__version__),
                       pytorch_fid_version=str(getattr(pytorch_fid, '__version__', 'unknown')),
                       torch_seconds_per_image_2threads=float(secs))
        f['features'] = feats.astype(np.float32)
        f['x_head'] = x.reshape(-1)[:64].numpy()
        f.create_dataset('block0', data=outs[0][0, :16].numpy(), compression='gzip')
        f.create_dataset('mixed_5b', data=taps['mixed_5b'][0, :16].numpy(), compression='gzip')
        f.create_dataset('block2', data=outs[2][0, :16].numpy(), compression='gzip')
    print('wrote', args.out, os.path.getsize(args.out), 'bytes')


if __name__ == '__main__':
    main()
