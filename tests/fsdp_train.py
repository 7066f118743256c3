"""One rank of the FSDP test (tests/test_fsdp.py): run by `torchrun --nproc-per-node 2`.

    torchrun --nproc-per-node 2 tests/fsdp_train.py MODEL_DIR OUT_DIR

1. `Trainer` with `TrainingArguments(fsdp=...)` on the CPU: what accelerate makes of it (it has no CPU FSDP: DDP).
2. Torch's FullyShardedDataParallel (FSDP1, gloo, decoder layers auto-wrapped) on compat-prepared LoRA models:
   - a fresh model prepared with FSDP args (the adapter is created in the base dtype);
   - an existing PeftModel (fp32 adapters on a bf16 base, as get_peft_model makes them) prepared with FSDP args
     (the uniform_dtype step), and the same model prepared without them, which FSDP refuses to flatten.
   Each wrapped model trains 3 steps on rank-specific data. Writes OUT_DIR/rank{R}.json and rank{R}.pt.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from types import SimpleNamespace


def wrap(model):
    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    layer = type(model.get_base_model().model.layers[0])
    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={layer})
    return FullyShardedDataParallel(model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))


def train_wrapped(name: str, model, rank: int, out_dir: str) -> dict:
    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel

    from compat.scenarios import train_loop

    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    total = sum(p.numel() for p in model.parameters())
    try:
        wrapped = wrap(model)
    except ValueError as exc:
        return {"name": name, "dtypes": dtypes, "error": str(exc)}
    local = sum(p.numel() for p in wrapped.parameters())  # use_orig_params: each rank holds its shard
    units = sum(isinstance(m, FullyShardedDataParallel) for m in wrapped.modules())
    with FullyShardedDataParallel.summon_full_params(wrapped):
        before = {n: p.detach().clone() for n, p in wrapped.named_parameters() if "lora_" in n}
    losses = train_loop(wrapped, steps=3, batch=2, length=32, seed=rank)  # each rank its own data
    with FullyShardedDataParallel.summon_full_params(wrapped):
        after = {n: p.detach().clone() for n, p in wrapped.named_parameters() if "lora_" in n}
    torch.save({"before": before, "after": after}, os.path.join(out_dir, f"rank{rank}-{name}.pt"))
    return {
        "name": name,
        "dtypes": dtypes,
        "wrapped": type(wrapped).__name__,
        "fsdp_units": units,
        "total_params": total,
        "local_params": local,
        "losses": losses,
    }


def main(model_dir: str, out_dir: str) -> None:
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("DIST_TRAIN_TIMEOUT", "150")), exit=True)
    import torch
    import transformers

    import compat  # before peft: the HybridCache guard for transformers 5 + peft 0.16-0.17
    from compat.scenarios import SCENARIOS, dataset, load, lora_config, training_args

    # isort: split
    from peft import get_peft_model

    transformers.logging.set_verbosity_error()
    rank = int(os.environ["RANK"])
    scenario = next(s for s in SCENARIOS if s.name == "LoRA")
    fsdp = dict(fsdp="full_shard auto_wrap", ddp_backend="gloo", save_strategy="no")
    args = training_args(scenario, os.path.join(out_dir, "trainer"), 1, "cpu", **fsdp)

    # 1. The Trainer's own FSDP: transformers 5.x falls back to DDP on the CPU, 4.x refuses (accelerate's FSDP plugin
    # wants an accelerator).
    report = {"rank": rank, "trainer_fsdp": False, "trainer": None, "runs": []}
    try:
        trainer = transformers.Trainer(
            model=compat.prepare_model(load(scenario, model_dir), lora_config(), args),
            args=args,
            train_dataset=dataset(rows=4),
        )
        report["trainer_fsdp"] = bool(getattr(trainer, "is_fsdp_enabled", False))
        report["trainer"] = str(trainer.accelerator.distributed_type)
    except RuntimeError as exc:
        report["trainer"] = f"refused: {exc}"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    report.update(world_size=torch.distributed.get_world_size(), backend=torch.distributed.get_backend())

    # 2. FSDP1 on compat-prepared models.
    torch.manual_seed(0)
    report["runs"].append(
        train_wrapped("fresh", compat.prepare_model(load(scenario, model_dir), lora_config(), args), rank, out_dir)
    )
    fsdp_args = SimpleNamespace(fsdp="full_shard auto_wrap")
    for name, settings in (("existing-uniform", fsdp_args), ("existing-mixed", None)):
        torch.manual_seed(0)  # the same adapter on both ranks, as a saved adapter would be
        existing = get_peft_model(load(scenario, model_dir), lora_config())
        plan = compat.explain(existing, None, settings)
        prepared = compat.prepare_model(existing, None, settings)
        report["runs"].append({**train_wrapped(name, prepared, rank, out_dir), "plan": plan.names})

    with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    torch.distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
