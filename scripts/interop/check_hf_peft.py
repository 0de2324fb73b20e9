#!/usr/bin/env python3
"""Checks blora's files against the Python ecosystem's own readers.

Loads the embedded model (packages/blora/assets/tiny-llama) with transformers' AutoTokenizer
and LlamaForCausalLM, and the LoRA adapter written by scripts/interop/make-fixture.mjs with
PEFT's PeftModel.from_pretrained, then compares token ids and logits with what blora computed.

    python3 scripts/interop/check_hf_peft.py [--fixture runs/interop] [--out report.json]

Exits non-zero when ids differ or logits differ by more than float32 rounding allows.
"""
import argparse
import json
import os
import sys

import torch
import transformers
import peft
from transformers import AutoTokenizer, LlamaForCausalLM
from peft import PeftModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "packages", "blora", "assets", "tiny-llama")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixture", default=os.path.join(ROOT, "runs", "interop"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with open(os.path.join(args.fixture, "expected.json")) as f:
        expected = json.load(f)

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    model = LlamaForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
    report = {"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__, "cases": []}
    ok = True

    def logits_of(m, ids):
        with torch.no_grad():
            return m(torch.tensor([ids])).logits[0].double()

    for case in expected["base"]:
        ids = tokenizer(case["text"])["input_ids"]  # transformers adds <s> through the post-processor
        same_ids = ids == case["ids"]
        ref = logits_of(model, case["ids"])
        ours = torch.tensor(case["logits"], dtype=torch.float64)
        err = ((ref - ours).norm() / ref.norm()).item()
        report["cases"].append({"what": "base", "text": case["text"], "ids_equal": same_ids, "relative_error": err})
        ok &= same_ids and err < 1e-5

    adapted = PeftModel.from_pretrained(model, os.path.join(args.fixture, "adapter")).eval()
    for case in expected["adapted"]:
        ref = logits_of(adapted, case["ids"])
        ours = torch.tensor(case["logits"], dtype=torch.float64)
        base = torch.tensor(next(c for c in expected["base"] if c["text"] == case["text"])["logits"], dtype=torch.float64)
        err = ((ref - ours).norm() / ref.norm()).item()
        moved = ((ours - base).norm() / base.norm()).item()
        report["cases"].append({"what": "lora", "text": case["text"], "relative_error": err, "adapter_change": moved})
        ok &= err < 1e-5 and moved > 1e-4

    report["ok"] = bool(ok)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
