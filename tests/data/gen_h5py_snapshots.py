#!/usr/bin/env python3
"""Writes tests/data/h5py-snapshots/: snapshots made by h5py from the format description alone
(docs/formats.md, "Snapshot"), not by edm2c, so that the reader is tested against an independent
writer. Run by hand (Debian: python3-h5py, python3-numpy); CI only reads the output.

    /usr/bin/python3 tests/data/gen_h5py_snapshots.py

Values follow a formula the C test checks (tests/unit/test_h5py_data.c):
    element k of tensor number i (in the order of TENSORS) in profile p at time nimg is
    value(k, i, p, nimg) = ((k * 7 + i * 13) % 101 - 50) / 64 + p / 8 + nimg / 2**20
stored as float16 (so the C side compares against the float16 rounding of that number).
h5py's defaults are used on purpose: groups do not track creation order, strings are
variable-length UTF-8, Python ints are int64 and floats are float64.
"""
import json
import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h5py-snapshots")
PROFILES = [(0.05, 16.972198602303447), (0.10, 6.937203937601809)]
TENSORS = [
    ("unet.out_gain", ()),
    ("unet.emb_noise.weight", (16, 4)),
    ("unet.enc.8x8_conv.weight", (4, 2, 3, 3)),
    ("unet.enc.8x8_block0.conv_res0.weight", (4, 4, 3, 3)),
    ("logvar_linear.weight", (1, 128)),
]
BUFFERS = [("unet.emb_fourier.freqs", (4,)), ("unet.emb_fourier.phases", (4,))]
TIMES = [8192, 16384]


def value(k, i, p, nimg):
    return ((k * 7 + i * 13) % 101 - 50) / 64 + p / 8 + nimg / 2**20


def main():
    os.makedirs(OUT, exist_ok=True)
    for nimg in TIMES:
        path = os.path.join(OUT, "snapshot-%012d.h5" % nimg)
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "edm2c-snapshot"
            f.attrs["format_version"] = 1
            f.attrs["nimg"] = nimg
            f.attrs["batch_size"] = 1024
            f.attrs["preset"] = ""
            f.attrs["config"] = json.dumps({"written_by": "gen_h5py_snapshots.py"})
            for p, (sigma, gamma) in enumerate(PROFILES):
                g = f.create_group("ema/%.3f" % sigma)
                g.attrs["sigma_rel"] = sigma
                g.attrs["gamma"] = gamma
                g.attrs["profile"] = "power"
                for i, (name, shape) in enumerate(TENSORS):
                    n = int(np.prod(shape)) if shape else 1
                    data = np.array([value(k, i, p, nimg) for k in range(n)], dtype=np.float16)
                    data = data.reshape(shape)
                    if shape:
                        g.create_dataset(name, data=data, chunks=True, fletcher32=True)
                    else:
                        g.create_dataset(name, data=data)  # 0-d: cannot be chunked
            for j, (name, shape) in enumerate(BUFFERS):
                f.create_dataset("buffers/" + name, data=np.arange(shape[0], dtype=np.float32) + j,
                                 chunks=True, fletcher32=True)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
