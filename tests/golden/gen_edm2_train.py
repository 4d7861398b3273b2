#!/usr/bin/python3
"""Golden data for ten EDM2 training steps (tests/unit/test_train_golden.c). Run by hand, from the
repository root, with Debian's Python (python3-torch 1.13, python3-numpy, python3-h5py), giving the
path of a checkout of the reference implementation, NVlabs/edm2 (commit 4bf8162 was used):

    /usr/bin/python3 tests/golden/gen_edm2_train.py --edm2 /path/to/edm2 [--out tests/golden/edm2_train_tiny.h5]

The reference code is imported from that checkout at run time and never copied here: its Precond
(training mode), its learning_rate_schedule (training/training_loop.py) and its PowerFunctionEMA
(training/phema.py), with torch.optim.Adam as training_loop.py builds it. The network, its seeding
and the loss formula are those of gen_edm2_net.py (imported from next to this file; its SHA-256
is recorded too). What this script does itself is the order of one training iteration, as
training_loop.py runs it on one GPU (edm2-spec.md §6.6):

    zero grads; for each of the accumulation rounds (batch_gpu images):
        ℓ = per-element EDM2 loss (edm2-spec.md §6.3) of the round, with σ and noise drawn HERE
            (the reference's loss class draws its own); ℓ.sum().mul(1 / batch).backward()
    lr = learning_rate_schedule(cur_nimg, batch, ref_lr, ref_batches, rampup_Mimg)  (before the
         increment: the first step has lr 0); written into the param group
    nan_to_num(grad, 0, 0, 0) on every gradient (force_finite); Adam step
    cur_nimg += batch; ema.update(cur_nimg, batch)

in float32 on CPU, one thread. The training-mode forward normalises every weight in place before
use (forced weight normalisation), so the EMAs average the post-Adam raw weights.

The file (float32 tensors; loss and lr float64), format "edm2c-golden-train", version 1:
  /                     attrs: format, format_version, generator, generator_sha256, helpers
                        (gen_edm2_net.py), helpers_sha256, torch_version, numpy_version,
                        h5py_version, python_version, edm2_commit, seed, config (JSON of the
                        network constructor's arguments, = gen_edm2_net.py's TINY), train_config
                        (JSON: batch, batch_gpu, ref_lr, ref_batches, rampup_Mimg, rampup_images,
                        betas, eps, ema_stds, sigma_data, steps, extreme_step, and P_mean, P_std
                        of the σ drawn for the other steps), steps, data_seed
  /init/params/<name>   the weights before the first step (gen_edm2_net.py's build(): the
                        reference's randn init, gains from U(0.3, 1.2) with random signs; raw,
                        not yet normalised; = /params of edm2_tiny.h5)
  /buffers/<name>       Fourier frequencies and phases (never change)
  /steps/<k>/           step k = 0 … steps − 1: y (batch, C, H, W) clean data, noise (unit
                        normal; the network sees y + σ·noise), sigma (batch), labels (one-hot),
                        lr (the learning rate of the step, float64), loss (mean per-element ℓ
                        over the whole batch, float64); step `extreme_step` has σ = 0.002 and 80
  /final/params/<name>  the live network's weights after the last step (post-Adam, raw)
  /final/adam_m/<name>, /final/adam_v/<name>
                        Adam's exp_avg and exp_avg_sq; attr adam_step on /final
  /final/ema_0.050/<name>, /final/ema_0.100/<name>
                        the parameters of the two PowerFunctionEMA copies; attr nimg on /final
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
import gen_edm2_net as net_gen  # noqa: E402  (TINY, SEED, build, state, write_tensors, one_hot)

TINY = net_gen.TINY
SEED = net_gen.SEED
SIGMA_DATA = net_gen.SIGMA_DATA
DATA_SEED = SEED + 100

STEPS = 10
BATCH = 4
BATCH_GPU = 2             # two accumulation rounds
REF_LR = 0.01
REF_BATCHES = 4           # decay from cur_nimg > 16 on (steps 5 … 9)
RAMPUP_IMAGES = 12        # warm-up over 3 steps: lr factors 0, 1/3, 2/3, then 1
RAMPUP_MIMG = RAMPUP_IMAGES / 1e6   # the reference's unit
BETAS = (0.9, 0.99)
EPS = 1e-8
EMA_STDS = [0.050, 0.100]
P_MEAN, P_STD = -0.4, 1.0  # σ distribution of the other steps (img512 presets)
EXTREME_STEP = 6
EXTREME_SIGMAS = [0.002, 80.0, 0.05, 9.0]


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def per_element_loss(net, y, noise, sigma, labels):
    """ℓ = λ(σ)/exp(u)·(D − y)² + u per element, λ = (σ² + σd²)/(σ·σd)² (edm2-spec.md §6.3), with
    the network seeing y + noise·σ (as gen_edm2_net.edm2_loss, which returns only the sum)."""
    s = sigma.reshape(-1, 1, 1, 1)
    weight = (s ** 2 + SIGMA_DATA ** 2) / (s * SIGMA_DATA) ** 2
    D, logvar = net(y + noise * s, sigma, labels, return_logvar=True)
    return (weight / logvar.exp()) * ((D - y) ** 2) + logvar


def draw(g, k):
    res, ch, L = TINY['img_resolution'], TINY['img_channels'], TINY['label_dim']
    y = torch.randn([BATCH, ch, res, res], generator=g) * SIGMA_DATA
    noise = torch.randn([BATCH, ch, res, res], generator=g)
    z = torch.randn([BATCH], generator=g)
    sigma = EXTREME_SIGMAS if k == EXTREME_STEP else (z * P_STD + P_MEAN).exp().tolist()
    sigma = torch.tensor(sigma, dtype=torch.float32)
    labels = net_gen.one_hot(torch.randint(0, L, [BATCH], generator=g).tolist(), L)
    return y, noise, sigma, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--edm2', required=True, help='path of a checkout of NVlabs/edm2')
    ap.add_argument('--out', default='tests/golden/edm2_train_tiny.h5')
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.edm2))
    from training import networks_edm2 as edm2
    from training import phema
    from training import training_loop
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    try:
        commit = subprocess.run(['git', '-C', args.edm2, 'rev-parse', 'HEAD'], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = 'unknown (not a git checkout)'

    train_config = dict(batch=BATCH, batch_gpu=BATCH_GPU, ref_lr=REF_LR, ref_batches=REF_BATCHES,
                        rampup_Mimg=RAMPUP_MIMG, rampup_images=RAMPUP_IMAGES, betas=list(BETAS),
                        eps=EPS, ema_stds=EMA_STDS, sigma_data=SIGMA_DATA, steps=STEPS,
                        extreme_step=EXTREME_STEP, P_mean=P_MEAN, P_std=P_STD)

    # The network as training_loop.py holds it: built (gen_edm2_net's weights), in training mode,
    # then the optimizer and the EMA copies of it.
    net = net_gen.build(edm2, TINY, SEED)
    net.train()
    params0, buffers = net_gen.state(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=REF_LR, betas=BETAS, eps=EPS)
    ema = phema.PowerFunctionEMA(net, stds=EMA_STDS)
    g = torch.Generator().manual_seed(DATA_SEED)
    rounds = BATCH // BATCH_GPU
    M = TINY['img_channels'] * TINY['img_resolution'] ** 2

    tmp = args.out + '.tmp'
    with h5py.File(tmp, 'w') as f:
        f.attrs['format'] = 'edm2c-golden-train'
        f.attrs['format_version'] = 1
        f.attrs['generator'] = 'tests/golden/gen_edm2_train.py'
        f.attrs['generator_sha256'] = sha256(os.path.abspath(__file__))
        f.attrs['helpers'] = 'tests/golden/gen_edm2_net.py'
        f.attrs['helpers_sha256'] = sha256(net_gen.__file__)
        f.attrs['torch_version'] = str(torch.__version__)
        f.attrs['numpy_version'] = str(np.__version__)
        f.attrs['h5py_version'] = str(h5py.__version__)
        f.attrs['python_version'] = platform.python_version()
        f.attrs['edm2_commit'] = commit
        f.attrs['seed'] = SEED
        f.attrs['data_seed'] = DATA_SEED
        f.attrs['config'] = json.dumps(TINY)
        f.attrs['train_config'] = json.dumps(train_config)
        f.attrs['steps'] = STEPS
        net_gen.write_tensors(f.create_group('init/params'), params0)
        net_gen.write_tensors(f.create_group('buffers'), buffers)

        cur_nimg = 0
        for k in range(STEPS):
            y, noise, sigma, labels = draw(g, k)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for r in range(rounds):
                sl = slice(r * BATCH_GPU, (r + 1) * BATCH_GPU)
                loss = per_element_loss(net, y[sl], noise[sl], sigma[sl], labels[sl])
                loss.sum().mul(1 / BATCH).backward()
                total += loss.detach().double().sum().item()
            lr = training_loop.learning_rate_schedule(cur_nimg=cur_nimg, batch_size=BATCH,
                                                      ref_lr=REF_LR, ref_batches=REF_BATCHES,
                                                      rampup_Mimg=RAMPUP_MIMG)
            assert (lr == 0) == (k == 0), (k, lr)  # lr of the images seen before the step
            for group in optimizer.param_groups:
                group['lr'] = lr
            for p in net.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=0, neginf=0, out=p.grad)
            optimizer.step()
            cur_nimg += BATCH
            ema.update(cur_nimg=cur_nimg, batch_size=BATCH)

            grp = f.create_group(f'steps/{k}')
            for name, t in [('y', y), ('noise', noise), ('sigma', sigma), ('labels', labels)]:
                grp.create_dataset(name, data=t.numpy())
            grp.create_dataset('lr', data=np.float64(lr))
            grp.create_dataset('loss', data=np.float64(total / (BATCH * M)))
            print(f'step {k}: lr {lr:.6g}, loss {total / (BATCH * M):.9g}, sigma '
                  f'{[round(s, 4) for s in sigma.tolist()]}', file=sys.stderr)

        fin = f.create_group('final')
        fin.attrs['nimg'] = cur_nimg
        names = [n for n, _ in net.named_parameters()]
        net_gen.write_tensors(fin.create_group('params'), net_gen.state(net)[0])
        st = [optimizer.state[p] for p in net.parameters()]
        steps = {int(s['step']) for s in st}
        assert steps == {STEPS}, steps
        fin.attrs['adam_step'] = STEPS
        net_gen.write_tensors(fin.create_group('adam_m'), dict(zip(names, [s['exp_avg'] for s in st])))
        net_gen.write_tensors(fin.create_group('adam_v'), dict(zip(names, [s['exp_avg_sq'] for s in st])))
        for std, copy in zip(EMA_STDS, ema.emas):
            net_gen.write_tensors(fin.create_group(f'ema_{std:.3f}'),
                                  {n: p.detach() for n, p in copy.named_parameters()})
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes)', file=sys.stderr)


if __name__ == '__main__':
    main()
