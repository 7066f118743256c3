"""Peak memory and seconds/step: Q-LoRA preparation recipes, and selective vs full vs no activation checkpointing.

    python benchmarks/bench_prepare.py [--table kbit|checkpointing|all] [--steps 5] [--seq 128] [--repeats 1]
                                       [--ckpt-seq 2048,4096] [--device cpu|cuda] [--threads 1]

kbit (CPU): a ~40M-parameter Qwen3 built from a config, loaded in 4-bit; recipes (1) compat.prepare_model, (2) the
deprecated compat.prepare_peft_model, (3) the old recipe: peft's prepare_model_for_kbit_training (upcasts every
non-quantized parameter to fp32) + get_peft_model. Goal: (1) has a lower peak than (3) and is no slower.

checkpointing: a 4-layer Qwen3 (hidden 256, 4 heads) in fp32 with LoRA, batch 1, at sequence lengths where attention
is most of a layer's work: no checkpointing, full checkpointing, and selective checkpointing
(`gradient_checkpointing_kwargs={"selective": True}`: attention outputs saved, the rest recomputed). Goal: selective
gets back part of what full checkpointing costs in time, for part of what it saves in memory.

Each measurement runs in a fresh process, so the peak (RSS on the CPU, the allocator's peak on CUDA) is its own:
load + preparation + training, minus what was in use after the imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

KBIT = dict(
    vocab_size=16_000,
    hidden_size=512,
    intermediate_size=1_408,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    tie_word_embeddings=False,
)
CKPT = dict(
    vocab_size=8_000,
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    tie_word_embeddings=False,
)
RECIPES = ("prepare_model", "prepare_peft_model", "peft kbit + get_peft_model")
SCENARIOS = ("Q-LoRA", "Q-LoRA+GC")
CHECKPOINTING = {"none": None, "full": {}, "selective": {"selective": True}}


def build(path: str, config: str) -> int:
    import transformers

    from compat.scenarios import build_tiny_model

    build_tiny_model(path, **(KBIT if config == "kbit" else CKPT))
    return sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(path).parameters())


def measure_kbit(path: str, recipe: str, scenario: str, steps: int, seq: int) -> dict:
    """One recipe, one scenario, in this (fresh) process."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, TrainingArguments

    import compat
    from compat.scenarios import PeakMemory, lora_config, train_loop

    gc = scenario.endswith("+GC")
    with tempfile.TemporaryDirectory() as out, PeakMemory("cpu") as memory:
        kwargs = compat.pretrained_kwargs(
            "auto",
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype="float16",
        )
        model = AutoModelForCausalLM.from_pretrained(path, device_map={"": "cpu"}, **kwargs)
        args = TrainingArguments(out, gradient_checkpointing=gc, use_cpu=True, report_to=[])
        if recipe == "prepare_model":
            model = compat.prepare_model(model, lora_config(), args)
        elif recipe == "prepare_peft_model":
            model = compat.prepare_peft_model(model, lora_config(), args)
        else:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=gc, gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            model = get_peft_model(model, lora_config())
        times: list[float] = []
        losses = train_loop(model, steps + 1, length=seq, lr=1e-4, timings=times)  # the first step warms up
    adapter = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad})
    fp32_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad and p.dtype == torch.float32)
    return {
        "recipe": recipe,
        "scenario": scenario,
        "peak_mb": memory.peak_mb,
        "s_per_step": min(times[1:]),
        "adapter": ",".join(adapter),
        "fp32_frozen": fp32_frozen,
        "loss": losses[-1],
    }


