"""TRL's removed preparation helpers, with their old signatures, as thin deprecated wrappers over `compat.prepare`.

Change `from trl.models import prepare_peft_model` to `from compat import prepare_peft_model` and an old script runs
again; each call warns (FutureWarning, through the warnings machinery: the default filters show it once per call
site) what to call instead. `python -m compat.codemod` rewrites the calls. MIGRATION.md lists where the behaviour
differs from the TRL originals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from typing_extensions import deprecated

from compat import prepare

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from peft import PeftConfig


def _deprecated(old: str, new: str) -> None:
    prepare.warn(
        f"{old} is deprecated (removed from TRL); use {new} instead. `python -m compat.codemod` rewrites it.",
        FutureWarning,
    )


# category=None: type checkers and IDEs flag the names (PEP 702, through compat's py.typed); the runtime warning is
# ours, so that its stack level points at the caller's line.
@deprecated("Use compat.prepare_model(model, peft_config, args)", category=None)
def prepare_peft_model(model: torch.nn.Module, peft_config: PeftConfig | None, args: Any) -> torch.nn.Module:
    """TRL 0.22-0.26's `prepare_peft_model`: returns the model ready to train (adapter attached, checkpointing on
    if `args` asks). As in TRL, a PeftModel passed with a new config is merged first (warning: save that base)."""
    _deprecated("prepare_peft_model", "compat.prepare_model(model, peft_config, args)")
    if peft_config is not None and prepare.is_peft_model(model):
        prepare.warn(
            "prepare_peft_model merged the existing adapter into the base model before adding the new one, as TRL "
            "0.22-0.26 did. Save that merged base model (model.base_model.model.save_pretrained(path)) or the new "
            "adapter cannot be reloaded later; compat.prepare_model refuses this case instead."
        )
        model = model.merge_and_unload()
    return prepare.prepare_model(model, peft_config, args)


@deprecated("Use compat.enable_checkpointing(model, checkpointing_kwargs)", category=None)
def enable_gradient_checkpointing(
    model: torch.nn.Module, gradient_checkpointing_kwargs: Mapping[str, Any] | None
) -> torch.nn.Module:
    """TRL 0.22-0.26's `enable_gradient_checkpointing(model, gradient_checkpointing_kwargs)`; unlike TRL's, the
    kwargs are passed on (TRL's called `gradient_checkpointing_enable()` without them)."""
    _deprecated("enable_gradient_checkpointing", "compat.enable_checkpointing(model, checkpointing_kwargs)")
    return prepare.enable_checkpointing(model, gradient_checkpointing_kwargs)


@deprecated("Use compat.prepare_model(model, gradient_checkpointing=True)", category=None)
def prepare_model_for_kbit_training(
    model: torch.nn.Module,
    use_gradient_checkpointing: bool = True,
    gradient_checkpointing_kwargs: Mapping[str, Any] | None = None,
) -> torch.nn.Module:
    """TRL 0.26's own `prepare_model_for_kbit_training`: freezes every parameter and, for a quantized model,
    enables checkpointing with the input-grad hook. It upcasts nothing (TRL 0.25's copy upcast norms to fp32, and
    peft's function of that name upcasts every non-quantized fp16/bf16 parameter)."""
    _deprecated(
        "prepare_model_for_kbit_training",
        "compat.prepare_model(model, peft_config, gradient_checkpointing=True)",
    )
    for param in model.parameters():
        param.requires_grad = False
    if use_gradient_checkpointing and prepare.is_quantized(model):
        prepare.enable_checkpointing(model, gradient_checkpointing_kwargs)
    return model


@deprecated("Use compat.cast_trainable_params(model)", category=None)
def peft_module_casting_to_bf16(model: torch.nn.Module) -> torch.nn.Module:
    """Replaces TRL's `peft_module_casting_to_bf16`: casts the trainable parameters to bf16 as the new preparation
    does, and returns the model (TRL's returned None). The old helper upcast norms to fp32 and cast fp32 embeddings
    and lm_head to bf16 instead, leaving the adapters as they were."""
    _deprecated("peft_module_casting_to_bf16", "compat.cast_trainable_params(model)")
    return prepare.cast_trainable_params(model, "bfloat16")
