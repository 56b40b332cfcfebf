#!/usr/bin/env python3
"""PyTorch peers of bench/gpu/gpu_check.js on the GPU: the cases of bench/gpu/cases.json in eager
mode and with torch.compile, forward + backward w.r.t. the student (torch.autograd.grad), data
resident on the device. Device time from CUDA events around N calls (median over batches, per call)
and wall time per call (N calls + synchronize, / N). Prints JSON (last line of stdout) and, with
--out FILE, rewrites FILE after every case so a timeout still leaves what was measured.

  python3 bench/gpu/torch_gpu.py [--out FILE] [--compile-budget 180] [--no-compile] [--quick]

torch.compile failures are reported as "failed: <reason>", never raised; cases whose compile would
start after --compile-budget seconds are reported as "skipped: compile time budget"."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/: torch_losses.py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=os.path.join(HERE, "cases.json"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--compile-budget", type=float, default=180.0, help="seconds for all torch.compile work")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script where there is no GPU")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    t_start = time.time()

    out = {"cases": {}}

    def save():
        if args.out:
            tmp = args.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(out, f)
                f.write("\n")
            os.replace(tmp, args.out)

    try:
        import torch
        import torch_losses as L
    except Exception as e:  # noqa: BLE001
        out["error"] = "import failed: %s" % e
        save()
        print(json.dumps(out))
        return 2
    out["torch"] = torch.__version__
    if args.device == "cuda" and not torch.cuda.is_available():
        out["error"] = "no CUDA device visible to PyTorch"
        save()
        print(json.dumps(out))
        return 4
    dev = torch.device(args.device)
    on_gpu = dev.type == "cuda"
    out["device"] = torch.cuda.get_device_name(0) if on_gpu else "cpu (dry run)"
    out["cuda"] = torch.version.cuda
    torch.backends.cuda.matmul.allow_tf32 = False
    batches = 3 if args.quick else 7

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    class Timer:  # CUDA events on the GPU; perf_counter in a CPU dry run
        def __init__(self):
            if on_gpu:
                self.e0, self.e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def start(self):
            if on_gpu:
                self.e0.record()
            else:
                self.t0 = time.perf_counter()

        def stop_ms(self):
            if on_gpu:
                self.e1.record()
                torch.cuda.synchronize()
                return self.e0.elapsed_time(self.e1)
            return (time.perf_counter() - self.t0) * 1e3

    def time_calls(step):
        for _ in range(3):
            step()
        sync()
        tm = Timer()
        tm.start()
        step()
        one = max(tm.stop_ms(), 1e-3)
        n = max(3, min(1000, int(round(20.0 / one))))
        device, wall = [], []
        for _ in range(batches):
            sync()
            tm.start()
            for _ in range(n):
                step()
            device.append(tm.stop_ms() / n)
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            sync()
            wall.append((time.perf_counter() - t0) * 1e3 / n)
        return {"device_ms": statistics.median(device), "device_min_ms": min(device),
                "wall_ms": statistics.median(wall), "wall_min_ms": min(wall), "calls_per_batch": n, "batches": batches}

    with open(args.cases) as f:
        spec = json.load(f)
    gen = torch.Generator(device=dev).manual_seed(1234)
    if not on_gpu:
        torch.set_num_threads(2)
    prepared = {}
    only = set(x for x in args.only.split(",") if x)
    spec["cases"] = [c for c in spec["cases"] if not only or c["id"] in only]
    for case in spec["cases"]:
        cid = case["id"]
        rc = {"label": case["label"]}
        out["cases"][cid] = rc
        try:
            x = {i["name"]: L.generate(i["gen"], i["shape"], gen, device=dev) for i in case["inputs"]}
            student = case["student"]
            x[student] = x[student].clone().requires_grad_(True)
            fn = L.loss_fn(case["op"], case.get("options"))
            prepared[cid] = (x, student, fn)

            def step(fn=fn, x=x, student=student):
                loss = fn(x)
                (g,) = torch.autograd.grad(loss, x[student])
                return loss, g

            loss, _ = step()
            rc["loss"] = float(loss.detach())
            rc["eager"] = time_calls(step)
            print("torch_gpu: %s eager %.1f us" % (cid, rc["eager"]["device_ms"] * 1e3), file=sys.stderr)
        except Exception as e:  # noqa: BLE001
            rc["eager"] = {"error": "%s: %s" % (type(e).__name__, e)}
            print("torch_gpu: %s eager failed: %s" % (cid, e), file=sys.stderr)
        save()

    compile_start = time.time()
    for case in spec["cases"]:
        cid = case["id"]
        rc = out["cases"][cid]
        if args.no_compile:
            rc["compile"] = {"error": "skipped: --no-compile"}
            continue
        if cid not in prepared:
            rc["compile"] = {"error": "skipped: eager setup failed"}
            continue
        if time.time() - compile_start > args.compile_budget:
            rc["compile"] = {"error": "skipped: compile time budget (%.0f s) used up" % args.compile_budget}
            continue
        x, student, fn = prepared[cid]
        try:
            import torch._dynamo
            torch._dynamo.reset()
            cfn = torch.compile(fn)

            def cstep(cfn=cfn, x=x, student=student):
                loss = cfn(x)
                (g,) = torch.autograd.grad(loss, x[student])
                return loss, g

            t0 = time.time()
            loss, _ = cstep()
            sync()
            compile_s = time.time() - t0
            r = time_calls(cstep)
            r["compile_s"] = compile_s
            r["loss"] = float(loss.detach())
            rc["compile"] = r
            print("torch_gpu: %s compile %.1f us (compiled in %.1f s)" % (cid, r["device_ms"] * 1e3, compile_s), file=sys.stderr)
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()
            rc["compile"] = {"error": "failed: %s: %s" % (type(e).__name__, msg[0] if msg else "")}
            print("torch_gpu: %s compile failed:\n%s" % (cid, traceback.format_exc(limit=3)), file=sys.stderr)
        save()
    out["elapsed_s"] = time.time() - t_start
    save()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
