#!/usr/bin/python3
"""PyTorch peer of bench/sgemm.js. Reads one JSON case per line on stdin
({"batch", "m", "n", "k", "transA", "transB", "threads", "time"}) and answers one JSON line each:
GFLOP/s (median and best of the timed runs) of

- torch.mm / torch.bmm (out=, transposed operands as views, so BLAS sees the transpose flags), and
- oneDNN through torch._C._nn.mkldnn_linear (x @ w.T on contiguous, pre-transposed operands; 2-D
  only), an optimized peer for builds whose torch.mm goes to a slow BLAS, and
- the same torch.mm / torch.bmm under torch.autocast('cpu', dtype=torch.bfloat16) ("bf16"): fp32
  operands cast to bf16 at every call (as our bf16 GEMM rounds them while packing), a bf16 result.

The first line written is {"torch": version, "blas": ...} once torch is imported."""
import json
import statistics
import sys
import time


def timed(f, seconds, min_runs=5, warmup=2):
    for _ in range(warmup):
        f()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    import torch

    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # loads the BLAS, so /proc/self/maps names it
    blas = "unknown"
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1].lower()})
        if libs:
            blas = ", ".join(x for x in libs if "lapack" not in x)  # the build says BLAS_INFO=generic: the system's libblas.so.3 decides
    except OSError:
        pass
    print(json.dumps({"torch": torch.__version__, "blas": blas}), flush=True)
    gen = torch.Generator().manual_seed(1)
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        torch.set_num_threads(int(c["threads"]))
        b, m, n, k = c["batch"], c["m"], c["n"], c["k"]
        a = torch.rand((b, k, m) if c["transA"] else (b, m, k), generator=gen) * 2 - 1
        w = torch.rand((b, n, k) if c["transB"] else (b, k, n), generator=gen) * 2 - 1
        A = a.transpose(1, 2) if c["transA"] else a
        B = w.transpose(1, 2) if c["transB"] else w
        flops = 2.0 * b * m * n * k
        res = {"threads": torch.get_num_threads()}
        if b == 1:
            A2, B2 = A[0], B[0]
            out = torch.empty(m, n)
            med, best = timed(lambda: torch.mm(A2, B2, out=out), c["time"])
        else:
            out = torch.empty(b, m, n)
            med, best = timed(lambda: torch.bmm(A, B, out=out), c["time"])
        res["mm"] = [flops / med / 1e9, flops / best / 1e9]
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                if b == 1:
                    med, best = timed(lambda: torch.mm(A2, B2), c["time"])
                else:
                    med, best = timed(lambda: torch.bmm(A, B), c["time"])
            res["bf16"] = [flops / med / 1e9, flops / best / 1e9]
        except Exception as e:  # noqa: BLE001
            res["bf16_error"] = str(e)
        if b == 1:
            try:
                x = A[0].contiguous().to_mkldnn()
                wt = B[0].t().contiguous().to_mkldnn()
                lin = torch._C._nn.mkldnn_linear
                med, best = timed(lambda: lin(x, wt, None), c["time"])
                res["onednn"] = [flops / med / 1e9, flops / best / 1e9]
            except Exception as e:  # noqa: BLE001
                res["onednn_error"] = str(e)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    sys.exit(main())
