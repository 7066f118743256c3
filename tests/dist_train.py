"""One rank of the distributed test (tests/test_distributed.py): run by `torchrun --nproc-per-node 2`.

    torchrun --nproc-per-node 2 tests/dist_train.py MODEL_DIR OUT_DIR

Each rank loads the tiny model, prepares it with compat.prepare_model (LoRA + gradient checkpointing, read from
TrainingArguments), trains it with transformers.Trainer under DDP (gloo, CPU), then writes its adapter weights to
OUT_DIR/rank{R}.pt and what it observed to OUT_DIR/rank{R}.json. The test compares the ranks.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings


def main(model_dir: str, out_dir: str, steps: int = 3) -> None:
    import faulthandler

    # Never hang the test suite: dump every thread's stack and exit if a collective deadlocks.
    faulthandler.dump_traceback_later(float(os.environ.get("DIST_TRAIN_TIMEOUT", "150")), exit=True)
    import torch
    import torch.utils.checkpoint
    import transformers
    import transformers.modeling_utils

    import compat  # first: the HybridCache guard for transformers 5 + peft 0.16-0.17
    from compat import versions
    from compat.scenarios import SCENARIOS, checkpointing_on, dataset, load, lora_config, training_args

    # What torch's checkpoint receives during training (transformers binds it under this name when enabling).
    use_reentrant = set()
    real_checkpoint = torch.utils.checkpoint.checkpoint

    def checkpoint(function, *args, **kwargs):
        use_reentrant.add(kwargs.get("use_reentrant", "unset"))
        return real_checkpoint(function, *args, **kwargs)

    transformers.modeling_utils.checkpoint = checkpoint

    transformers.logging.set_verbosity_error()
    rank = int(os.environ["RANK"])

    scenario = next(s for s in SCENARIOS if s.name == "LoRA+GC")
    model = load(scenario, model_dir)
    args = training_args(
        scenario,
        os.path.join(out_dir, "trainer"),
        steps,
        "cpu",
        per_device_train_batch_size=2,
        ddp_backend="gloo",
        ddp_find_unused_parameters=False,
        learning_rate=1e-2,
        save_strategy="no",
        seed=1234 + rank,  # adapters are initialised from args.seed: different per rank, DDP must still align them
    )
    before_args = repr(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = compat.prepare_model(model, lora_config(), args)
    ours = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]

    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset(rows=16))
    trainer.train()

    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    after = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"before": trainable, "after": after}, os.path.join(out_dir, f"rank{rank}.pt"))
    report = {
        "rank": rank,
        "world_size": args.world_size,
        "process_group": torch.distributed.is_initialized() and torch.distributed.get_world_size(),
        "backend": torch.distributed.is_initialized() and torch.distributed.get_backend(),
        "ddp_wrapped": trainer.model_wrapped is not trainer.model
        and type(trainer.model_wrapped).__name__ == "DistributedDataParallel",
        "global_step": trainer.state.global_step,
        "losses": losses,
        "finite": all(math.isfinite(x) for x in losses),
        "gc": checkpointing_on(model),
        "use_reentrant": sorted(map(str, use_reentrant)),
        "trainable": sum(p.numel() for p in after.values()),
        "future_warnings_from_prepare": ours,
        "args_unchanged": repr(args) == before_args,
        "transformers": str(versions.installed("transformers")),
        "peft": str(versions.installed("peft")),
    }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
