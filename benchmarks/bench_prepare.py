"""Peak memory and seconds/step of Q-LoRA preparation recipes on a ~40M-parameter model built from a config (CPU).

    python benchmarks/bench_prepare.py [--steps 5] [--seq 128] [--repeats 1]

Recipes: (1) compat.prepare_model, (2) the deprecated compat.prepare_peft_model, (3) the old recipe: peft's
prepare_model_for_kbit_training (upcasts every non-quantized parameter to fp32) + get_peft_model. Each measurement runs
in a fresh process, so the peak RSS is its own: load + preparation + training, minus the RSS after the imports.
Goal: (1) has a lower peak than (3) and is no slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONFIG = dict(vocab_size=16_000, hidden_size=512, intermediate_size=1_408, num_hidden_layers=8,
              num_attention_heads=8, num_key_value_heads=4, head_dim=64, tie_word_embeddings=False)
RECIPES = ("prepare_model", "prepare_peft_model", "peft kbit + get_peft_model")
SCENARIOS = ("Q-LoRA", "Q-LoRA+GC")


def build(path: str) -> int:
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.Qwen3Config(**CONFIG)).to(torch.bfloat16)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(path: str, recipe: str, scenario: str, steps: int, seq: int) -> dict:
    """One recipe, one scenario, in this (fresh) process."""
    import warnings

    import torch
    import transformers
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, TrainingArguments

    import compat
    from compat.scenarios import PeakMemory

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    gc = scenario.endswith("+GC")
    with tempfile.TemporaryDirectory() as out, PeakMemory("cpu") as memory:
        kwargs = compat.pretrained_kwargs("auto", load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype="float16")
        model = AutoModelForCausalLM.from_pretrained(path, device_map={"": "cpu"}, **kwargs)
        args = TrainingArguments(out, gradient_checkpointing=gc, use_cpu=True, report_to=[])
        if recipe == "prepare_model":
            model = compat.prepare_model(model, LoraConfig(), args)
        elif recipe == "prepare_peft_model":
            model = compat.prepare_peft_model(model, LoraConfig(), args)
        else:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
            model = get_peft_model(model, LoraConfig())
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ids = torch.randint(0, CONFIG["vocab_size"], (4, seq), generator=torch.Generator().manual_seed(0))
        model.train()
        times = []
        for step in range(steps + 1):  # the first step warms up and is not timed
            start = time.perf_counter()
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step:
                times.append(time.perf_counter() - start)
    adapter = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad})
    fp32_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad and p.dtype == torch.float32)
    return {"recipe": recipe, "scenario": scenario, "peak_mb": memory.peak_mb, "s_per_step": min(times),
            "adapter": ",".join(adapter), "fp32_frozen": fp32_frozen, "loss": loss.item()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the table keeps the best")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: path|recipe|scenario
    opts = parser.parse_args()
    if opts.one:
        path, recipe, scenario = opts.one.split("|")
        print(json.dumps(measure(path, recipe, scenario, opts.steps, opts.seq)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "qwen3-40m")
        code = f"import sys; sys.path.insert(0, {os.getcwd()!r}); from benchmarks.bench_prepare import build; " \
               f"print(build({path!r}))"
        params = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        print(f"model: Qwen3 from a config, {int(params.split()[-1]):,} parameters, bf16, loaded in 4-bit nf4 "
              f"(double quant, fp16 compute); batch 4 x {opts.seq}; best of {opts.steps} steps", file=sys.stderr)
        rows = []
        for scenario in SCENARIOS:
            for recipe in RECIPES:
                best = None
                for _ in range(opts.repeats):
                    out = subprocess.run([sys.executable, __file__, "--one", f"{path}|{recipe}|{scenario}",
                                          "--steps", str(opts.steps), "--seq", str(opts.seq)],
                                         capture_output=True, text=True)
                    if out.returncode:
                        print(out.stderr[-2000:], file=sys.stderr)
                        return 1
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    if best is None or result["s_per_step"] < best["s_per_step"]:
                        best = result
                print(f"  {scenario:<10} {recipe:<28} done", file=sys.stderr)
                rows.append(best)

    print("| scenario | recipe | peak MB | s/step | adapter dtype | frozen fp32 params | loss |")
    print("|---|---|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['recipe']} | {r['peak_mb']:.0f} | {r['s_per_step']:.3f} | {r['adapter']} | "
              f"{r['fp32_frozen']:,} | {r['loss']:.3f} |")
    for scenario in SCENARIOS:
        new, old = (next(r for r in rows if r["scenario"] == scenario and r["recipe"] == name)
                    for name in (RECIPES[0], RECIPES[2]))
        print(f"{scenario}: prepare_model peak {new['peak_mb'] / old['peak_mb']:.2f}x the old recipe's, "
              f"time {new['s_per_step'] / old['s_per_step']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
