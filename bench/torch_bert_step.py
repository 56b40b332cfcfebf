#!/usr/bin/python3
"""PyTorch CPU eager peer of bench/bert_step.js: the same BERT cross-encoder (post-LN, erf GELU,
pooler tanh, one score per pair), one training step = forward + MSE loss on the scores + backward +
Adam, on random token ids. Prints one JSON line: median/min step ms over --steps timed steps, and
torch.mm's GFLOP/s at 1024^3: Debian's torch calls the system BLAS, which is the slow reference BLAS
unless libopenblas0-openmp is installed (apt-get install -y libopenblas0-openmp; seen here: 5.8
against ~60-200 GFLOP/s), so the figure says which one this peer ran on. The model (Layer,
CrossEncoder) is also the GPU peer's, bench/gpu/torch_bert_gpu.py.

  /usr/bin/python3 bench/torch_bert_step.py [--threads 2] [--steps 10] [--batch 16] [--len 128]
      [--layers 4] [--hidden 256] [--heads 4] [--ffn 1024] [--vocab 30522]"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn


class Layer(nn.Module):
    def __init__(self, h, a, f):
        super().__init__()
        self.a = a
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(h, eps=1e-12), nn.LayerNorm(h, eps=1e-12)
        self.i, self.out = nn.Linear(h, f), nn.Linear(f, h)

    def forward(self, x, key_bias):
        b, l, h = x.shape
        dh = h // self.a
        split = lambda t: t.view(b, l, self.a, dh).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + key_bias, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, l, h)
        x = self.ln1(self.o(ctx) + x)
        return self.ln2(self.out(nn.functional.gelu(self.i(x))) + x)


class CrossEncoder(nn.Module):
    def __init__(self, vocab, h, layers, a, f, max_pos=512):
        super().__init__()
        self.word, self.pos, self.tok_type = nn.Embedding(vocab, h), nn.Embedding(max_pos, h), nn.Embedding(2, h)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList(Layer(h, a, f) for _ in range(layers))
        self.pooler, self.classifier = nn.Linear(h, h), nn.Linear(h, 1)

    def forward(self, ids, types, mask):
        l = ids.shape[1]
        x = self.ln(self.word(ids) + self.pos(torch.arange(l, device=ids.device)) + self.tok_type(types))
        key_bias = ((1 - mask.float()) * -10000).view(ids.shape[0], 1, 1, l)
        for layer in self.layers:
            x = layer(x, key_bias)
        return self.classifier(torch.tanh(self.pooler(x[:, 0]))).view(-1)


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("threads", 2), ("steps", 10), ("warmup", 2), ("batch", 16), ("len", 128), ("layers", 4),
                          ("hidden", 256), ("heads", 4), ("ffn", 1024), ("vocab", 30522)]:
        ap.add_argument("--" + name, type=int, default=default)
    # bf16: the step under torch.autocast('cpu', dtype=torch.bfloat16) (oneDNN's bf16 matmuls), the
    # mixed-precision mode a PyTorch CPU user would reach for; the optimizer stays fp32.
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = CrossEncoder(a.vocab, a.hidden, a.layers, a.heads, a.ffn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ids = torch.randint(0, a.vocab, (a.batch, a.len))
    types = (torch.arange(a.len) >= a.len // 4).long().expand(a.batch, a.len).contiguous()
    mask = torch.ones(a.batch, a.len, dtype=torch.long)
    target = torch.rand(a.batch)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = ((model(ids, types, mask).float() - target) ** 2).mean()
        loss.backward()
        opt.step()
        ms = (time.perf_counter() - t0) * 1000
        if step >= a.warmup:
            times.append(ms)
    x, y = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        x @ y
    t0 = time.perf_counter()
    for _ in range(10):
        x @ y
    mm_gflops = 2 * 1024 ** 3 / ((time.perf_counter() - t0) / 10) / 1e9
    print(json.dumps({"peer": "pytorch-eager", "precision": a.precision, "torch": torch.__version__, "threads": a.threads,
                      "mm1024_gflops": mm_gflops,
                      "median_ms": statistics.median(times), "min_ms": min(times), "steps": len(times),
                      "loss": float(loss)}))


if __name__ == "__main__":
    main()
