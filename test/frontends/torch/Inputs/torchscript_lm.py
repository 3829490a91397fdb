#!/usr/bin/env python3
"""A tiny language model as TorchScript, and PyTorch's own training of it.

  torchscript_lm.py export DIR   writes DIR/lm.pt (torch.jit.trace) and
                                 DIR/lm.pt2 (torch.export.save) of the
                                 same weights, bad inputs, the
                                 batches as DIR/tokens.bin and the PyTorch
                                 losses of 3 AdamW steps as DIR/reference.json
  torchscript_lm.py check DIR METRICS.jsonl
                                 compares veomni-run's losses with them
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "e2e"))
from train_qwen3_tiny import write_token_file  # noqa: E402

VOCAB, HIDDEN, INNER, BATCH, SEQ, STEPS = 64, 16, 32, 2, 8, 3
OPT = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, HIDDEN)
        self.up = torch.nn.Linear(HIDDEN, INNER, bias=False)
        self.down = torch.nn.Linear(INNER, HIDDEN, bias=False)
        self.head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, input_ids, labels):
        h = self.embed(input_ids)
        h = h + self.down(F.silu(self.up(h)))
        logits = self.head(h)
        return F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))


class Unsupported(torch.nn.Module):
    """An op the importer does not know, on a run-time tensor."""

    def forward(self, x):
        return torch.cumprod(x, 0).sum()


class RandomDropout(torch.nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.1, training=True).sum()


def batches():
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, VOCAB, (STEPS, BATCH, SEQ), generator=g)
    labels = torch.randint(0, VOCAB, (STEPS, BATCH, SEQ), generator=g)
    labels[:, 1, -2:] = -100  # ignored positions
    return ids, labels


def export(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = TinyLM()
    ids, labels = batches()
    traced = torch.jit.trace(model, (ids[0], labels[0]))
    traced.save(os.path.join(out, "lm.pt"))
    for name, module in (("unsupported", Unsupported()), ("dropout", RandomDropout())):
        torch.jit.trace(module, torch.ones(3), check_trace=False).save(
            os.path.join(out, name + ".pt"))
    with open(os.path.join(out, "text.pt"), "w") as f:
        f.write("not a TorchScript archive\n")
    # The same model as a torch.export archive; one claiming an unknown
    # schema version; a TorchScript zip and a text file named .pt2.
    import shutil
    import zipfile
    torch.manual_seed(0)
    exported = torch.export.export(TinyLM(), (ids[0], labels[0]))
    torch.export.save(exported, os.path.join(out, "lm.pt2"))
    with zipfile.ZipFile(os.path.join(out, "lm.pt2")) as src, \
            zipfile.ZipFile(os.path.join(out, "future.pt2"), "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("models/model.json"):
                program = json.loads(data)
                program["schema_version"] = {"major": 99, "minor": 0}
                data = json.dumps(program).encode()
            dst.writestr(item, data)
    shutil.copy(os.path.join(out, "lm.pt"), os.path.join(out, "script.pt2"))
    shutil.copy(os.path.join(out, "text.pt"), os.path.join(out, "text.pt2"))
    write_token_file(os.path.join(out, "tokens.bin"), ids, labels)
    opt = torch.optim.AdamW(model.parameters(), **OPT)
    losses = []
    for s in range(STEPS):
        opt.zero_grad()
        loss = model(ids[s], labels[s])
        losses.append(loss.item())
        loss.backward()
        opt.step()
    json.dump({"losses": losses, "optimizer": OPT}, open(os.path.join(out, "reference.json"), "w"))
    print(f"exported lm.pt; PyTorch losses {losses}")


def check(out, metrics):
    want = json.load(open(os.path.join(out, "reference.json")))["losses"]
    got = [json.loads(line)["loss"] for line in open(metrics)]
    worst = max(abs(a - b) / abs(b) for a, b in zip(got, want))
    print(f"veomni {got}\npytorch {want}\nworst rel {worst:.1e}")
    if len(got) != len(want) or worst > 1e-5:
        sys.exit("the TorchScript model trained by veomni does not follow PyTorch")
    print("the TorchScript model trains as in PyTorch")


if __name__ == "__main__":
    export(sys.argv[2]) if sys.argv[1] == "export" else check(sys.argv[2], sys.argv[3])
