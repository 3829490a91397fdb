#!/usr/bin/env python3
"""Checks parameters initialized by rule: check_init.py A.safetensors B.safetensors C.safetensors
(A and B from seed 1, C from seed 2, after one step at a negligible lr)."""
import sys

import numpy as np
from safetensors.numpy import load_file

a, b, c = (load_file(p) for p in sys.argv[1:4])
embed = a["embed"]
print(f"embed mean {embed.mean():+.4f} std {embed.std():.4f}")
assert abs(embed.mean()) < 0.002 and abs(embed.std() - 0.02) < 0.001, "normal(0, 0.02)"
assert np.allclose(a["norm"], 1.0, atol=1e-6), "ones"
assert np.allclose(a["bias"], 0.0, atol=1e-6), "zeros"
assert np.array_equal(a["embed"], b["embed"]), "the same seed gives the same values"
assert not np.allclose(a["embed"], c["embed"]), "another seed gives other values"
print("init rules ok")
