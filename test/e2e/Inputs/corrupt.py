#!/usr/bin/env python3
"""Damages a file the way the runtime must detect: corrupt.py KIND IN OUT."""
import struct
import sys

kind, src, dst = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
if kind == "version":        # the artifact header's schema version (offset 8)
    struct.pack_into("<I", data, 8, struct.unpack_from("<I", data, 8)[0] + 1)
elif kind == "truncate":     # drop the last quarter
    data = data[: len(data) * 3 // 4]
elif kind == "forge":        # program_bytes (offset 24) so large that offset + bytes wraps
    struct.pack_into("<Q", data, 24, 2**64 - 32)
elif kind == "flip":         # one byte of the program
    data[200] ^= 0xFF
elif kind == "tokens":       # a token file: tokens, then labels; VOCAB as argv[4]
    import numpy as np
    tokens = [int(t) for t in sys.argv[4].split(",")]
    data = bytearray(b"VOTOKENS" + struct.pack("<IIQII", 1, 2, len(tokens), 0, 0)
                     + np.asarray(tokens, dtype="<u2").tobytes())
else:
    sys.exit(f"unknown kind {kind}")
open(dst, "wb").write(bytes(data))
