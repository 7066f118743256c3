"""The seven scenarios of TRL PR #4577's design document, run for real: `python -m compat.scenarios`.

Each scenario loads a model (by default a tiny Qwen3 built from a config, saved and re-loaded from a temp dir so the
real loading path runs), prepares it with `compat.prepare_model` (or the deprecated wrapper with `--legacy`), trains
it for a few steps with `transformers.Trainer`, and reports what it observed. A scenario this environment cannot run
(Q-LoRA where bitsandbytes cannot run on the device) is shown as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from compat import versions


@dataclass(frozen=True)
class Scenario:
    name: str
    dtype: str = "auto"
    lora: bool = False
    qlora: bool = False
    gc: bool = False


SCENARIOS = (
    Scenario("FFT"),
    Scenario("FFT+FP16", dtype="float16"),
    Scenario("FFT+GC", gc=True),
    Scenario("LoRA", lora=True),
    Scenario("LoRA+GC", lora=True, gc=True),
    Scenario("Q-LoRA", lora=True, qlora=True),
    Scenario("Q-LoRA+GC", lora=True, qlora=True, gc=True),
)
BY_NAME = {s.name.lower(): s for s in SCENARIOS}

# The tiny model the scenarios train by default: 202,112 parameters, saved in bf16.
TINY = dict(
    vocab_size=1000,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    tie_word_embeddings=False,
)


def model_config(**overrides: Any):
    """A Qwen3 config of the tiny model (Qwen2 on transformers < 4.51, which has no Qwen3), `overrides` on top."""
    import transformers

    params = {**TINY, **overrides}
    if hasattr(transformers, "Qwen3Config"):
        return transformers.Qwen3Config(**params)
    return transformers.Qwen2Config(**{k: v for k, v in params.items() if k != "head_dim"})


def build_tiny_model(path: str, **overrides: Any) -> str:
    """Save the embedded default model (see `model_config`; `overrides` change its shape) to `path`, in bf16."""
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(model_config(**overrides)).to(torch.bfloat16)
    model.save_pretrained(path)
    return path


def skip_reason(scenario: Scenario, device: str) -> str | None:
    if scenario.lora and versions.installed("peft") is None:
        return "peft is not installed"
    if scenario.qlora:
        if versions.installed("bitsandbytes") is None:
            return "bitsandbytes is not installed"
        if device == "cpu" and not versions.is_new("bnb_cpu_kbit"):
            return f"bitsandbytes 4-bit on the CPU needs {versions.GATES_BY_NAME['bnb_cpu_kbit'].requirement}"
    if scenario.dtype == "float16" and device == "cpu" and not versions.at_least("torch", "2.1"):
        return "fp16 training on the CPU needs torch >= 2.1"
    return None


def load(scenario: Scenario, path: str, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    from compat.loading import pretrained_kwargs

    if scenario.qlora:
        kwargs = pretrained_kwargs(
            scenario.dtype,
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype="float16",
        )
        kwargs["device_map"] = {"": device if device == "cpu" else 0}
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return AutoModelForCausalLM.from_pretrained(path, **pretrained_kwargs(scenario.dtype)).to(device)


def training_args(scenario: Scenario, output_dir: str, steps: int, device: str, **overrides: Any):
    from transformers import TrainingArguments

    # lr 1e-2: these tiny models train in pure bf16/fp16 (no fp32 master weights), where a smaller step rounds away
    # on the norm weights (bf16 spacing at 1.0 is 0.0078) and "every trainable tensor changed" could not hold.
    kwargs = dict(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        gradient_checkpointing=scenario.gc,
        seed=0,
        dataloader_num_workers=0,
    )
    if device == "cpu":
        kwargs["use_cpu" if versions.at_least("transformers", "4.38") else "no_cuda"] = True
    if scenario.dtype == "float16":
        # Pure fp16 Adam: the default eps (1e-8) underflows to 0 in fp16 and the first step diverges.
        kwargs["adam_epsilon"] = 1e-4
    kwargs.update(overrides)
    if versions.is_new("activation_checkpointing_names"):  # don't make our own demo warn on 5.23+
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    return TrainingArguments(**kwargs)


LORA_TARGETS = ["q_proj", "v_proj"]  # what peft >= 0.16 picks for Qwen3 by itself; older peft knows no Qwen3


def lora_config(**kwargs: Any):
    """LoraConfig() with explicit targets (q_proj, v_proj): on the tiny model r=8 gives 3,584 trainable parameters."""
    from peft import LoraConfig

    return LoraConfig(**{"target_modules": LORA_TARGETS, **kwargs})


def peft_config_for(scenario: Scenario, model=None):
    """LoraConfig() as in TRL PR #4577's scenarios; explicit targets where the model has q_proj/v_proj (any peft)."""
    if not scenario.lora:
        return None
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()} if model is not None else set(LORA_TARGETS)
    return lora_config() if set(LORA_TARGETS) <= names else LoraConfig()


