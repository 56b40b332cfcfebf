#!/usr/bin/env python3
"""PyTorch eager peer of bench/gpu/cuda_bert.js on the GPU: the same shapes (64 query-passage pairs =
8 queries x 8 candidates, 256 tokens) and the same model definition (bench/torch_bert_step.py's
CrossEncoder: the layer structure of src/models/cross_encoder.ts: post-LN, plain softmax attention
with a -10000 key bias, erf GELU, pooler tanh, one score per pair). Cases: the teacher
(12L/768/12h/3072) scoring under torch.no_grad(); the students (6L/768/12h/3072, 4L/256/4h/1024)
each taking a training step as the pipeline does: forward, distillKL against the teacher's scores
(T^2 * KL(softmax(t/T) || softmax(s/T)) per query, mean over queries, T = 1), backward, global-norm
clipping at 1.0 and AdamW (lr 1e-4, weight decay 0.01). fp32 (TF32 off for matmuls and cuDNN) and
TF32. Per case: median over --steps timed steps after --warmup, device time from CUDA events
around each step (the step ends with loss.item(), a sync) and wall time.

Reference (figures given with the target, H100, PyTorch 2.11 eager): teacher scoring 65.9 ms fp32 / 18.6 ms TF32;
6L/768 student step 116.2 / 48.7 ms; 4L/256 student step 16.2 / 13.7 ms.

  python3 bench/gpu/torch_bert_gpu.py [--json FILE] [--steps 10] [--warmup 3] [--precisions fp32,tf32]
      [--only teacher,student6,student4] [--device cuda] [--tiny]

Dry run without a GPU: --device cpu --tiny (fp32 only; wall time). Prints the JSON (last line of
stdout; --json FILE is rewritten after every case so a timeout keeps what was measured)."""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/
from torch_bert_step import CrossEncoder  # noqa: E402  (the one model definition of the PyTorch peers)

# (layers, hidden, heads, ffn); vocab 30522, max position 512, as bench/gpu/bert_common.js
FULL = {"B": 8, "G": 8, "len": 256, "vocab": 30522,
        "teacher": (12, 768, 12, 3072), "student6": (6, 768, 12, 3072), "student4": (4, 256, 4, 1024)}
TINY = {"B": 2, "G": 4, "len": 16, "vocab": 1000,
        "teacher": (2, 64, 2, 128), "student6": (1, 64, 2, 128), "student4": (1, 32, 2, 64)}
REFERENCE_MS = {"teacher": {"fp32": 65.9, "tf32": 18.6}, "student6": {"fp32": 116.2, "tf32": 48.7},
                "student4": {"fp32": 16.2, "tf32": 13.7}}


def label(c):
    return f"{c[0]}L/{c[1]}/{c[2]}h/{c[3]}"


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("high" if on else "highest")


def distill_kl(s, t, temperature=1.0):
    """src/losses distillKL on [B, G] rows: T^2 * sum p (log p - log q), mean over rows."""
    log_q = F.log_softmax(s / temperature, dim=-1)
    log_p = F.log_softmax(t / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature ** 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--precisions", default=None)
    ap.add_argument("--only", default="teacher,student6,student4")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    size = TINY if a.tiny else FULL
    steps = a.steps if a.steps is not None else (3 if a.tiny else 10)
    warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 3)
    cuda = a.device == "cuda"
    precisions = (a.precisions or ("fp32,tf32" if cuda else "fp32")).split(",")
    only = [c for c in a.only.split(",") if c]
    out = {"peer": "pytorch-eager", "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else a.device, "tiny": a.tiny,
           "shape": {"pairs": size["B"] * size["G"], "queries": size["B"], "group": size["G"], "tokens": size["len"]},
           "models": {k: label(size[k]) for k in ("teacher", "student6", "student4")},
           "optimizer": "AdamW lr 1e-4 wd 0.01, clip_grad_norm 1.0", "steps": steps, "warmup": warmup,
           "reference_ms": REFERENCE_MS, "rows": []}

    def save():
        if a.json:
            with open(a.json + ".tmp", "w") as f:
                json.dump(out, f, indent=1)
            os.replace(a.json + ".tmp", a.json)

    if cuda and not torch.cuda.is_available():
        out["error"] = "no CUDA device visible to PyTorch"
        save()
        print(json.dumps(out))
        return 2
    dev = torch.device(a.device)
    torch.manual_seed(0)
    B, G, L = size["B"], size["G"], size["len"]
    n = B * G
    ids = torch.randint(0, size["vocab"], (n, L), device=dev)
    types = (torch.arange(L, device=dev) >= L // 4).long().expand(n, L).contiguous()
    mask = torch.ones(n, L, dtype=torch.long, device=dev)

    def model(c):
        return CrossEncoder(size["vocab"], c[1], c[0], c[2], c[3]).to(dev)

    set_tf32(False)
    teacher = model(size["teacher"]).eval()
    with torch.no_grad():
        t_scores = teacher(ids, types, mask).view(B, G)

    def teacher_step():
        with torch.no_grad():
            return teacher(ids, types, mask)[0].item()

    def student_step_fn(c):
        m = model(size[c]).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = distill_kl(m(ids, types, mask).view(B, G), t_scores)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            return loss.item()
        return step

    cases = []
    for c in only:
        if c == "teacher":
            cases.append((c, f"teacher {label(size[c])} scoring (forward, no gradient)", teacher_step))
        else:
            cases.append((c, f"student {label(size[c])} step (fwd + bwd + AdamW, KL)", student_step_fn(c)))

    failed = 0
    for precision in precisions:
        if precision == "tf32" and not cuda:
            continue
        set_tf32(precision == "tf32")
        for cid, text, fn in cases:
            row = {"id": cid, "label": text, "precision": precision}
            try:
                for _ in range(warmup):
                    fn()
                device_ms, wall_ms = [], []
                for _ in range(steps):
                    if cuda:
                        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        start.record()
                    w0 = time.perf_counter()
                    value = fn()
                    if cuda:
                        end.record()
                        end.synchronize()
                        device_ms.append(start.elapsed_time(end))
                    wall_ms.append((time.perf_counter() - w0) * 1000)
                row.update({"device_ms": statistics.median(device_ms) if cuda else None, "wall_ms": statistics.median(wall_ms),
                            "min_device_ms": min(device_ms) if cuda else None, "min_wall_ms": min(wall_ms),
                            "steps": steps, "value": value, "reference_ms": REFERENCE_MS[cid].get(precision)})
                print(f"  {precision} {text}: device {row['device_ms'] if cuda else 'n/a'} ms, wall {row['wall_ms']:.2f} ms", file=sys.stderr)
            except Exception as e:  # one case failing must not stop the others
                row["error"] = f"{type(e).__name__}: {e}".split("\n")[0]
                failed += 1
                print(f"  {precision} {text}: FAILED {row['error']}", file=sys.stderr)
            out["rows"].append(row)
            save()
    if cuda:
        out["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
    save()
    print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
