#!/usr/bin/env python3
"""Checks veomni-compile --explain's FLOP counts for an example against the
model's config, counted independently of the compiled program:
matmul = 6 x tokens x (parameters of every linear layer, the tied lm_head
included) per optimizer step (forward 2, backward 4 per weight and token);
attention = 2 x B x Hq x S^2 x (D + Dv) per layer, halved by the causal mask,
once for the forward and 2.5 times for the backward.

usage: check_flops.py reference.json GRAD_ACCUM < explain-output
"""
import json
import re
import sys

config = json.load(open(sys.argv[1]))
accum = int(sys.argv[2])
c = config["config"]
B, S = config["batch"], config["seq"]
H, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
q, kv, d, ffn = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"]
linear = L * (H * d * (q + 2 * kv) + q * d * H + 3 * H * ffn) + V * H  # + lm_head
tokens = B * S * accum
expected = {
    "matmul": 6 * tokens * linear,
    "attention": L * accum * 2 * B * q * S * S * (2 * d) / 2,
    "attention_grad": 2.5 * L * accum * 2 * B * q * S * S * (2 * d) / 2,
}
found = {}
for line in sys.stdin:
    m = re.match(r"\s+(\w+)\s+\d+ launches\s+([0-9.e+]+) FLOP", line)
    if m:
        found[m.group(1)] = float(m.group(2))
failed = False
for kernel, want in expected.items():
    got = found.get(kernel)
    ok = got is not None and abs(got - want) <= 1e-6 * want
    print(f"{kernel}: explain {got} config {want:.6e} {'ok' if ok else 'MISMATCH'}")
    failed |= not ok
sys.exit(1 if failed else 0)