def train_loop(
    model,
    steps: int = 3,
    *,
    batch: int = 4,
    length: int = 64,
    lr: float = 1e-2,
    eps: float = 1e-8,
    seed: int = 0,
    timings: list[float] | None = None,
) -> list[float]:
    """A plain torch loop (no Trainer): `steps` AdamW steps on random token ids (labels = input_ids), on the model's
    device; returns the losses. `timings`, when given, gets each step's seconds. (fp16 weights: pass eps=1e-4.)"""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=lr, eps=eps)
    model.train()
    losses = []
    for _ in range(steps):
        ids = torch.randint(0, vocab, (batch, length), generator=generator).to(device)
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # .item() waits for the device: the timing below is the whole step
        if timings is not None:
            timings.append(time.perf_counter() - start)
    return losses


def dataset(rows: int = 16, length: int = 64, vocab: int = 1000, seed: int = 0) -> list[dict[str, list[int]]]:
    """The scenarios' data: random token ids, labels = input_ids (a list is a valid Trainer dataset)."""
    import random

    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        ids = [rng.randrange(vocab) for _ in range(length)]
        data.append({"input_ids": ids, "labels": list(ids)})
    return data


def prepare(model, scenario: Scenario, args, legacy: bool = False):
    from compat import legacy as legacy_api
    from compat.prepare import prepare_model

    peft_config = peft_config_for(scenario, model)
    if legacy:
        with _quiet_future_warnings():
            return legacy_api.prepare_peft_model(model, peft_config, args)
    return prepare_model(model, peft_config, args)


