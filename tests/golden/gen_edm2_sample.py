#!/usr/bin/python3
"""Golden data for the EDM2 sampler (tests/unit/test_generate_golden.c). Run by hand, from the
repository root, with Debian's Python (python3-torch 1.13, python3-numpy, python3-h5py), giving the
path of a checkout of the reference implementation, NVlabs/edm2 (commit 4bf8162 was used):

    /usr/bin/python3 tests/golden/gen_edm2_sample.py --edm2 /path/to/edm2 [--out tests/golden/edm2_sample_tiny.h5]

The reference code is imported from that checkout at run time and never copied here: its Precond
(training/networks_edm2.py) and its sampler, edm_sampler of generate_images.py, which is called
as it is with the noise, labels and options of each case, on CPU in float32, one thread.
generate_images.py imports tqdm at the top without using it in the sampler; when tqdm is not
installed (Debian's python3-tqdm is not a dependency of these scripts), an empty stand-in module
is registered so that the import succeeds. Two things are observed rather than recomputed:

  * randn_like: the sampler takes the function that draws the churn noise as an argument; this
    script passes one that returns pre-drawn tensors, the one of step i at step i, and records at
    which steps it was called (the step is the number of main-network calls so far / 2: every
    earlier step made an Euler and a Heun call);
  * the time steps: the main network is wrapped to record the σ of every call (a 0-dim float32
    tensor). Step i's Euler call receives t̂_i (= t_i without churn), step i's Heun call t_{i+1};
    so t_0 is the first call's σ (no case churns at step 0; checked), t_1 … t_{N−1} are the Heun
    calls' σ, and t_N = 0 is appended (never passed to a network).

The networks are gen_edm2_net.py's tiny ones (imported from next to this file, its SHA-256 is
recorded), built by its build() and checked bit for bit against /params, /buffers, /uncond/params
and /uncond/buffers of tests/golden/edm2_tiny.h5 (--nets), which the C test loads them from:
  main     the conditional tiny network (config; seed SEED)
  uncond   the unconditional one (uncond_config; SEED + 10): classifier-free guidance
  autog    a conditional tiny network with other weights (SEED + 20): autoguidance; its weights
           are stored here (/nets/autog/params, /nets/autog/buffers) since edm2_tiny.h5 lacks them
All are in eval mode (no forced weight normalisation), as generate_images.py uses them.

The file (float32 tensors), format "edm2c-golden-sample", version 1:
  /                     attrs: format, format_version, generator, generator_sha256, helpers
                        (gen_edm2_net.py), helpers_sha256, nets (the path of edm2_tiny.h5 used),
                        nets_sha256, torch_version, numpy_version, h5py_version, python_version,
                        edm2_commit, seed, config, uncond_config, tqdm_stub (1 when stubbed)
  /nets/autog/params/<name>, /nets/autog/buffers/<name>
  /cases/<name>/        attrs: the sampler's options as passed (steps, sigma_min, sigma_max, rho,
                        guidance, S_churn, S_min, S_max, S_noise; float64, S_max may be inf),
                        gnet ("none", "uncond" or "autog"), labels_none (1: the sampler got
                        labels=None, stored labels are zeros), about (one line)
                        noise [n, C, H, W]      the unit-normal noise given to the sampler
                        labels [n, L]           one-hot (or zeros, see labels_none)
                        x_final [n, C, H, W]    what the sampler returned
                        t_steps [steps + 1]     the reference's time steps, observed as above
                        sigmas [2·steps − 1]    σ of every main-network call, in order
                        churn [steps, n, C, H, W], churn_steps [steps] (int8)
                                                only when S_churn > 0: the tensor randn_like
                                                returned at step i (zeros at steps where it was
                                                not called), and 1 at the steps where it was
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import types

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
import gen_edm2_net as net_gen  # noqa: E402  (TINY, SEED, build, state, write_tensors, one_hot)

TINY = net_gen.TINY
SEED = net_gen.SEED
N_IMAGES = 4
DEFAULTS = dict(steps=32, sigma_min=0.002, sigma_max=80.0, rho=7.0, guidance=1.0, S_churn=0.0,
                S_min=0.0, S_max=float('inf'), S_noise=1.0)

# name, options (over DEFAULTS), guiding net, labels None?, about
CASES = [
    ('det', dict(), 'none', False, 'deterministic Heun, 32 steps, the default schedule'),
    ('guid_uncond', dict(guidance=1.8), 'uncond', False,
     'classifier-free guidance w = 1.8 by the unconditional net (lerp branch w >= 0.5)'),
    ('churn', dict(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003), 'none', False,
     'stochastic: gamma = sqrt(2) - 1 (S_churn/N = 1.25 is larger) on the steps in [0.05, 50]'),
    ('rho3', dict(steps=5, rho=3.0, sigma_min=0.01, sigma_max=20.0), 'none', True,
     '5 steps, rho 3 (torch.pow\'s b*b*b kernel), sigma 0.01 ... 20, labels=None (zeros)'),
    ('autog_churn', dict(steps=8, guidance=2.2, S_churn=2.0, S_min=0.1, S_max=10.0), 'autog',
     False, 'autoguidance w = 2.2 by another conditional net, churn with gamma = S_churn/N = 0.25'),
    ('guid_small_w', dict(steps=6, guidance=0.3, sigma_max=40.0), 'uncond', False,
     'guidance w = 0.3 (lerp branch w < 0.5), 6 steps, sigma_max 40'),
]


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_against(net, f, group_params, group_buffers):
    """The net's weights equal the file's, bit for bit (the C test loads them from there)."""
    params, buffers = net_gen.state(net)
    for group, tensors in ((group_params, params), (group_buffers, buffers)):
        assert set(f[group].keys()) == set(tensors.keys()), group
        for name, t in tensors.items():
            ref = f[group][name][()]
            assert np.array_equal(t.numpy(), ref), f'{group}/{name} differs from the nets file'


def import_sampler(edm2_path):
    stub = 0
    try:
        import tqdm  # noqa: F401
    except ImportError:
        sys.modules['tqdm'] = types.ModuleType('tqdm')  # imported, unused by edm_sampler
        stub = 1
    import generate_images
    return generate_images.edm_sampler, stub


def run_case(sampler, net, gnets, g, name, opts, gnet_kind, labels_none, grp):
    res, ch, L = TINY['img_resolution'], TINY['img_channels'], TINY['label_dim']
    n, steps = N_IMAGES, opts['steps']
    noise = torch.randn([n, ch, res, res], generator=g)
    classes = torch.randint(0, L, [n], generator=g).tolist()
    labels = net_gen.one_hot(classes, L)
    churn = torch.randn([steps, n, ch, res, res], generator=g) if opts['S_churn'] > 0 else None

    sigmas = []

    def main_net(x, t, class_labels):
        assert t.dim() == 0 and t.dtype == torch.float32
        sigmas.append(t.clone())
        return net(x, t, class_labels)

    churn_steps = np.zeros(steps, dtype=np.int8)

    def randn_like(x):
        assert len(sigmas) % 2 == 0
        i = len(sigmas) // 2
        assert churn is not None and x.shape == churn[i].shape and x.dtype == torch.float32
        assert churn_steps[i] == 0
        churn_steps[i] = 1
        return churn[i].clone()

    gnet = gnets[gnet_kind]
    with torch.no_grad():
        x = sampler(main_net, noise, None if labels_none else labels, gnet=gnet,
                    num_steps=steps, sigma_min=opts['sigma_min'], sigma_max=opts['sigma_max'],
                    rho=opts['rho'], guidance=opts['guidance'], S_churn=opts['S_churn'],
                    S_min=opts['S_min'], S_max=opts['S_max'], S_noise=opts['S_noise'],
                    dtype=torch.float32, randn_like=randn_like)
    assert x.dtype == torch.float32 and torch.isfinite(x).all(), name
    assert len(sigmas) == 2 * steps - 1, (name, len(sigmas))
    assert churn_steps[0] == 0, 't_0 is observed only without churn at step 0'
    s = torch.stack(sigmas).numpy()
    t_steps = np.concatenate([s[:1], s[1::2], np.zeros(1, np.float32)]).astype(np.float32)
    for i in range(steps):  # Euler calls see t_i at the steps without churn
        assert churn_steps[i] or s[2 * i] == t_steps[i], (name, i)

    for k, v in dict(opts).items():
        grp.attrs[k] = np.int64(v) if k == 'steps' else np.float64(v)
    grp.attrs['gnet'] = gnet_kind
    grp.attrs['labels_none'] = int(labels_none)
    grp.create_dataset('noise', data=noise.numpy())
    grp.create_dataset('labels', data=(torch.zeros_like(labels) if labels_none else labels).numpy())
    grp.create_dataset('x_final', data=x.numpy())
    grp.create_dataset('t_steps', data=t_steps)
    grp.create_dataset('sigmas', data=s.astype(np.float32))
    if churn is not None:
        used = churn.clone()
        used[torch.from_numpy(churn_steps == 0)] = 0
        grp.create_dataset('churn', data=used.numpy())
        grp.create_dataset('churn_steps', data=churn_steps)
    print(f'{name}: {steps} steps, churn at {int(churn_steps.sum())} steps, '
          f'max|x| {float(x.abs().max()):.4g}', file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--edm2', required=True, help='path of a checkout of NVlabs/edm2')
    ap.add_argument('--out', default='tests/golden/edm2_sample_tiny.h5')
    ap.add_argument('--nets', default='tests/golden/edm2_tiny.h5',
                    help='gen_edm2_net.py\'s file, whose weights the networks must equal')
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.edm2))
    from training import networks_edm2 as edm2
    sampler, tqdm_stub = import_sampler(args.edm2)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    try:
        commit = subprocess.run(['git', '-C', args.edm2, 'rev-parse', 'HEAD'], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = 'unknown (not a git checkout)'

    ucfg = dict(TINY, label_dim=0)
    net = net_gen.build(edm2, TINY, SEED).eval()
    unet = net_gen.build(edm2, ucfg, SEED + 10).eval()
    anet = net_gen.build(edm2, TINY, SEED + 20).eval()
    with h5py.File(args.nets, 'r') as nf:
        assert nf.attrs['config'] == json.dumps(TINY)
        assert nf.attrs['uncond_config'] == json.dumps(ucfg)
        check_against(net, nf, 'params', 'buffers')
        check_against(unet, nf, 'uncond/params', 'uncond/buffers')
    gnets = {'none': None, 'uncond': unet, 'autog': anet}

    tmp = args.out + '.tmp'
    with h5py.File(tmp, 'w') as f:
        f.attrs['format'] = 'edm2c-golden-sample'
        f.attrs['format_version'] = 1
        f.attrs['generator'] = 'tests/golden/gen_edm2_sample.py'
        f.attrs['generator_sha256'] = sha256(os.path.abspath(__file__))
        f.attrs['helpers'] = 'tests/golden/gen_edm2_net.py'
        f.attrs['helpers_sha256'] = sha256(net_gen.__file__)
        f.attrs['nets'] = 'tests/golden/edm2_tiny.h5'
        f.attrs['nets_sha256'] = sha256(args.nets)
        f.attrs['torch_version'] = str(torch.__version__)
        f.attrs['numpy_version'] = str(np.__version__)
        f.attrs['h5py_version'] = str(h5py.__version__)
        f.attrs['python_version'] = platform.python_version()
        f.attrs['edm2_commit'] = commit
        f.attrs['seed'] = SEED
        f.attrs['config'] = json.dumps(TINY)
        f.attrs['uncond_config'] = json.dumps(ucfg)
        f.attrs['tqdm_stub'] = tqdm_stub
        params, buffers = net_gen.state(anet)
        net_gen.write_tensors(f.create_group('nets/autog/params'), params)
        net_gen.write_tensors(f.create_group('nets/autog/buffers'), buffers)

        for k, (name, over, gnet_kind, labels_none, about) in enumerate(CASES):
            opts = dict(DEFAULTS, **over)
            g = torch.Generator().manual_seed(SEED + 30 + k)
            grp = f.create_group(f'cases/{name}')
            grp.attrs['about'] = about
            run_case(sampler, net, gnets, g, name, opts, gnet_kind, labels_none, grp)
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes)', file=sys.stderr)


if __name__ == '__main__':
    main()
