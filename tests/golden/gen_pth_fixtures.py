#!/usr/bin/python3
"""Fixtures for tools/convert-weights (tests/cli/convert_weights.sh): tiny .pth files written by
PyTorch itself, in both torch.save formats, and files the converter must refuse. Run by hand, from
the repository root, with Debian's python3-torch (1.13) and python3-numpy:

    /usr/bin/python3 tests/golden/gen_pth_fixtures.py

CI never runs this; it only reads what it writes (a few KB in all), in tests/golden/:

  pth_tiny_legacy.pth   the state dict below, torch.save(..., _use_new_zipfile_serialization=False):
                        the legacy sequence of pickles followed by the raw storages
  pth_tiny_zip.pth      the same, torch.save's default zip format
  pth_tiny_wrapped.pth  {'model': state dict, 'epoch': 7}, zip format
  pth_tiny_expected.npz what the converter must write: every floating tensor as float32 (C order),
                        plus __names__ (the kept names, in order) and __dropped__ (integer and
                        boolean tensors, which the converter drops)
  pth_nan_legacy.pth    {'ok': float32 (2, 3), 'bad': float32 (2, 3) holding a NaN at (1, 2)}, legacy
  pth_overflow_zip.pth  {'ok': float32 (2,), 'big': float64 (2,) holding 1e300}, zip format
                        (both fail while the output is being written: its temporary file must go)
  pth_evil_legacy.pth   a legacy file whose object pickle calls os.system('touch edm2c-pwned-file')
  pth_evil_zip.pth      a zip file whose data.pkl calls builtins.eval(...) to the same effect
                        (both pickles are assembled from opcodes here and never executed)

The state dict (an OrderedDict, like Module.state_dict()) covers what the converter must rebuild:
a Parameter (_rebuild_parameter), float32, float16, bfloat16 and float64 (values that float32
rounds), a transposed view of part of a larger storage (offset, stride), two tensors sharing one
storage at different offsets, a strided slice, an expanded tensor (stride 0), a 0-d tensor, an
empty tensor, and an int64 and a bool tensor (dropped).
"""
import collections
import os
import pickle
import struct
import zipfile

import numpy as np
import torch

OUT = 'tests/golden'


def vals(n, k):
    """Deterministic values with full float32 mantissas."""
    i = np.arange(n, dtype=np.float64)
    return (np.sin(1.37 * i + k) * (1.0 + 0.25 * k)).astype(np.float32)


def state_dict():
    sd = collections.OrderedDict()
    sd['a.weight'] = torch.nn.Parameter(torch.from_numpy(vals(12, 1).reshape(3, 4)))
    sd['b.half'] = torch.from_numpy(vals(5, 2)).half()
    base = torch.from_numpy(vals(30, 3)).reshape(5, 6)
    sd['c.transposed'] = base[1:4].t()  # (6, 3), stride (1, 6), offset 6 in a 30-element storage
    shared = torch.from_numpy(vals(10, 4))
    sd['d.first'] = shared[:4]
    sd['d.second'] = shared[4:].view(2, 3)  # same storage, offset 4
    sd['e.num_batches_tracked'] = torch.tensor(7, dtype=torch.int64)
    sd['f.double'] = torch.from_numpy(np.pi * np.arange(1, 7, dtype=np.float64).reshape(2, 3) / 7)
    sd['g.bf16'] = torch.from_numpy(vals(6, 5)).to(torch.bfloat16)
    sd['h.scalar'] = torch.tensor(2.5)
    sd['i.empty'] = torch.zeros(0, 3)
    sd['j.strided'] = torch.from_numpy(vals(24, 6)).reshape(4, 6)[::2, ::3]  # stride (12, 3)
    sd['k.expanded'] = torch.from_numpy(vals(3, 7)).expand(2, 3)  # stride (0, 1)
    sd['l.mask'] = torch.tensor([True, False, True])
    return sd


def legacy_header():
    return b''.join(pickle.dumps(x, protocol=2) for x in (
        0x1950a86a20f9469cfc6c, 1001,
        {'protocol_version': 1001, 'little_endian': True,
         'type_sizes': {'short': 2, 'int': 4, 'long': 4}}))


def unicode_op(s):
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b


def evil_pickle(module, name, arg):
    """PROTO 2, GLOBAL module.name, the argument, TUPLE1, REDUCE, STOP: calls module.name(arg)."""
    return (b'\x80\x02c' + module.encode() + b'\n' + name.encode() + b'\n' + unicode_op(arg) +
            b'\x85R.')


def main():
    sd = state_dict()
    assert not sd['c.transposed'].is_contiguous() and sd['c.transposed'].storage_offset() == 6
    assert sd['d.second'].storage().data_ptr() == sd['d.first'].storage().data_ptr()
    assert sd['k.expanded'].stride() == (0, 1)
    paths = {k: os.path.join(OUT, f'pth_{k}') for k in
             ('tiny_legacy.pth', 'tiny_zip.pth', 'tiny_wrapped.pth', 'tiny_expected.npz',
              'nan_legacy.pth', 'overflow_zip.pth', 'evil_legacy.pth', 'evil_zip.pth')}
    torch.save(sd, paths['tiny_legacy.pth'], _use_new_zipfile_serialization=False)
    torch.save(sd, paths['tiny_zip.pth'])
    torch.save({'model': sd, 'epoch': 7}, paths['tiny_wrapped.pth'])

    expected, names, dropped = {}, [], []
    for k, v in sd.items():
        if v.dtype.is_floating_point:
            expected[k] = v.detach().float().contiguous().numpy().astype('<f4')
            names.append(k)
        else:
            dropped.append(k)
    np.savez(paths['tiny_expected.npz'], __names__=np.array(names), __dropped__=np.array(dropped),
             **expected)

    # The saved files load back in torch as the same tensors.
    for key in ('tiny_legacy.pth', 'tiny_zip.pth'):
        back = torch.load(paths[key])
        assert list(back) == list(sd)
        for k, v in sd.items():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v.detach()), (key, k)

    bad = torch.from_numpy(vals(6, 8).reshape(2, 3))
    bad[1, 2] = float('nan')
    torch.save(collections.OrderedDict(ok=torch.from_numpy(vals(6, 9).reshape(2, 3)), bad=bad),
               paths['nan_legacy.pth'], _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict(ok=torch.from_numpy(vals(2, 10)),
                                       big=torch.tensor([1.0, 1e300], dtype=torch.float64)),
               paths['overflow_zip.pth'])

    with open(paths['evil_legacy.pth'], 'wb') as f:
        f.write(legacy_header() + evil_pickle('os', 'system', 'touch edm2c-pwned-file') +
                pickle.dumps([], protocol=2))
    with zipfile.ZipFile(paths['evil_zip.pth'], 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', evil_pickle(
            'builtins', 'eval', "__import__('os').system('touch edm2c-pwned-file')"))
        z.writestr('archive/version', '3\n')

    for p in paths.values():
        print(f'{p}: {os.path.getsize(p)} bytes')
    print(f'torch {torch.__version__}, numpy {np.__version__}: {len(names)} floating tensors, '
          f'dropped {dropped}')


if __name__ == '__main__':
    main()
