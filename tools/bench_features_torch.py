#!/usr/bin/python3
"""Throughput of the metric feature networks in PyTorch on CPU, the baseline of
`build/metrics/bench_features` (scripts/bench-metrics runs both and prints the ratio). The networks
are the reference code's own, imported at run time from source trees outside this repository
(nothing of them is copied here), built exactly as the golden generators build them and with the
same hash weights and inputs (their hash_tensor() and inputs() are imported from
tests/golden/gen_inception.py and gen_dinov2.py):

  inception: pytorch-fid's InceptionV3 (FID Inception-v3, pool_3 features, resize_input=False,
             normalize_input=False) on (N, 3, 299, 299) preprocessed inputs;
  dinov2:    facebookresearch/dinov2's vit_large as hub/backbones.py's dinov2_vitl14 builds it,
             on (N, 3, 224, 224) preprocessed inputs (xFormers off; on torch < 2.0 the same
             softmax(q·kᵀ·scale)·v stand-in for F.scaled_dot_product_attention as gen_dinov2.py).

    /usr/bin/python3 tools/bench_features_torch.py --net inception --pytorch-fid /tmp/pfid/src \\
        [--images 8] [--threads 2] [--json]
    /usr/bin/python3 tools/bench_features_torch.py --net dinov2 --dinov2 /tmp/dinov2src \\
        [--images 2] [--threads 2] [--json]

Images run one at a time (as edm2c's networks do) under torch.no_grad() after a one-image warm-up;
set-up (weight hashing, model construction) is not timed.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, '..', 'tests', 'golden')


def load_generator(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(GOLDEN, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_inception(path):
    """As tests/golden/gen_inception.py's main() builds it."""
    import torch
    gen = load_generator('gen_inception')
    sys.path.insert(0, os.path.abspath(path))
    import pytorch_fid.inception as pfi
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
    sd = {k: v.clone() if k.endswith('num_batches_tracked') else torch.from_numpy(gen.hash_tensor(k, tuple(v.shape)))
          for k, v in skel.state_dict().items()}
    pfi.load_state_dict_from_url = lambda *a, **kw: sd
    net = pfi.InceptionV3(output_blocks=(3,), resize_input=False, normalize_input=False).eval()
    return (lambda x: net(x)[0].reshape(x.shape[0], -1)), gen.inputs, 'pytorch_fid ' + \
        str(getattr(sys.modules['pytorch_fid'], '__version__', 'unknown'))


def build_dinov2(path):
    """As tests/golden/gen_dinov2.py's main() builds it."""
    os.environ['XFORMERS_DISABLED'] = '1'
    import torch
    import torch.nn.functional as F
    gen = load_generator('gen_dinov2')
    if not hasattr(F, 'scaled_dot_product_attention'):
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            assert attn_mask is None and not is_causal and dropout_p == 0
            s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
            return torch.softmax(q @ k.transpose(-2, -1) * s, dim=-1) @ v
        F.scaled_dot_product_attention = sdpa
    sys.path.insert(0, os.path.abspath(path))
    warnings.filterwarnings('ignore', message='xFormers is')  # off on purpose (see above)
    from dinov2.models.vision_transformer import vit_large
    net = vit_large(patch_size=14, img_size=518, init_values=1.0, ffn_layer='mlp', block_chunks=0,
                    num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1)
    sd = {k: torch.from_numpy(gen.hash_tensor(k, tuple(v.shape))) for k, v in net.state_dict().items()}
    net.load_state_dict(sd, strict=True)
    net.eval()
    return net, gen.inputs, 'dinov2 ' + os.path.abspath(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--net', required=True, choices=('inception', 'dinov2'))
    ap.add_argument('--pytorch-fid', help='directory holding the pytorch_fid package (--net inception)')
    ap.add_argument('--dinov2', help='directory holding the dinov2 package (--net dinov2)')
    ap.add_argument('--images', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()
    src = args.pytorch_fid if args.net == 'inception' else args.dinov2
    if not src:
        ap.error(f'--net {args.net} needs --{"pytorch-fid" if args.net == "inception" else "dinov2"}')

    import torch
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    net, inputs, source = (build_inception if args.net == 'inception' else build_dinov2)(src)
    load = time.perf_counter() - t0
    x = torch.from_numpy(inputs(args.images))
    with torch.no_grad():
        net(x[:1])  # warm-up
        feats = []
        t0 = time.perf_counter()
        for i in range(args.images):
            feats.append(net(x[i:i + 1]))
        dt = time.perf_counter() - t0
    fsum = float(torch.cat(feats).double().sum())
    r = {'impl': 'torch', 'net': args.net, 'images': args.images, 'threads': args.threads, 'seconds': dt,
         'images_per_second': args.images / dt, 'load_seconds': load, 'torch': str(torch.__version__),
         'source': source, 'feature_sum': fsum}
    if args.json:
        print(json.dumps(r))
    else:
        print(f"torch {args.net}: {args.images} images, {args.threads} threads: {dt:.3f} s, "
              f"{r['images_per_second']:.4f} images/s ({dt / args.images:.3f} s/image; set-up {load:.2f} s; "
              f"torch {torch.__version__}; feature sum {fsum:.9g})")


if __name__ == '__main__':
    main()
