"""What the examples' export scripts share: the batches, the export that keeps
every parameter its own initializer, determinism, stripping machine paths
from the export, mapping HF parameters to ONNX initializers, and the PyTorch
reference (loss, gradients, AdamW steps) the tests compare against.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch

# The batches and AdamW settings of every example's reference training.
BATCH, SEQ = 2, 32
BATCH_SEED, STEPS_SEED = 1234, 5678
IGNORE_TAIL = 5  # last 5 label positions of row 1 are -100
NUM_STEPS = 20
OPT = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
# The torch.export metadata that marks an ONNX initializer as a parameter.
PARAM_KIND = "pkg.torch.export.graph_signature.InputSpec.kind"

def setup_determinism():
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))

def strip_stack_traces(path):
    """Drop the bulky, machine-specific 'pkg.torch.onnx.stack_trace' node metadata."""
    import onnx

    m = onnx.load(path)
    for node in m.graph.node:
        keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    onnx.save(m, path)

def onnx_float_initializers(m):
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer
            if i.data_type == 1}

def build_mapping(model, m):
    """Map each HF parameter to the ONNX initializer holding it (identity or transposed)."""
    inits = onnx_float_initializers(m)
    tied = {"model.embed_tokens.weight": "model.lm_head.weight"}  # exporter keeps the last alias
    mapping = {}
    for hf_name, p in model.named_parameters():
        w = p.detach().numpy()
        # 1) by name ("model." + HF name, the wrapper attribute prefix), if the values agree
        by_name = "model." + tied.get(hf_name, hf_name)
        if by_name in inits and inits[by_name].shape == w.shape and np.array_equal(inits[by_name], w):
            hits = [(by_name, False)]
        else:  # 2) by value: identical, or transposed (constant-folded Transpose(W))
            hits = []
            for on, a in inits.items():
                if a.shape == w.shape and np.array_equal(a, w):
                    hits.append((on, False))
                elif w.ndim == 2 and a.shape == w.T.shape and np.array_equal(a, w.T):
                    hits.append((on, True))
        if len(hits) != 1:
            raise RuntimeError(f"{hf_name}: expected exactly one ONNX initializer, got {hits}")
        on, transposed = hits[0]
        mapping[hf_name] = {"onnx": on, "transposed": transposed, "hf_shape": list(w.shape),
                            "onnx_shape": list(inits[on].shape)}
    # groups (dedup'ed initializers)
    groups = {}
    for hf_name, e in mapping.items():
        groups.setdefault(e["onnx"], []).append(hf_name)
    for hf_name, e in mapping.items():
        e["shared_with"] = [h for h in groups[e["onnx"]] if h != hf_name]
    # cross-check transposed initializers structurally via the exporter's name scopes
    scopes = {}
    for node in m.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        for inp in node.input:
            if inp in groups:
                scopes.setdefault(inp, set()).add(meta.get("namespace", "").split("/")[-2:][0])
    for hf_name, e in mapping.items():
        if e["transposed"]:
            mod = hf_name.rsplit(".", 1)[0]  # e.g. model.layers.0.self_attn.q_proj
            assert any(s.startswith("model." + mod + ":") for s in scopes[e["onnx"]]), (hf_name, scopes[e["onnx"]])
    return mapping, groups

def to_onnx_layout(arr: np.ndarray, transposed: bool) -> np.ndarray:
    return np.ascontiguousarray(arr.T if transposed else arr)

def tie_like_onnx(model, groups):
    """Make the PyTorch model share parameters exactly like the deduplicated ONNX graph."""
    for onnx_name, members in groups.items():
        if len(members) < 2:
            continue
        first = model.get_parameter(members[0])
        for hf in members[1:]:
            mod_name, attr = hf.rsplit(".", 1)
            setattr(model.get_submodule(mod_name), attr, first)

def loss_and_grads(model, ids, labels):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss.detach().clone(), grads

def train(model, steps_ids, steps_labels, optimizer=OPT):
    opt = torch.optim.AdamW(model.parameters(), **optimizer)
    losses = []
    for s in range(len(steps_ids)):
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=steps_ids[s], labels=steps_labels[s]).loss
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return np.array(losses, dtype=np.float32)


def make_labels(ids: torch.Tensor) -> torch.Tensor:
    labels = ids.clone()
    labels[..., 1, -IGNORE_TAIL:] = -100
    return labels


def fixed_batch():
    g = torch.Generator().manual_seed(BATCH_SEED)
    ids = torch.randint(0, 256, (BATCH, SEQ), generator=g, dtype=torch.int64)
    return ids, make_labels(ids)


def step_batches():
    g = torch.Generator().manual_seed(STEPS_SEED)
    ids = torch.randint(0, 256, (NUM_STEPS, BATCH, SEQ), generator=g, dtype=torch.int64)
    return ids, make_labels(ids)


class LossWrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        return self.model(input_ids=input_ids, labels=labels).loss


def optimize_preserving_params(prog, fold_limit=None):
    """Run the exporter's default optimizer, but keep every PARAMETER initializer intact.

    onnxscript's constant folder and initializer de-duplication both skip values that are
    graph inputs, so parameters are temporarily listed as graph inputs while optimizing.
    fold_limit raises the element count up to which constants are folded (the causal
    mask of a long sequence is larger than the default).
    """
    from torch.onnx._internal._lazy_import import onnxscript_apis

    import logging

    logging.getLogger("onnx_ir.passes.common.initializer_deduplication").setLevel(logging.ERROR)
    g = prog.model.graph
    params = [v for v in g.initializers.values() if v.metadata_props.get(PARAM_KIND) == "PARAMETER"]
    inputs = list(g.inputs)
    g.inputs.extend(params)
    if fold_limit is None:
        prog.model = onnxscript_apis.optimize(prog.model)
    else:
        import onnxscript.optimizer

        prog.model = onnxscript.optimizer.optimize(prog.model, input_size_limit=fold_limit,
                                                   output_size_limit=fold_limit)
    g = prog.model.graph
    g.inputs.clear()
    g.inputs.extend(inputs)


def export_static(model, ids, labels, path, keep_stack_traces, preserve_params=False):
    import onnx

    kwargs = dict(dynamo=True, input_names=["input_ids", "labels"], output_names=["loss"],
                  verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not preserve_params:
            # the exporter's own optimization (folds W^T, dedups equal initializers)
            prog = torch.onnx.export(LossWrapper(model), (ids, labels), path,
                                     external_data=False,  # initializers inline
                                     **kwargs)
        else:
            prog = torch.onnx.export(LossWrapper(model), (ids, labels), optimize=False, **kwargs)
            optimize_preserving_params(prog)
            prog.save(path, external_data=False)
    if not keep_stack_traces:
        strip_stack_traces(path)
    assert not os.path.exists(path + ".data")
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    return prog, m
