#!/usr/bin/python3
"""Golden data for metrics/dinov2.h (tests/unit/test_dinov2.c): the official DINOv2 ViT-L/14
(facebookresearch/dinov2, the network of EDM2's FD_DINOv2, metrics-reference.md §1.2) with
deterministic hash weights, run by PyTorch. Run by hand with Debian's python3-torch (1.13),
python3-numpy and python3-h5py, and the dinov2 source outside this repository (never vendored),
e.g. from a clone or a bare mirror:

    git -C <dinov2 clone or mirror> archive HEAD dinov2 | tar -x -C /tmp/dinov2src
    /usr/bin/python3 tests/golden/gen_dinov2.py --dinov2 /tmp/dinov2src [--out tests/golden/dinov2.h5]

The architecture is the official code's own: vit_large(patch_size=14, img_size=518,
init_values=1.0, block_chunks=0, num_register_tokens=0, interpolate_antialias=False,
interpolate_offset=0.1) as dinov2/hub/backbones.py's dinov2_vitl14 builds it, loaded with
strict=True from the hash weights below. torch 1.13 lacks F.scaled_dot_product_attention (torch 2.0),
which dinov2's Attention calls; it is defined here before the import as softmax(q·kᵀ·scale)·v,
scale = 1/sqrt(64) (metrics-reference.md §7); xFormers is disabled (XFORMERS_DISABLED=1). The input
is 224×224, so the 37×37 positional embedding goes through the official interpolate_pos_encoding
(bicubic, scale_factor (16 + 0.1)/37, antialias=False); its output is stored.

Weights (implemented identically in metrics/dinov2.c, dinov2_hash_source()), with n(name, i) the
Irwin-Hall hash normal of tests/golden/gen_inception.py (FNV-1a 64 of the name + i through
splitmix64; mean 0, variance 1, bit-identical in C and numpy), i the row-major element index:
  cls_token, pos_embed                   = float32(0.5·n)
  mask_token                             = 0 (unused at inference)
  patch_embed.proj.weight                = float32(n / sqrt(588))      (fan_in 3·14·14)
  *.weight of qkv, proj, fc1, fc2        = float32(n / sqrt(fan_in))   (fan_in 1024, fc2 4096)
  every bias (patch, linear, LayerNorm)  = float32(0.05·n)
  LayerNorm weights (norm1, norm2, norm) = float32(1 + 0.1·n)
  ls1.gamma, ls2.gamma                   = float32(0.5 + 0.1·n)
Inputs: 2 preprocessed images (3, 224, 224): x[i] = float32((b/255 − mean[c]) / std[c]) in float64,
b = r('input', i) >> 56 (i over the whole (2, 3, 224, 224) tensor, c its channel), mean = (0.485,
0.456, 0.406), std = (0.229, 0.224, 0.225).

Format "edm2c-golden-dinov2", v1: /features float32 [2, 1024] (the model's output: CLS token after
the final LayerNorm); /x_head float32 [64] (the first inputs, a check of the formula);
/pos_embed float32 [257, 64] (the interpolated positional embedding, first 64 of 1024 channels:
every channel is interpolated alike); /block0 and /block11 float32 [8, 1024] (image 0's first 8
tokens after blocks 0 and 11); root attributes generator, generator_sha256, torch_version,
numpy_version, dinov2_commit (when given), torch_seconds_per_image_2threads.
"""
import argparse
import hashlib
import math
import os
import sys
import time

import h5py
import numpy as np

# The hash of metrics/inception.h, shared by both networks' test weights (gen_inception.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_inception import hash_bits, hash_normal  # noqa: E402


def hash_tensor(name, shape):
    n = int(np.prod(shape))
    if name in ('cls_token', 'pos_embed'):
        v = 0.5 * hash_normal(name, n)
    elif name == 'mask_token':
        v = np.zeros(n)
    elif name == 'patch_embed.proj.weight':
        v = hash_normal(name, n) / math.sqrt(588.0)
    elif name.endswith('.bias'):
        v = 0.05 * hash_normal(name, n)
    elif name.endswith('norm1.weight') or name.endswith('norm2.weight') or name == 'norm.weight':
        v = 1.0 + 0.1 * hash_normal(name, n)
    elif name.endswith('.gamma'):
        v = 0.5 + 0.1 * hash_normal(name, n)
    elif name.endswith('.weight'):
        assert len(shape) == 2, name
        v = hash_normal(name, n) / math.sqrt(float(shape[1]))
    else:
        raise KeyError(name)
    return v.astype(np.float32).reshape(shape)


MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def inputs(n):
    shape = (n, 3, 224, 224)
    b = (hash_bits('input', int(np.prod(shape))) >> np.uint64(56)).astype(np.float64).reshape(shape)
    mean = np.array(MEAN).reshape(1, 3, 1, 1)
    std = np.array(STD).reshape(1, 3, 1, 1)
    return ((b / 255.0 - mean) / std).astype(np.float32)


def build_net(dinov2_dir):
    """The official dinov2_vitl14 (as dinov2/hub/backbones.py builds it) with the hash weights, in eval
    mode; SDPA emulated on torch < 2."""
    os.environ['XFORMERS_DISABLED'] = '1'
    import torch
    import torch.nn.functional as F

    if not hasattr(F, 'scaled_dot_product_attention'):
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            assert attn_mask is None and not is_causal and dropout_p == 0
            s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
            return torch.softmax(q @ k.transpose(-2, -1) * s, dim=-1) @ v
        F.scaled_dot_product_attention = sdpa
    sys.path.insert(0, dinov2_dir)
    from dinov2.models.vision_transformer import vit_large

    # dinov2/hub/backbones.py, _make_dinov2_model for dinov2_vitl14
    net = vit_large(patch_size=14, img_size=518, init_values=1.0, ffn_layer='mlp', block_chunks=0,
                    num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1)
    t0 = time.perf_counter()
    sd = {k: torch.from_numpy(hash_tensor(k, tuple(v.shape))) for k, v in net.state_dict().items()}
    print(f'{len(sd)} tensors, {sum(v.numel() for v in sd.values())} parameters, '
          f'hashed in {time.perf_counter() - t0:.1f} s')
    net.load_state_dict(sd, strict=True)
    net.eval()
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='tests/golden/dinov2.h5')
    ap.add_argument('--dinov2', required=True, help='directory holding the dinov2 package')
    ap.add_argument('--dinov2-commit', default='', help='the commit the source came from (recorded)')
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    net = build_net(args.dinov2)
    taps = {}
    orig = net.interpolate_pos_encoding

    def interp(x, w, h):
        p = orig(x, w, h)
        taps['pos_embed'] = p.detach().clone()
        return p
    net.interpolate_pos_encoding = interp
    net.blocks[0].register_forward_hook(lambda m, i, o: taps.setdefault('block0', o.detach().clone()))
    net.blocks[11].register_forward_hook(lambda m, i, o: taps.setdefault('block11', o.detach().clone()))
    x = torch.from_numpy(inputs(2))
    with torch.no_grad():
        feats = net(x).numpy()
        t0 = time.perf_counter()
        net(x[:1])
        secs = time.perf_counter() - t0
    pos = taps['pos_embed'][0].numpy()
    assert pos.shape == (257, 1024) and feats.shape == (2, 1024)
    for name, t in [('pos_embed', pos), ('block0', taps['block0'].numpy()), ('block11', taps['block11'].numpy()),
                    ('features', feats)]:
        print(f'{name:9s} {t.shape} rms {np.sqrt((t.astype(np.float64) ** 2).mean()):.4g} max {np.abs(t).max():.4g}')
    print(f'one 224x224 forward, 2 threads: {secs:.3f} s')

    with open(__file__, 'rb') as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    with h5py.File(args.out, 'w') as f:
        f.attrs['format'] = 'edm2c-golden-dinov2'
        f.attrs['version'] = 1
        f.attrs['generator'] = 'tests/golden/gen_dinov2.py'
        f.attrs['generator_sha256'] = sha
        f.attrs['torch_version'] = str(torch.__version__)
        f.attrs['numpy_version'] = str(np.__version__)
        f.attrs['dinov2_commit'] = args.dinov2_commit
        f.attrs['torch_seconds_per_image_2threads'] = secs
        f['features'] = feats.astype(np.float32)
        f['x_head'] = x.numpy().reshape(-1)[:64]
        f['pos_embed'] = np.ascontiguousarray(pos[:, :64]).astype(np.float32)
        f['block0'] = taps['block0'][0, :8].numpy().astype(np.float32)
        f['block11'] = taps['block11'][0, :8].numpy().astype(np.float32)
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes)')


if __name__ == '__main__':
    main()
