#!/usr/bin/python3
"""Training-step throughput of the reference EDM2 network in PyTorch on CPU, the baseline of
trainer/bench_unet (scripts/bench-unet runs both and prints the ratio). The network is the
reference's own Precond, imported at run time from a checkout of NVlabs/edm2 (nothing of it is
copied here); the step is what bench_unet times: a training-mode forward with the log-variance,
the EDM2 loss for given σ and noise, and the backward.

    /usr/bin/python3 tools/bench_unet_torch.py --edm2 /path/to/edm2 --preset fmnist --batch 32 \\
        --threads 2 [--iters 10] [--warmup 2] [--json]

Network settings come from edm2-train --describe --json (its "config"), so both sides build the
same network; pass that JSON with --config or let the script call edm2-train (--edm2-train PATH).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--edm2', required=True, help='path of a checkout of NVlabs/edm2')
    ap.add_argument('--preset', default='fmnist')
    ap.add_argument('--config', help='network constructor arguments as JSON (default: ask edm2-train)')
    ap.add_argument('--edm2-train', default='build/trainer/edm2-train', help='edm2-train binary')
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--eval', action='store_true', help='time eval-mode forwards only')
    ap.add_argument('--optimizer', action='store_true',
                    help='time whole training steps: also nan_to_num, Adam and the reference PowerFunctionEMA update')
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.edm2))
    from training import networks_edm2 as edm2
    from training import phema

    if args.config:
        cfg = json.loads(args.config)
    else:
        out = subprocess.run([args.edm2_train, '--preset', args.preset, '--describe', '--json'],
                             capture_output=True, text=True, check=True).stdout
        cfg = json.loads(out)['config']
    sigma_data = cfg.pop('sigma_data', 0.5)
    cfg.pop('resample_filter', None)
    p_mean, p_std = (-0.4, 1.0) if args.preset.startswith('img512') else (-0.8, 1.6)

    torch.manual_seed(0)
    net = edm2.Precond(use_fp16=False, sigma_data=sigma_data, **cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 0:
                p.fill_(0.5)  # as bench_unet: nonzero gains
    n, res, ch, L = args.batch, cfg['img_resolution'], cfg['img_channels'], cfg['label_dim']
    y = torch.randn([n, ch, res, res]) * 0.5
    sigma = (torch.randn([n]) * p_std + p_mean).exp()
    noise = torch.randn_like(y) * sigma.reshape(-1, 1, 1, 1)
    labels = torch.zeros([n, L])
    for i in range(n):
        if L:
            labels[i, i % L] = 1
    labels = labels if L else None
    w = ((sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2).reshape(-1, 1, 1, 1)

    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.9, 0.99)) if args.optimizer else None
    ema = phema.PowerFunctionEMA(net, stds=[0.050, 0.100]) if args.optimizer else None
    nimg = [0]

    def step():
        if args.eval:
            with torch.no_grad():
                net(y + noise, sigma, labels)
            return
        net.zero_grad(set_to_none=True)
        D, logvar = net(y + noise, sigma, labels, return_logvar=True)
        loss = ((w / logvar.exp()) * (D - y) ** 2 + logvar).sum() / n
        loss.backward()
        if args.optimizer:  # as the reference's training loop does after the backward
            for p in net.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=0, neginf=0, out=p.grad)
            opt.step()
            nimg[0] += n
            ema.update(cur_nimg=nimg[0], batch_size=n)

    net.train(not args.eval)
    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    dt = (time.perf_counter() - t0) / args.iters
    ips = n / dt
    if args.json:
        print(json.dumps({'impl': 'pytorch', 'torch': str(torch.__version__), 'preset': args.preset,
                          'mode': 'eval' if args.eval else 'step' if args.optimizer else 'train', 'batch': n,
                          'threads': torch.get_num_threads(), 'iters': args.iters,
                          'seconds_per_iter': dt, 'images_per_second': ips}))
    else:
        print(f'pytorch {torch.__version__} {args.preset} {"eval forward" if args.eval else "forward+backward"} '
              f'batch {n}, {torch.get_num_threads()} threads: {dt:.4f} s/iter, {ips:.2f} images/s')


if __name__ == '__main__':
    main()