@contextlib.contextmanager
def _quiet_future_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def checkpointing_on(model) -> bool:
    # Read the layers' flags rather than model.is_gradient_checkpointing, which warns on transformers >= 5.23.
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def describe(model) -> dict[str, Any]:
    import collections

    trainable = [p for p in model.parameters() if p.requires_grad]
    float_dtypes = collections.Counter(
        str(p.dtype).removeprefix("torch.") for p in model.parameters() if not p.requires_grad and p.is_floating_point()
    ) or collections.Counter(str(p.dtype).removeprefix("torch.") for p in trainable)
    adapter = sorted(
        {str(p.dtype).removeprefix("torch.") for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}
    )
    quant = (
        "4bit"
        if getattr(model, "is_loaded_in_4bit", False)
        else ("8bit" if getattr(model, "is_loaded_in_8bit", False) else "-")
    )
    return {
        "gc": checkpointing_on(model),
        "peft": type(model).__name__.startswith("Peft"),
        "quant": quant,
        "dtype": float_dtypes.most_common(1)[0][0] if float_dtypes else "-",
        "trainable": sum(p.numel() for p in trainable),
        "total": sum(p.numel() for p in model.parameters()),
        "adapter_dtype": ",".join(adapter) or "-",
    }


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak, or the process RSS sampled every 5 ms on the CPU."""

    def __init__(self, device: str):
        self.device, self.peak_mb = device, 0.0

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        elif os.path.exists("/proc/self/statm"):
            self._base = self._peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()
            self.peak_mb = (max(self._peak, self._rss()) - self._base) / 2**20
        return False


@dataclass
class Result:
    scenario: str
    status: str  # "ok", "skipped", "failed"
    reason: str = ""
    observed: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None

    def row(self) -> dict[str, str]:
        o = self.observed
        if self.status != "ok":
            return {
                "Scenario": self.scenario,
                "Observed": f"{self.status}: {self.reason}",
                "Trainable": "",
                "Adapter dtype": "",
                "Loss": "",
                "s/step": "",
                "Peak MB": "",
            }
        observed = (
            f"gc {'on' if o['gc'] else 'off'}, {'PeftModel' if o['peft'] else 'no adapter'}, "
            f"quant {o['quant']}, {o['dtype']}"
        )
        return {
            "Scenario": self.scenario,
            "Observed": observed,
            "Trainable": f"{o['trainable']:,} / {o['total']:,}",
            "Adapter dtype": o["adapter_dtype"],
            "Loss": f"{self.losses[0]:.3f} -> {self.losses[-1]:.3f}" if self.losses else "-",
            "s/step": f"{self.seconds_per_step:.3f}",
            "Peak MB": f"{self.peak_memory_mb:.0f}",
        }


def run_scenario(
    scenario: Scenario,
    path: str,
    *,
    steps: int = 4,
    device: str = "cpu",
    legacy: bool = False,
    workdir: str | None = None,
) -> Result:
    reason = skip_reason(scenario, device)
    if reason:
        return Result(scenario.name, "skipped", reason)
    from transformers import PrinterCallback, Trainer

    with tempfile.TemporaryDirectory(dir=workdir) as out:
        model = load(scenario, path, device)
        args = training_args(scenario, out, steps, device)
        with PeakMemory(device) as memory:
            model = prepare(model, scenario, args, legacy)
            trainer = Trainer(model=model, args=args, train_dataset=dataset())
            trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout: the table goes there
            start = time.perf_counter()
            trainer.train()
            elapsed = time.perf_counter() - start
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        return Result(
            scenario.name,
            "ok",
            observed=describe(model),
            losses=losses,
            seconds_per_step=elapsed / max(1, steps),
            peak_memory_mb=memory.peak_mb,
        )


def markdown(results: list[Result]) -> str:
    rows = [r.row() for r in results]
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = [
        "| " + " | ".join(h.ljust(widths[h]) for h in headers) + " |",
        "|" + "|".join("-" * (widths[h] + 2) for h in headers) + "|",
    ]
    lines += ["| " + " | ".join(r[h].ljust(widths[h]) for h in headers) + " |" for r in rows]
    return "\n".join(lines)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.scenarios", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a local checkpoint directory (default: the embedded tiny Qwen3)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per scenario (default 4)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument("--legacy", action="store_true", help="prepare through the deprecated prepare_peft_model")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    opts = parser.parse_args(argv)

    selected = list(SCENARIOS)
    if opts.only:
        unknown = [n for n in opts.only if n.lower() not in BY_NAME]
        if unknown:
            parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(s.name for s in SCENARIOS)}")
        selected = [BY_NAME[n.lower()] for n in opts.only]
    if opts.steps < 1:
        parser.error("--steps must be at least 1")
    if opts.model and not os.path.isdir(opts.model):
        parser.error(f"--model {opts.model}: not a directory (a local checkpoint saved with save_pretrained)")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    device = _default_device() if opts.device == "auto" else opts.device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available here")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = opts.model or build_tiny_model(os.path.join(tmp, "tiny-qwen3"))
        for i, scenario in enumerate(selected, 1):
            print(f"[{i}/{len(selected)}] {scenario.name} ...", file=sys.stderr, flush=True)
            try:
                result = run_scenario(scenario, path, steps=opts.steps, device=device, legacy=opts.legacy, workdir=tmp)
            except Exception as exc:  # one scenario's failure is a result, not the end of the report
                result = Result(scenario.name, "failed", f"{type(exc).__name__}: {exc}")
            print(f"      {result.status} {result.reason}".rstrip(), file=sys.stderr, flush=True)
            results.append(result)

    if opts.format == "json":
        print(
            json.dumps(
                {
                    "device": device,
                    "legacy": opts.legacy,
                    "versions": {k: str(v) if v else None for k, v in versions.installed_versions().items()},
                    "results": [dataclasses.asdict(r) for r in results],
                },
                indent=2,
            )
        )
    else:
        print(
            f"device {device}, {'prepare_peft_model (deprecated)' if opts.legacy else 'compat.prepare_model'}, "
            f"transformers {versions.installed('transformers')}, peft {versions.installed('peft')}, "
            f"bitsandbytes {versions.installed('bitsandbytes')}\n"
        )
        print(markdown(results))
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