def measure_checkpointing(path: str, mode: str, seq: int, steps: int, device: str, threads: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    import compat
    from compat.scenarios import PeakMemory, lora_config, train_loop

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    kwargs = CHECKPOINTING[mode]
    with PeakMemory(device) as memory:
        model = AutoModelForCausalLM.from_pretrained(path, **compat.pretrained_kwargs("float32")).to(device)
        model = compat.prepare_model(
            model, lora_config(), gradient_checkpointing=kwargs is not None, gradient_checkpointing_kwargs=kwargs
        )
        times: list[float] = []
        losses = train_loop(model, steps + 1, batch=1, length=seq, lr=1e-4, timings=times)
    return {"mode": mode, "seq": seq, "peak_mb": memory.peak_mb, "s_per_step": min(times[1:]), "loss": losses[0]}


def fresh(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"measurement {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(repeats: int, args: list[str]) -> dict:
    return min((fresh(args) for _ in range(repeats)), key=lambda r: r["s_per_step"])


def kbit_table(tmp: str, opts) -> None:
    path = os.path.join(tmp, "qwen3-40m")
    params = fresh(["--build", f"{path}|kbit"])["params"]
    print(
        f"\nQ-LoRA recipes (CPU): Qwen3 from a config, {params:,} parameters, bf16, loaded in 4-bit nf4 (double "
        f"quant, fp16 compute); batch 4 x {opts.seq}; best of {opts.steps} steps",
        file=sys.stderr,
    )
    rows = []
    for scenario in SCENARIOS:
        for recipe in RECIPES:
            rows.append(
                best_of(
                    opts.repeats,
                    ["--one", f"kbit|{path}|{recipe}|{scenario}", "--steps", str(opts.steps), "--seq", str(opts.seq)],
                )
            )
            print(f"  {scenario:<10} {recipe:<28} done", file=sys.stderr)
    print("| scenario | recipe | peak MB | s/step | adapter dtype | frozen fp32 params | loss |")
    print("|---|---|---:|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['recipe']} | {r['peak_mb']:.0f} | {r['s_per_step']:.3f} | {r['adapter']} | "
            f"{r['fp32_frozen']:,} | {r['loss']:.3f} |"
        )
    for scenario in SCENARIOS:
        new, old = (
            next(r for r in rows if r["scenario"] == scenario and r["recipe"] == name)
            for name in (RECIPES[0], RECIPES[2])
        )
        print(
            f"{scenario}: prepare_model peak {new['peak_mb'] / old['peak_mb']:.2f}x the old recipe's, "
            f"time {new['s_per_step'] / old['s_per_step']:.2f}x"
        )


def checkpointing_table(tmp: str, opts) -> None:
    path = os.path.join(tmp, "qwen3-ckpt")
    params = fresh(["--build", f"{path}|ckpt"])["params"]
    seqs = [int(s) for s in opts.ckpt_seq.split(",")]
    print(
        f"\nactivation checkpointing ({opts.device}, {opts.threads or 'default'} threads): Qwen3 from a config, "
        f"{params:,} parameters, fp32, LoRA (q, v); batch 1; best of {opts.steps} steps x {opts.repeats} runs",
        file=sys.stderr,
    )
    rows = []
    for seq in seqs:
        # Rounds of none/full/selective, the fastest of each kept: a busy machine slows all three alike.
        runs: dict[str, list[dict]] = {mode: [] for mode in CHECKPOINTING}
        for _ in range(opts.repeats):
            for mode in CHECKPOINTING:
                runs[mode].append(
                    fresh(
                        ["--one", f"ckpt|{path}|{mode}|{seq}|{opts.device}|{opts.threads}", "--steps", str(opts.steps)]
                    )
                )
        for mode in CHECKPOINTING:
            rows.append(min(runs[mode], key=lambda r: r["s_per_step"]))
        print(f"  seq {seq:<6} done", file=sys.stderr)
    print("\n| seq | checkpointing | s/step | peak MB | time vs none | peak vs none |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        none = next(n for n in rows if n["seq"] == r["seq"] and n["mode"] == "none")
        print(
            f"| {r['seq']} | {r['mode']} | {r['s_per_step']:.3f} | {r['peak_mb']:.0f} | "
            f"{r['s_per_step'] / none['s_per_step']:.2f}x | {r['peak_mb'] / none['peak_mb']:.2f}x |"
        )
    for seq in seqs:
        none, full, sel = (next(r for r in rows if r["seq"] == seq and r["mode"] == m) for m in CHECKPOINTING)
        slowdown = full["s_per_step"] - none["s_per_step"]
        regained = (full["s_per_step"] - sel["s_per_step"]) / slowdown if slowdown > 0 else float("nan")
        print(
            f"seq {seq}: selective gets back {regained:.0%} of full checkpointing's slowdown "
            f"({sel['s_per_step']:.3f} vs {full['s_per_step']:.3f} s/step; none {none['s_per_step']:.3f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("kbit", "checkpointing", "all"), default="all")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seq", type=int, default=128, help="sequence length of the kbit table")
    parser.add_argument("--ckpt-seq", default="2048,4096", help="sequence lengths of the checkpointing table")
    parser.add_argument("--device", default="cpu", help="device of the checkpointing table (cpu, cuda)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the table keeps the fastest")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the checkpointing table on the CPU (0: torch's default)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement in this process
    parser.add_argument("--build", help=argparse.SUPPRESS)  # internal: path|config
    opts = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout's compat
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if opts.build:
        path, config = opts.build.split("|")
        print(json.dumps({"params": build(path, config)}))
        return 0
    if opts.one:
        import warnings

        import transformers

        transformers.logging.set_verbosity_error()
        warnings.simplefilter("ignore")
        kind, path, *rest = opts.one.split("|")
        if kind == "kbit":
            result = measure_kbit(path, rest[0], rest[1], opts.steps, opts.seq)
        else:
            result = measure_checkpointing(path, rest[0], int(rest[1]), opts.steps, rest[2], int(rest[3]))
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if opts.table in ("kbit", "all"):
            kbit_table(tmp, opts)
        if opts.table in ("checkpointing", "all"):
            checkpointing_table(tmp, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
