#!/usr/bin/env python3
"""skip_data.py DIR: DIR/skip.bin holds two 64-token windows, the first with
every label -100 (a step with no loss), the second labelled; DIR/plain.bin
holds only the second window.
skip_data.py --same A B: fails unless two safetensors files hold the same
tensors bit for bit (their metadata, e.g. the step, may differ)."""
import struct
import sys

import numpy as np

if sys.argv[1] == "--same":
    from safetensors.numpy import load_file
    a, b = load_file(sys.argv[2]), load_file(sys.argv[3])
    assert a.keys() == b.keys(), "different tensor names"
    differ = [k for k in a if a[k].tobytes() != b[k].tobytes()]
    sys.exit(f"tensors differ: {differ[:5]}" if differ else 0)

out = sys.argv[1]
rng = np.random.default_rng(7)
ignored = rng.integers(0, 256, 64)
window = rng.integers(0, 256, 64)


def write(path, tokens, labels):
    with open(path, "wb") as f:
        f.write(b"VOTOKENS" + struct.pack("<IIQII", 1, 2, len(tokens), 1, 0))
        f.write(np.asarray(tokens, dtype="<u2").tobytes())
        f.write(np.asarray(labels, dtype="<i4").tobytes())


write(f"{out}/skip.bin", np.concatenate([ignored, window]),
      np.concatenate([np.full(64, -100), window]))
write(f"{out}/plain.bin", window, window)
