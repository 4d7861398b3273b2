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
    """tests/golden/gen_inception.py's network (pytorch-fid's own, hash weights)."""
    gen = load_generator('gen_inception')
    sys.path.insert(0, os.path.abspath(path))
    import pytorch_fid.inception as pfi
    net = gen.build_net(pfi)  # outputs blocks 0-3; the forward runs through all four either way
    return (lambda x: net(x)[3].reshape(x.shape[0], -1)), gen.inputs, 'pytorch_fid ' + \
        str(getattr(sys.modules['pytorch_fid'], '__version__', 'unknown'))


def build_dinov2(path):
    """tests/golden/gen_dinov2.py's network (the official vit_large as dinov2_vitl14, hash weights)."""
    gen = load_generator('gen_dinov2')
    warnings.filterwarnings('ignore', message='xFormers is')  # off on purpose (gen_dinov2.py)
    return gen.build_net(os.path.abspath(path)), gen.inputs, 'dinov2 ' + os.path.abspath(path)


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
