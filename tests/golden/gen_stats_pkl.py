#!/usr/bin/python3
"""Fixtures for tools/convert-stats (tests/cli/convert_stats.sh): pickles the converter must refuse.
Run by hand, from the repository root, with Debian's python3-numpy (no torch, no h5py):

    /usr/bin/python3 tests/golden/gen_stats_pkl.py

CI never runs this; it only reads what it writes (under 1 KB in all), in tests/golden/:

  stats_evil_system.pkl    EDM2's layout, {'num_images': 2, 'fid': {'mu': ..., 'sigma': ...}},
                           where mu is os.system('touch edm2c-pwned-file')
  stats_evil_runstring.pkl the same with numpy.testing._private.utils.runstring(code, {}): a
                           numpy global, but not one of the allowed few
  stats_evil_codec.pkl     mu is _codecs.encode(text, 'rot13'): an allowed global called with
                           anything but the latin1 of protocol-2 bytes
                           (these three are assembled from opcodes here and never executed)
  stats_object_array.pkl   {'num_images': 2, 'fid': {'mu': numpy array of dtype object, ...}}, as
                           numpy pickles it (protocol 2): the dtype 'O8' is refused

The well-formed statistics are full size (2048 and 1024 dimensions: 32 MB for fid's sigma), so the
test writes them at run time with numpy instead of reading them from here.
"""
import os
import pickle
import pickletools
import struct

import numpy as np

OUT = 'tests/golden'


def unicode_op(s):
    b = s.encode('utf-8')
    return b'X' + struct.pack('<I', len(b)) + b


def stats_around(value_ops):
    """PROTO 2 {'num_images': 2, 'fid': {'mu': <value_ops>, 'sigma': <value_ops>}} STOP: the opcodes
    of EDM2's dict with the arrays replaced by value_ops (pushing one object)."""
    return (b'\x80\x02}(' + unicode_op('num_images') + b'K\x02' + unicode_op('fid') + b'}(' +
            unicode_op('mu') + value_ops + unicode_op('sigma') + value_ops + b'uu.')


def call(module, name, *args):
    """GLOBAL module.name, the text arguments, TUPLE, REDUCE: module.name(*args) when loaded."""
    return (b'c' + module.encode() + b'\n' + name.encode() + b'\n(' +
            b''.join(unicode_op(a) if isinstance(a, str) else a for a in args) + b'tR')


def main():
    files = {
        'stats_evil_system.pkl': stats_around(call('os', 'system', 'touch edm2c-pwned-file')),
        'stats_evil_runstring.pkl': stats_around(
            call('numpy.testing._private.utils', 'runstring',
                 "open('edm2c-pwned-file', 'w')", b'}')),
        'stats_evil_codec.pkl': stats_around(call('_codecs', 'encode', 'nothing', 'rot13')),
    }
    obj = np.array([1, 2], dtype=object)
    files['stats_object_array.pkl'] = pickle.dumps(
        {'num_images': 2, 'fid': {'mu': obj, 'sigma': obj}}, protocol=2)
    for name, data in files.items():
        # Each parses as a pickle (opcodes only: pickletools never imports or calls anything).
        ops = [op.name for op, _, _ in pickletools.genops(data)]
        assert ops[-1] == 'STOP', name
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
        print(f'{name}: {len(data)} bytes')


if __name__ == '__main__':
    main()
