#!/usr/bin/env python3
"""PyTorch peer measurements on one NVIDIA GPU, the figures blora's own kernels are compared with.

Every figure is taken the same way: warm-up calls first (module load, cuBLAS handles and
heuristics stay out of the numbers), then N timed repeats. A repeat is a batch of `inner` calls
between two CUDA events, with `inner` chosen from the warm-up so that one batch lasts at least
about a millisecond (short ops are not dominated by event resolution or launch gaps); its time
divided by `inner` is one sample, and the median sample is reported. Where the inputs of one call
are small, calls rotate over several copies of them, enough that the copies together are at least
four times the GPU's L2 cache, so the cache cannot serve repeated reads. Inputs are random, never
zeros.

    python3 bench/gpu/peers.py --out bench/results/gpu-peers.json [--quick] [--groups copy,gemm]

Groups: copy, gemm, elementwise, reduce, nf4, lora. --quick lowers the repeat counts and leaves
out the LoRA training step.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

GROUPS = ("copy", "gemm", "elementwise", "reduce", "nf4", "lora")

# NF4 code values, index 0..15, as bitsandbytes defines them.
NF4_CODE = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)

# LLaMA-7B linear layers as weight shapes [out_features, in_features]: q/k/v/o, gate/up, down.
LAYER_WEIGHTS = ((4096, 4096), (11008, 4096), (4096, 11008))

GIB = 1024 ** 3


def default_gemm_cases(m: int = 4096) -> list[str]:
    """GEMM cases as 'layout:MxKxN' strings.

    xWt: y[M,N] = x[M,K] . W^T with W stored [N,K] (a forward pass through a Linear layer).
    dyW: dx[M,N] = dy[M,K] . W with W stored [K,N] (the input gradient of that layer).
    The 4096 x 4096 layer gives the 4096^3 product in both layouts.
    """
    cases: list[str] = []
    for out_f, in_f in LAYER_WEIGHTS:
        cases.append(f"xWt:{m}x{in_f}x{out_f}")
        cases.append(f"dyW:{m}x{out_f}x{in_f}")
    return cases


def parse_gemm_case(text: str) -> tuple[str, int, int, int]:
    layout, _, dims = text.partition(":")
    parts = dims.lower().split("x")
    if layout not in ("xWt", "dyW") or len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise SystemExit(f"peers.py: bad GEMM case '{text}': expected xWt:MxKxN or dyW:MxKxN")
    m, k, n = (int(p) for p in parts)
    return layout, m, k, n


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results/gpu-peers.json", help="where the JSON goes")
    p.add_argument("--quick", action="store_true", help="fewer repeats; no LoRA training step")
    p.add_argument("--groups", default=",".join(GROUPS), help="comma list of: " + ", ".join(GROUPS))
    p.add_argument("--skip-lora", action="store_true", help="leave out the LoRA training step")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per figure (default 20, quick 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls (default 5, quick 2)")
    p.add_argument("--copy-bytes", type=int, default=GIB, help="bytes per copy buffer (default 1 GiB)")
    p.add_argument("--elements", type=int, default=256 * 1024 * 1024,
                   help="elements of the add / sum tensors (default 256M)")
    p.add_argument("--row-length", type=int, default=4096, help="length of the summed last dim (default 4096)")
    p.add_argument("--gemm-cases", default=",".join(default_gemm_cases()),
                   help="comma list of layout:MxKxN, layout xWt or dyW")
    p.add_argument("--gemm-dtypes", default="bfloat16,float32", help="comma list of bfloat16, float32")
    p.add_argument("--nf4-m", default="1,16,256,4096", help="token counts M for the NF4 path")
    p.add_argument("--nf4-blocksize", type=int, default=64)
    p.add_argument("--lora-steps", type=int, default=10, help="timed training steps")
    p.add_argument("--lora-warmup", type=int, default=3, help="untimed training steps first")
    p.add_argument("--lora-batch", type=int, default=8)
    p.add_argument("--lora-seq", type=int, default=512)
    p.add_argument("--lora-checkpointing", action="store_true", help="train with gradient checkpointing")
    p.add_argument("--l2-multiple", type=float, default=4.0,
                   help="rotate inputs until the copies are this many times the L2 size (default 4)")
    args = p.parse_args(argv)
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    for g in args.groups:
        if g not in GROUPS:
            raise SystemExit(f"peers.py: unknown group '{g}' (known: {', '.join(GROUPS)})")
    if args.quick or args.skip_lora:
        args.groups = [g for g in args.groups if g != "lora"]
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.warmup = args.warmup or (2 if args.quick else 5)
    args.gemm_cases = [parse_gemm_case(c.strip()) for c in args.gemm_cases.split(",") if c.strip()]
    args.gemm_dtypes = [d.strip() for d in args.gemm_dtypes.split(",") if d.strip()]
    for d in args.gemm_dtypes:
        if d not in ("bfloat16", "float32"):
            raise SystemExit(f"peers.py: unknown GEMM dtype '{d}' (known: bfloat16, float32)")
    args.nf4_m = [int(m) for m in args.nf4_m.split(",") if m.strip()]
    if args.row_length <= 0 or args.elements % args.row_length != 0:
        raise SystemExit("peers.py: --elements must be a multiple of --row-length")
    return args


def median_timing(torch, fn, *, repeats: int, warmup: int, min_batch_ms: float = 1.0) -> dict:
    """Times fn(i) (i counts calls, for rotating inputs) with CUDA events; see the module doc."""
    calls = 0
    for _ in range(warmup):
        fn(calls)
        calls += 1
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    probe = 3
    start.record()
    for _ in range(probe):
        fn(calls)
        calls += 1
    end.record()
    end.synchronize()
    per_call = max(start.elapsed_time(end) / probe, 1e-4)
    inner = max(1, min(10_000, math.ceil(min_batch_ms / per_call)))
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            fn(calls)
            calls += 1
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return {
        "medianMs": statistics.median(samples),
        "minMs": min(samples),
        "maxMs": max(samples),
        "repeats": repeats,
        "inner": inner,
        "warmup": warmup,
    }


def copies_for(set_bytes: int, l2_bytes: int, multiple: float, cap: int = 64) -> int:
    """How many copies of an input set make at least `multiple` times the L2 together."""
    return max(1, min(cap, math.ceil(multiple * l2_bytes / max(set_bytes, 1))))


def fmt(v: float) -> str:
    """About four significant digits."""
    if not math.isfinite(v):
        return ""
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"


class Recorder:
    """Collects results and prints each one as it arrives."""

    def __init__(self) -> None:
        self.results: list[dict] = []

    def add(self, rid: str, group: str, label: str, unit: str, value: float, timing: dict | None,
            **extra) -> None:
        row = {"id": rid, "group": group, "label": label, "unit": unit, "value": value}
        if timing:
            row.update(timing)
        row.update(extra)
        self.results.append(row)
        ms = f"{timing['medianMs']:.4f} ms" if timing else ""
        print(f"  {label:<52} {fmt(value):>10} {unit:<9} {ms}", flush=True)


def bench_copy(torch, args, rec: Recorder) -> None:
    n = args.copy_bytes // 4
    src = torch.randn(n, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    t = median_timing(torch, lambda i: dst.copy_(src), repeats=args.repeats, warmup=args.warmup)
    moved = 2 * n * 4
    if not torch.equal(dst[:1024], src[:1024]):
        raise RuntimeError("copy: destination differs from source")
    rec.add("copy.d2d", "copy", f"device-to-device copy {n * 4 / GIB:.2f} GiB", "GB/s",
            moved / (t["medianMs"] * 1e-3) / 1e9, t, bytes=moved, copies=1,
            method="dst.copy_(src), float32; bytes read + written")
    del src, dst


def bench_gemm(torch, args, rec: Recorder, l2: int) -> None:
    dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32}
    for name in args.gemm_dtypes:
        dt = dtypes[name]
        for layout, m, k, n in args.gemm_cases:
            isz = torch.finfo(dt).bits // 8
            set_bytes = (m * k + k * n) * isz
            c = copies_for(set_bytes, l2, args.l2_multiple, cap=8)
            lhs = [torch.randn(m, k, device="cuda", dtype=dt) for _ in range(c)]
            if layout == "xWt":  # weight stored [N, K], used transposed (no copy)
                rhs = [torch.randn(n, k, device="cuda", dtype=dt).t() for _ in range(c)]
            else:  # weight stored [K, N]
                rhs = [torch.randn(k, n, device="cuda", dtype=dt) for _ in range(c)]
            t = median_timing(torch, lambda i: torch.matmul(lhs[i % c], rhs[i % c]),
                              repeats=args.repeats, warmup=args.warmup)
            flops = 2 * m * k * n
            short = "bf16" if name == "bfloat16" else "fp32"
            rec.add(f"gemm.{short}.{layout}.{m}x{k}x{n}", "gemm", f"GEMM {short} {layout} {m}x{k}x{n}",
                    "TFLOP/s", flops / (t["medianMs"] * 1e-3) / 1e12, t, flops=flops, copies=c,
                    method="torch.matmul (cuBLAS); TF32 off for float32")
            del lhs, rhs


def bench_elementwise(torch, args, rec: Recorder) -> None:
    rows, cols = args.elements // args.row_length, args.row_length
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        short = "fp32" if name == "float32" else "bf16"
        isz = torch.finfo(dt).bits // 8
        a = torch.randn(rows, cols, device="cuda", dtype=dt)
        b = torch.randn(rows, cols, device="cuda", dtype=dt)
        t = median_timing(torch, lambda i: torch.add(a, b), repeats=args.repeats, warmup=args.warmup)
        moved = 3 * rows * cols * isz
        rec.add(f"add.{short}", "elementwise", f"add {short} {rows * cols / 2**20:.0f}M elements", "GB/s",
                moved / (t["medianMs"] * 1e-3) / 1e9, t, bytes=moved, copies=1,
                method="torch.add(a, b) into a new tensor; bytes = 2 reads + 1 write")
        del a, b


def bench_reduce(torch, args, rec: Recorder) -> None:
    rows, cols = args.elements // args.row_length, args.row_length
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        short = "fp32" if name == "float32" else "bf16"
        isz = torch.finfo(dt).bits // 8
        x = torch.randn(rows, cols, device="cuda", dtype=dt)
        t = median_timing(torch, lambda i: x.sum(dim=-1), repeats=args.repeats, warmup=args.warmup)
        moved = (rows * cols + rows) * isz
        rec.add(f"sum.{short}", "reduce", f"sum over last dim {short} [{rows}, {cols}]", "GB/s",
                moved / (t["medianMs"] * 1e-3) / 1e9, t, bytes=moved, copies=1,
                method="x.sum(dim=-1); bytes = input read + output written")
        del x


def quantize_nf4(torch, w, blocksize: int):
    """Block-wise NF4 of w (nearest code of w / absmax), packed two codes a byte, high nibble first."""
    code = torch.tensor(NF4_CODE, device=w.device, dtype=torch.float32)
    flat = w.float().reshape(-1, blocksize)
    absmax = flat.abs().amax(dim=1)
    scaled = flat / absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None]
    midpoints = (code[1:] + code[:-1]) / 2
    codes = torch.bucketize(scaled, midpoints).reshape(-1, 2)
    packed = ((codes[:, 0] << 4) | codes[:, 1]).to(torch.uint8)
    return packed, absmax


def dequantize_nf4(torch, packed, absmax, code, shape, blocksize: int):
    """The unfused dequantization, in plain PyTorch ops: unpack, look up, scale, cast to bf16."""
    codes = torch.stack((packed >> 4, packed & 0x0F), dim=-1).reshape(-1).int()
    values = torch.index_select(code, 0, codes).view(-1, blocksize) * absmax[:, None]
    return values.to(torch.bfloat16).view(shape)


def bench_nf4(torch, args, rec: Recorder, l2: int) -> None:
    bs = args.nf4_blocksize
    code = torch.tensor(NF4_CODE, device="cuda", dtype=torch.float32)
    worst_gap = max(b - a for a, b in zip(NF4_CODE, NF4_CODE[1:])) / 2
    for out_f, in_f in LAYER_WEIGHTS:
        numel = out_f * in_f
        packed_bytes = numel // 2 + (numel // bs) * 4
        wq = [torch.randn(out_f, in_f, device="cuda", dtype=torch.bfloat16) * 0.02]
        packed0, absmax0 = quantize_nf4(torch, wq[0], bs)
        # Check the dequantization: every element within half the widest code gap (times absmax).
        back = dequantize_nf4(torch, packed0, absmax0, code, (out_f, in_f), bs).float()
        err = ((back - wq[0].float()).reshape(-1, bs).abs() / absmax0[:, None]).max().item()
        if not err <= worst_gap + 1e-2:
            raise RuntimeError(f"nf4: dequantization error {err} exceeds {worst_gap}")
        del back
        for m in args.nf4_m:
            x_bytes = m * in_f * 2
            cq = copies_for(packed_bytes + x_bytes, l2, args.l2_multiple)
            cb = copies_for(numel * 2 + x_bytes, l2, args.l2_multiple)
            packs = [(packed0.clone(), absmax0.clone()) for _ in range(cq)]
            xs = [torch.randn(m, in_f, device="cuda", dtype=torch.bfloat16) for _ in range(max(cq, cb))]
            dense = [wq[0].clone() for _ in range(cb)]

            def unfused(i: int):
                p, a = packs[i % cq]
                w = dequantize_nf4(torch, p, a, code, (out_f, in_f), bs)
                return torch.matmul(xs[i % cq], w.t())

            t = median_timing(torch, unfused, repeats=args.repeats, warmup=args.warmup)
            flops = 2 * m * in_f * out_f
            shape = f"{m}x{in_f}x{out_f}"
            rec.add(f"nf4.dequant_matmul.{shape}", "nf4", f"NF4 dequant+matmul (torch ops) {shape}", "ms",
                    t["medianMs"], t, flops=flops, weightBytes=packed_bytes, copies=cq, blocksize=bs,
                    tflops=flops / (t["medianMs"] * 1e-3) / 1e12,
                    method="unpack nibbles, table lookup, * absmax, cast bf16, torch.matmul(x, W.t())")
            t = median_timing(torch, lambda i: torch.matmul(xs[i % cb], dense[i % cb].t()),
                              repeats=args.repeats, warmup=args.warmup)
            rec.add(f"nf4.cublas_bf16.{shape}", "nf4", f"cuBLAS bf16 unquantized {shape}", "ms",
                    t["medianMs"], t, flops=flops, weightBytes=numel * 2, copies=cb,
                    tflops=flops / (t["medianMs"] * 1e-3) / 1e12,
                    method="torch.matmul(x, W.t()) on the bf16 weight")
            del packs, xs, dense
        del wq, packed0, absmax0


def bench_lora(torch, args, rec: Recorder) -> None:
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
        rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if args.lora_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4)
    batch, seq = args.lora_batch, args.lora_seq
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    losses: list = []  # loss tensors, read back once timing is over

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.lora_warmup):
        step()
    torch.cuda.synchronize()
    samples = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(args.lora_steps):
        start.record()
        step()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    final = [float(x) for x in losses]
    if not all(math.isfinite(x) for x in final):
        raise RuntimeError(f"lora: non-finite loss {final}")
    ms = statistics.median(samples)
    timing = {"medianMs": ms, "minMs": min(samples), "maxMs": max(samples), "repeats": len(samples),
              "inner": 1, "warmup": args.lora_warmup}
    peak = torch.cuda.max_memory_allocated() / GIB
    extra = {
        "peakAllocatedGiB": peak,
        "peakReservedGiB": torch.cuda.max_memory_reserved() / GIB,
        "tokensPerStep": batch * seq,
        "trainableParams": sum(p.numel() for p in trainable),
        "totalParams": sum(p.numel() for p in model.parameters()),
        "adapterDtype": str(trainable[0].dtype).replace("torch.", ""),
        "attention": getattr(model.config, "_attn_implementation", None),
        "gradientCheckpointing": args.lora_checkpointing,
        "losses": final,
        "versions": {"transformers": transformers.__version__, "peft": peft.__version__},
        "method": ("LlamaForCausalLM (TinyLlama shapes, random init, bf16) + PEFT LoRA r=64 alpha=16 on "
                   "q,k,v,o,gate,up,down; torch.optim.AdamW lr 2e-4 on the adapters; one step = forward "
                   "with labels, backward, optimizer step, zero_grad; CUDA events per step"),
    }
    label = f"PEFT LoRA step TinyLlama-1.1B {batch}x{seq}"
    rec.add("lora.tinyllama.step", "lora", label + " (ms/step)", "ms", ms, timing, **extra)
    rec.add("lora.tinyllama.tokens", "lora", label + " (tokens/s)", "tokens/s", batch * seq / (ms * 1e-3), None,
            medianMs=ms, peakAllocatedGiB=peak, method="tokens per step / median step time")
    rec.add("lora.tinyllama.peak_memory", "lora", label + " (peak memory)", "GiB", peak, None,
            method="torch.cuda.max_memory_allocated over warm-up and timed steps")
    del model, optimizer


def driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("peers: skipped (PyTorch is not installed)")
        return 0
    if not torch.cuda.is_available():
        print("peers: skipped (torch.cuda is not available)")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    props = torch.cuda.get_device_properties(0)
    l2 = int(getattr(props, "L2_cache_size", 0) or 60 * 1024 * 1024)
    info = {
        "suite": "peers",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": {"name": torch.cuda.get_device_name(0), "multiprocessors": props.multi_processor_count,
                "memoryGiB": props.total_memory / GIB, "l2Bytes": l2,
                "computeCapability": f"{props.major}.{props.minor}", "driver": driver_version()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda},
        "config": {"quick": args.quick, "groups": args.groups, "repeats": args.repeats, "warmup": args.warmup,
                   "l2Multiple": args.l2_multiple},
        "method": ("CUDA events around batches of calls (batch >= ~1 ms), warm-up first, median of the per-call "
                   "times of the repeats; inputs random; small inputs rotated over copies totalling "
                   f">= {args.l2_multiple:g} x L2 ({l2 / 2**20:.0f} MiB)"),
        "results": [],
        "errors": [],
    }
    print(f"peers: {info['gpu']['name']}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"median of {args.repeats} repeats after {args.warmup} warm-up calls", flush=True)
    rec = Recorder()
    runners = {
        "copy": lambda: bench_copy(torch, args, rec),
        "gemm": lambda: bench_gemm(torch, args, rec, l2),
        "elementwise": lambda: bench_elementwise(torch, args, rec),
        "reduce": lambda: bench_reduce(torch, args, rec),
        "nf4": lambda: bench_nf4(torch, args, rec, l2),
        "lora": lambda: bench_lora(torch, args, rec),
    }
    began = time.time()
    for group in GROUPS:
        if group not in args.groups:
            continue
        print(f"[{group}]", flush=True)
        try:
            runners[group]()
        except Exception as e:  # keep the other groups' figures; the error goes into the JSON
            print(f"  {group}: failed: {type(e).__name__}: {e}", flush=True)
            info["errors"].append({"group": group, "error": f"{type(e).__name__}: {e}"})
        torch.cuda.empty_cache()
    info["results"] = rec.results
    info["seconds"] = round(time.time() - began, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print_table(info)
    print(f"peers: wrote {args.out} ({info['seconds']} s)")
    return 1 if info["errors"] else 0


def print_table(info: dict) -> None:
    rows = [(r["label"], fmt(r["value"]), r["unit"], f"{r['medianMs']:.4f}" if "medianMs" in r else "")
            for r in info["results"]]
    head = ("measurement", "value", "unit", "median ms")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for r in rows:
        print("  ".join((c.ljust(w) if i in (0, 2) else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
