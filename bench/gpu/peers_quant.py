#!/usr/bin/env python3
"""PyTorch peers of the fused 4-bit kernels: cuBLAS bf16 on the unquantized weight and a plain
PyTorch dequantize-then-matmul of an NF4 weight (bitsandbytes' layout: blocksize 64, packed
two codes a byte, high nibble first).

For every LLaMA-7B layer shape [out, in] and every token count M it times y = x . W^T (and, for
M >= 256, the input gradient dx = dy . W). Each figure is the device time of one call: a CUDA
graph captures one call per input copy (copies rotate so the weights total >= --l2-multiple x
the L2 cache), is replayed back to back between two CUDA events, and the replay time is divided
by the number of calls. The same figures through eager launches (CUDA events around batches of
calls) are recorded too, as `eagerMs`.

    python3 bench/gpu/peers_quant.py [--out FILE] [--quick] [--m 1,16,256,4096]

Writes JSON in the result shape of peers.py (id, group, label, unit, value, medianMs, ...).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (shared helpers: NF4 quantization, copies_for, Recorder, timing)

GIB = 1024**3


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results/gpu-peers-quant.json")
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--m", default="1,16,256,4096", help="token counts M")
    p.add_argument("--blocksize", type=int, default=64)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--l2-multiple", type=float, default=4.0)
    args = p.parse_args(argv)
    args.m = [int(m) for m in args.m.split(",") if m.strip()]
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.warmup = args.warmup or (2 if args.quick else 5)
    return args


def graph_time(torch, fn, copies: int, repeats: int) -> dict:
    """Device ms of one fn(i): a graph of fn(0..copies-1), replayed back to back, per call."""
    for i in range(copies):  # warm-up outside the graph (cuBLAS handles, workspaces)
        fn(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(copies):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    replays = max(1, 200 // copies)
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / (replays * copies))
    del graph
    return {"medianMs": statistics.median(samples), "minMs": min(samples), "maxMs": max(samples),
            "repeats": repeats, "inner": replays * copies, "timing": "cuda-graph"}


def bench(torch, args, rec) -> None:
    bs = args.blocksize
    code = torch.tensor(peers.NF4_CODE, device="cuda", dtype=torch.float32)
    l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 60 * 1024 * 1024)
    for out_f, in_f in peers.LAYER_WEIGHTS:
        numel = out_f * in_f
        quant_bytes = numel // 2 + (numel // bs) * 4
        w0 = torch.randn(out_f, in_f, device="cuda", dtype=torch.bfloat16) * 0.02
        packed0, absmax0 = peers.quantize_nf4(torch, w0, bs)
        for m in args.m:
            directions = ["xWt", "dyW"] if m >= 256 else ["xWt"]
            for direction in directions:
                k, n = (in_f, out_f) if direction == "xWt" else (out_f, in_f)
                a_bytes = m * k * 2
                cq = peers.copies_for(quant_bytes + a_bytes, l2, args.l2_multiple, cap=16)
                cb = peers.copies_for(numel * 2 + a_bytes, l2, args.l2_multiple, cap=16)
                copies = max(cq, cb)
                packs = [(packed0.clone(), absmax0.clone()) for _ in range(cq)]
                dense = [w0.clone() for _ in range(cb)]
                acts = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
                shape = f"{m}x{k}x{n}"
                flops = 2 * m * k * n

                def cublas(i: int):
                    w = dense[i % cb]
                    return torch.matmul(acts[i % copies], w.t() if direction == "xWt" else w)

                def unfused(i: int):
                    p, a = packs[i % cq]
                    w = peers.dequantize_nf4(torch, p, a, code, (out_f, in_f), bs)
                    return torch.matmul(acts[i % copies], w.t() if direction == "xWt" else w)

                for impl, fn, c, weight_bytes, label in (
                    ("cublas_bf16", cublas, cb, numel * 2, "cuBLAS bf16 (unquantized W)"),
                    ("torch_dequant_matmul", unfused, cq, quant_bytes, "PyTorch NF4 dequantize + matmul"),
                ):
                    t = graph_time(torch, fn, c, args.repeats)
                    eager = peers.median_timing(torch, fn, repeats=args.repeats, warmup=args.warmup)
                    seconds = t["medianMs"] * 1e-3
                    extra = {"flops": flops, "weightBytes": weight_bytes, "copies": c, "eagerMs": eager["medianMs"],
                             "tflops": flops / seconds / 1e12, "weightGBs": weight_bytes / seconds / 1e9,
                             "method": f"{label}; {direction}; bf16 activations; device time per call"}
                    rid = f"quant.nf4.{impl}.{direction}.{shape}"
                    if m <= 16:
                        rec.add(rid, "quant", f"{label} {direction} {shape}", "GB/s", weight_bytes / seconds / 1e9, t, **extra)
                    else:
                        rec.add(rid, "quant", f"{label} {direction} {shape}", "TFLOP/s", flops / seconds / 1e12, t, **extra)
                del packs, dense, acts
                torch.cuda.empty_cache()
        del w0, packed0, absmax0


def main(argv) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("peers_quant: skipped (PyTorch is not installed)")
        return 0
    if not torch.cuda.is_available():
        print("peers_quant: skipped (torch.cuda is not available)")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    props = torch.cuda.get_device_properties(0)
    info = {
        "suite": "peers-quant",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": {"name": torch.cuda.get_device_name(0), "multiprocessors": props.multi_processor_count,
                "l2Bytes": int(getattr(props, "L2_cache_size", 0) or 0), "driver": peers.driver_version()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda},
        "config": {"m": args.m, "blocksize": args.blocksize, "repeats": args.repeats, "l2Multiple": args.l2_multiple},
        "method": ("device time per call from CUDA-graph replays (one call per input copy, copies totalling "
                   f">= {args.l2_multiple:g} x L2), median of repeats; eagerMs: CUDA events around eager batches"),
        "results": [],
        "errors": [],
    }
    rec = peers.Recorder()
    began = time.time()
    try:
        bench(torch, args, rec)
    except Exception as e:  # keep the figures so far; the error goes into the JSON
        print(f"  quant: failed: {type(e).__name__}: {e}", flush=True)
        info["errors"].append({"group": "quant", "error": f"{type(e).__name__}: {e}"})
    info["results"] = rec.results
    info["seconds"] = round(time.time() - began, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"peers_quant: wrote {args.out} ({info['seconds']} s)")
    return 1 if info["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
