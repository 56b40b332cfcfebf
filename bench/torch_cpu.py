#!/usr/bin/python3
"""PyTorch CPU eager peer of bench/benchmark.js: the cases of bench/cases.json, forward + backward
w.r.t. the student input (torch.autograd.grad), median of many runs after warm-up. Prints JSON.

  /usr/bin/python3 bench/torch_cpu.py [--data DIR] [--threads 2] [--time 1.0] [--only id,id] [--serve]

--data DIR reads the inputs bench/benchmark.js wrote (DIR/<case>.<input>.f32, raw float32), so the
losses can be compared with the fused op's; without it the inputs are generated here."""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=os.path.join(HERE, "cases.json"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time", type=float, default=1.0, help="seconds of timed runs per case")
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=5000)
    ap.add_argument("--only", default="")
    ap.add_argument("--serve", action="store_true", help="read case ids on stdin, answer one JSON line each")
    args = ap.parse_args()

    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": "import torch failed: %s" % e}))
        return 2
    import torch_losses as L

    torch.set_num_threads(args.threads)
    with open(args.cases) as f:
        spec = json.load(f)
    only = set(x for x in args.only.split(",") if x)
    gen = torch.Generator().manual_seed(1234)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "data": "from benchmark.js" if args.data else "generated in torch_cpu.py",
        "cases": {},
    }
    by_id = {c["id"]: c for c in spec["cases"]}

    def run_case(case):
        cid = case["id"]
        try:
            x = {}
            for inp in case["inputs"]:
                shape = inp["shape"]
                if args.data:
                    n = 1
                    for d in shape:
                        n *= d
                    path = os.path.join(args.data, "%s.%s.f32" % (cid, inp["name"]))
                    x[inp["name"]] = torch.from_file(path, shared=False, size=n, dtype=torch.float32).reshape(shape)
                else:
                    x[inp["name"]] = L.generate(inp["gen"], shape, gen)
            student = case["student"]
            x[student] = x[student].clone().requires_grad_(True)
            fn = L.loss_fn(case["op"], case.get("options"))

            def step():
                loss = fn(x)
                (g,) = torch.autograd.grad(loss, x[student])
                return loss, g

            loss, g = step()
            loss_value = float(loss.detach())
            grad_abs_sum = float(g.abs().sum())
            # Warm-up: at least 3 runs and 0.1 s.
            t_end = time.perf_counter() + 0.1
            for _ in range(3):
                step()
            while time.perf_counter() < t_end:
                step()
            times = []
            t_end = time.perf_counter() + args.time
            while len(times) < args.min_runs or (time.perf_counter() < t_end and len(times) < args.max_runs):
                t0 = time.perf_counter_ns()
                step()
                times.append((time.perf_counter_ns() - t0) / 1e6)
            r = {
                "median_ms": statistics.median(times),
                "min_ms": min(times),
                "runs": len(times),
                "loss": loss_value,
                "grad_abs_sum": grad_abs_sum,
            }
        except Exception as e:  # noqa: BLE001
            r = {"error": "%s: %s" % (type(e).__name__, e)}
        print("torch_cpu: %s %s" % (cid, json.dumps(r)), file=sys.stderr)
        return r

    if args.serve:
        # One case id per stdin line, one JSON line back each (bench/benchmark.js drives this).
        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            cid = line.strip()
            if not cid:
                continue
            r = run_case(by_id[cid]) if cid in by_id else {"error": "unknown case " + cid}
            print(json.dumps({"id": cid, "result": r}), flush=True)
        return 0

    for case in spec["cases"]:
        if only and case["id"] not in only:
            continue
        out["cases"][case["id"]] = run_case(case)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
