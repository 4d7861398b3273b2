#!/usr/bin/python3
"""Golden data for the EDM2 network (tests/unit/test_unet_golden.c, tests/cli/edm2_denoise.sh and
tests/unit/test_netconfig.c). Run by hand, from the repository root, with Debian's Python
(python3-torch 1.13, python3-numpy, python3-h5py), giving the path of a checkout of the reference
implementation, NVlabs/edm2 (commit 4bf8162 was used):

    /usr/bin/python3 tests/golden/gen_edm2_net.py --edm2 /path/to/edm2 [--out tests/golden/edm2_tiny.h5]

The reference code is imported from that checkout at run time and never copied here. This script
only builds its Precond network, feeds it inputs and stores what comes out; the one formula it
writes itself is the EDM2 training loss of a given (σ, noise) pair (edm2-spec.md §6.3), because
the reference's loss class draws σ and the noise itself.

The file (float32 tensors, float64 flop counts), format "edm2c-golden-net", version 1:
  /                     attrs: format, format_version, generator, generator_sha256, torch_version,
                        numpy_version, h5py_version, python_version, edm2_commit, seed, config
                        (JSON of the constructor's arguments), uncond_config
  /params/<name>        the weights every case starts from: randn weights (the reference's own
                        initialisation) and gains drawn from U(0.3, 1.2) with random signs (the
                        reference initialises gains to 0, which would make the U-Net output 0)
  /buffers/<name>       Fourier frequencies and phases
  /params_forced/<name> the weights after one training-mode forward: forced weight normalisation
                        rewrites every multi-dimensional weight in place before use
  /train/<k>/           training step k = 0, 1, 2 (batch 2; σ pairs spanning 0.002 … 80):
                        y (clean data), noise (unit normal; the network sees y + σ·noise), sigma,
                        labels (one-hot), D, logvar, loss (the scalar back-propagated:
                        Σ_elements ℓ / batch), grads/<name> (d loss / d parameter, at the forced
                        weights, for every trainable tensor). Every step starts from /params.
  /eval/                eval-mode forward on /params (no forced normalisation): x, sigma (0.002 …
                        80, one per image), labels (one-hot, the last image all-zero), D, logvar
  /uncond/params, /uncond/buffers, /uncond/eval/
                        the same network with label_dim = 0 (its own weights): eval forward
  /flops/<name>         attrs params (trainable parameters), flops (multiply-adds per evaluation
                        as count_flops.py counts them, traced on CPU), config (JSON) for the tiny
                        configuration and for some presets, conditional and unconditional
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys

import h5py
import numpy as np
import torch

SEED = 20241126
TINY = dict(img_resolution=16, img_channels=2, label_dim=4, model_channels=8,
            channel_mult=[1, 2], num_blocks=2, attn_resolutions=[8], channels_per_head=8,
            dropout=0.0)
TRAIN_SIGMAS = [[0.002, 80.0], [0.05, 1.5], [0.4, 9.0]]
EVAL_SIGMAS = [0.002, 0.02, 0.2, 2.0, 20.0, 80.0]
SIGMA_DATA = 0.5

# Presets whose flops are traced exactly (spec §5 gives the others to two decimals).
FLOP_PRESETS = {
    'img512-xxs': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=64),
    'img512-xs': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=128),
    'img64-xs': dict(img_resolution=64, img_channels=3, label_dim=1000, model_channels=128),
}


def build(edm2, cfg, seed):
    torch.manual_seed(seed)
    net = edm2.Precond(use_fp16=False, **cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 0:
                mag = 0.3 + 0.9 * torch.rand([], generator=g)
                sign = 1.0 if torch.rand([], generator=g) < 0.5 else -1.0
                p.fill_(float(mag) * sign)
    return net


def state(net):
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in net.named_buffers()}
    return params, buffers


def load(net, params):
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(params[n])


def write_tensors(group, tensors):
    for n, t in tensors.items():
        group.create_dataset(n, data=t.detach().numpy().astype(np.float32))


def one_hot(labels, dim):
    out = torch.zeros([len(labels), dim])
    for i, c in enumerate(labels):
        if c >= 0:
            out[i, c] = 1
    return out


def eval_case(net, cfg, g, group):
    n = len(EVAL_SIGMAS)
    x = torch.randn([n, cfg['img_channels'], cfg['img_resolution'], cfg['img_resolution']],
                    generator=g) * 2.0
    sigma = torch.tensor(EVAL_SIGMAS, dtype=torch.float32)
    net.eval()
    with torch.no_grad():
        if cfg['label_dim']:
            labels = one_hot([i % cfg['label_dim'] for i in range(n - 1)] + [-1], cfg['label_dim'])
            D, logvar = net(x, sigma, labels, return_logvar=True)
            group.create_dataset('labels', data=labels.numpy())
        else:
            D, logvar = net(x, sigma, None, return_logvar=True)
    group.create_dataset('x', data=x.numpy())
    group.create_dataset('sigma', data=sigma.numpy())
    group.create_dataset('D', data=D.numpy())
    group.create_dataset('logvar', data=logvar.reshape(-1).numpy())


def edm2_loss(net, y, noise, sigma, labels):
    """EDM2 training loss for given σ and noise (edm2-spec.md §6.3): per element
    ℓ = λ(σ)/exp(u)·(D − y)² + u with λ = (σ² + σd²)/(σ·σd)²; the back-propagated scalar is the sum
    over the batch and all elements divided by the batch size (loss scaling 1, one GPU)."""
    s = sigma.reshape(-1, 1, 1, 1)
    weight = (s ** 2 + SIGMA_DATA ** 2) / (s * SIGMA_DATA) ** 2
    D, logvar = net(y + noise * s, sigma, labels, return_logvar=True)
    loss = (weight / logvar.exp()) * ((D - y) ** 2) + logvar
    return D, logvar, loss.sum() / y.shape[0]


def count_flops(edm2_path, cfg):
    """count_flops.py from the checkout, traced on CPU: it asks for CUDA memory statistics and for
    scaled_dot_product_attention (absent from torch 1.13), so those are stubbed; the net is
    evaluated at batch 1, σ = 0, zero labels, as the script does, in eval mode as edm2-spec.md §5
    (count_flops.py leaves the mode alone; a fresh network is in training mode, which would count
    the forced weight normalisation too)."""
    sys.path.insert(0, edm2_path)
    import count_flops as cf
    torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    if not hasattr(torch.nn.functional, 'scaled_dot_product_attention'):
        torch.nn.functional.scaled_dot_product_attention = lambda *a, **k: None
    from training import networks_edm2 as edm2
    torch.manual_seed(0)
    net = edm2.Precond(use_fp16=False, **cfg).eval()  # as edm2-spec.md §5 (train mode adds forced normalisation)
    res = cf.count_flops(net, verbose=False, device=torch.device('cpu'))
    return int(res.total_params), float(res.total_flops), dict(res.op_flops), dict(res.op_count)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--edm2', required=True, help='path of a checkout of NVlabs/edm2')
    ap.add_argument('--out', default='tests/golden/edm2_tiny.h5')
    ap.add_argument('--flops-only', action='store_true', help='print flop breakdowns and exit')
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.edm2))
    from training import networks_edm2 as edm2
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    if args.flops_only:
        for name, cfg in [('tiny', TINY)] + list(FLOP_PRESETS.items()):
            params, flops, op_flops, op_count = count_flops(args.edm2, cfg)
            print(name, params, repr(flops))
            for op in sorted(op_flops, key=lambda o: -op_flops[o]):
                print(f'  {op:28s} {op_count[op]:5d} {op_flops[op]:.0f}')
        return

    try:
        commit = subprocess.run(['git', '-C', args.edm2, 'rev-parse', 'HEAD'], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = 'unknown (not a git checkout)'
    with open(__file__, 'rb') as f:
        self_sha = hashlib.sha256(f.read()).hexdigest()

    tmp = args.out + '.tmp'
    with h5py.File(tmp, 'w') as f:
        f.attrs['format'] = 'edm2c-golden-net'
        f.attrs['format_version'] = 1
        f.attrs['generator'] = 'tests/golden/gen_edm2_net.py'
        f.attrs['generator_sha256'] = self_sha
        f.attrs['torch_version'] = str(torch.__version__)
        f.attrs['numpy_version'] = str(np.__version__)
        f.attrs['h5py_version'] = str(h5py.__version__)
        f.attrs['python_version'] = platform.python_version()
        f.attrs['edm2_commit'] = commit
        f.attrs['seed'] = SEED
        f.attrs['config'] = json.dumps(TINY)

        net = build(edm2, TINY, SEED)
        params, buffers = state(net)
        write_tensors(f.create_group('params'), params)
        write_tensors(f.create_group('buffers'), buffers)

        g = torch.Generator().manual_seed(SEED + 2)
        res, ch, L = TINY['img_resolution'], TINY['img_channels'], TINY['label_dim']
        for k, sig in enumerate(TRAIN_SIGMAS):
            load(net, params)
            net.train()
            net.zero_grad(set_to_none=True)
            n = len(sig)
            y = torch.randn([n, ch, res, res], generator=g) * SIGMA_DATA
            noise = torch.randn([n, ch, res, res], generator=g)
            sigma = torch.tensor(sig, dtype=torch.float32)
            labels = one_hot(torch.randint(0, L, [n], generator=g).tolist(), L)
            D, logvar, loss = edm2_loss(net, y, noise, sigma, labels)
            if k == 0:
                write_tensors(f.create_group('params_forced'), state(net)[0])
            loss.backward()
            grp = f.create_group(f'train/{k}')
            for name, t in [('y', y), ('noise', noise), ('sigma', sigma), ('labels', labels),
                            ('D', D), ('logvar', logvar.reshape(-1))]:
                grp.create_dataset(name, data=t.detach().numpy())
            grp.create_dataset('loss', data=np.float64(loss.item()))
            write_tensors(grp.create_group('grads'),
                          {n: p.grad for n, p in net.named_parameters()})

        load(net, params)
        eval_case(net, TINY, g, f.create_group('eval'))

        ucfg = dict(TINY, label_dim=0)
        f.attrs['uncond_config'] = json.dumps(ucfg)
        unet = build(edm2, ucfg, SEED + 10)
        up, ub = state(unet)
        write_tensors(f.create_group('uncond/params'), up)
        write_tensors(f.create_group('uncond/buffers'), ub)
        eval_case(unet, ucfg, g, f.create_group('uncond/eval'))

        fl = f.create_group('flops')
        todo = [('tiny', TINY), ('tiny-uncond', ucfg)]
        for name, cfg in FLOP_PRESETS.items():
            todo += [(name, cfg), (name + '-uncond', dict(cfg, label_dim=0))]
        for name, cfg in todo:
            nparams, flops, _, _ = count_flops(args.edm2, cfg)
            d = fl.create_dataset(name, data=np.float64(flops))
            d.attrs['params'] = nparams
            d.attrs['config'] = json.dumps(cfg)
            print(f'{name}: {nparams} params, {flops:.0f} flops', file=sys.stderr)
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes)', file=sys.stderr)


if __name__ == '__main__':
    main()
