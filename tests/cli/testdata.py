#!/usr/bin/python3
"""Small fixtures the command-line tests share, written with the standard library only.

    testdata.py idx DIR N CLASSES    DIR/train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz:
                                     N 8x8 images, image i a Gaussian blob placed by its class
                                     i mod CLASSES (tests/cli/edm2_generate.sh draws the same)
    testdata.py npz-identity PATH D  a pytorch-fid .npz with mu = 0 and sigma = I of dimension D
"""
import gzip
import math
import os
import struct
import sys
import zipfile


def blob(c, x, y):
    return int(255 * math.exp(-((x - 2 - 2 * c) ** 2 + (y - 3) ** 2) / 3))


def idx(d, n, classes):
    os.makedirs(d, exist_ok=True)
    img = bytearray(struct.pack(">IIII", 0x803, n, 8, 8))
    for i in range(n):
        img += bytes(blob(i % classes, x, y) for y in range(8) for x in range(8))
    lab = struct.pack(">II", 0x801, n) + bytes(i % classes for i in range(n))
    with gzip.open(d + "/train-images-idx3-ubyte.gz", "wb") as f:
        f.write(img)
    with gzip.open(d + "/train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(lab)


def npy(shape, vals):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % (shape,)
    header += " " * (118 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + \
        struct.pack("<%dd" % len(vals), *vals)


def npz_identity(path, dim):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mu.npy", npy((dim,), [0.0] * dim))
        z.writestr("sigma.npy", npy((dim, dim), [1.0 if i % (dim + 1) == 0 else 0.0 for i in range(dim * dim)]))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "idx":
        idx(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "npz-identity":
        npz_identity(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
