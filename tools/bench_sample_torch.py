#!/usr/bin/python3
"""Sampling throughput of the reference EDM2 sampler in PyTorch on CPU, the baseline of
`edm2-generate` (scripts/bench-generate runs both and prints the ratio). The network is the
reference's own Precond and the sampler its own edm_sampler, imported at run time from a checkout
of NVlabs/edm2 (nothing of it is copied here), with the weights of an edm2c model file or
checkpoint (/params and /buffers, matched by name), so both sides run the same network.

    /usr/bin/python3 tools/bench_sample_torch.py --edm2 /path/to/edm2 --net MODEL.h5 \\
        [--images 32] [--batch 32] [--steps 32] [--threads 2] [--json]
"""
import argparse
import json
import os
import sys
import time
import types


def import_reference(path):
    """generate_images.py imports click, tqdm and PIL at module level; the sampler needs none of
    them, so stand-ins are used where Debian's packages are missing."""
    for name in ('click', 'tqdm', 'PIL', 'PIL.Image'):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, os.path.abspath(path))
    from training import networks_edm2
    import generate_images
    return networks_edm2, generate_images


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--edm2', required=True, help='path of a checkout of NVlabs/edm2')
    ap.add_argument('--net', required=True, help='edm2c model file or checkpoint (HDF5)')
    ap.add_argument('--images', type=int, default=32)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--steps', type=int, default=32)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()

    import h5py
    import numpy
    import torch
    torch.set_num_threads(args.threads)
    edm2, gen = import_reference(args.edm2)
    with h5py.File(args.net, 'r') as f:
        cfg = json.loads(f.attrs['config'])
        keys = ['img_resolution', 'img_channels', 'label_dim', 'model_channels', 'channel_mult',
                'channel_mult_noise', 'channel_mult_emb', 'num_blocks', 'attn_resolutions', 'label_balance',
                'concat_balance', 'channels_per_head', 'dropout', 'res_balance', 'attn_balance', 'clip_act',
                'logvar_channels']
        net = edm2.Precond(use_fp16=False, sigma_data=cfg.get('sigma_data', 0.5),
                           **{k: cfg[k] for k in keys if k in cfg})
        state = {}
        for group in ('params', 'buffers'):
            for name, d in f[group].items():
                state[name] = torch.as_tensor(numpy.asarray(d[()], dtype=numpy.float32))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f'{args.net}: tensors do not match the reference network: missing {missing[:3]}, '
                 f'unexpected {unexpected[:3]}')
    net.eval().requires_grad_(False)
    C, R, L = net.img_channels, net.img_resolution, net.label_dim
    gen_torch = torch.Generator().manual_seed(0)

    def run(n):
        noise = torch.randn([n, C, R, R], generator=gen_torch)
        labels = torch.eye(L)[torch.randint(L, size=[n], generator=gen_torch)] if L else None
        with torch.no_grad():
            gen.edm_sampler(net, noise, labels, num_steps=args.steps)

    run(min(args.batch, args.images))  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < args.images:
        n = min(args.batch, args.images - done)
        run(n)
        done += n
    dt = time.perf_counter() - t0
    ips = args.images / dt
    if args.json:
        print(json.dumps({'impl': 'pytorch', 'torch': str(torch.__version__), 'images': args.images,
                          'batch': args.batch, 'steps': args.steps, 'threads': torch.get_num_threads(),
                          'seconds': dt, 'images_per_second': ips}))
    else:
        print(f'pytorch {torch.__version__}: {args.images} images, {args.steps} steps, batch {args.batch}, '
              f'{torch.get_num_threads()} threads: {dt:.2f} s, {ips:.2f} images/s')


if __name__ == '__main__':
    main()
