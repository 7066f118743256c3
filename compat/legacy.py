"""TRL's removed preparation helpers, with their old signatures, as thin deprecated wrappers over `compat.prepare`.

Change `from trl.models import prepare_peft_model` to `from compat import prepare_peft_model` and an old script runs
again; each helper says once (FutureWarning) what to call instead. `python -m compat.codemod` rewrites the calls.
MIGRATION.md lists where the behaviour differs from the TRL originals.
"""

from __future__ import annotations

import warnings
from typing import Any

from typing_extensions import deprecated

from compat import prepare

_warned: set[str] = set()


def _warn_once(old: str, new: str) -> None:
    if old in _warned:
        return
    _warned.add(old)
    warnings.warn(
        f"{old} is deprecated (removed from TRL); use {new} instead. `python -m compat.codemod` rewrites it.",
        FutureWarning,
        stacklevel=3,
    )


# category=None: type checkers and IDEs flag the names (PEP 702); the runtime warning is our own, once per name.
@deprecated("Use compat.prepare_model(model, peft_config, args)", category=None)
def prepare_peft_model(model: Any, peft_config: Any, args: Any) -> Any:
    """TRL 0.22-0.26's `prepare_peft_model`: returns the model ready to train (adapter attached, checkpointing on
    if `args` asks). As in TRL, a PeftModel passed with a new config is merged first (warning: save that base)."""
    _warn_once("prepare_peft_model", "compat.prepare_model(model, peft_config, args)")
    if peft_config is not None and prepare._is_peft_model(model):
        warnings.warn(
            "prepare_peft_model merged the existing adapter into the base model before adding the new one, as TRL "
            "0.22-0.26 did. Save that merged base model (model.base_model.model.save_pretrained(path)) or the new "
            "adapter cannot be reloaded later; compat.prepare_model refuses this case instead.",
            UserWarning,
            stacklevel=2,
        )
        model = model.merge_and_unload()
    return prepare.prepare_model(model, peft_config, args)


@deprecated("Use compat.enable_checkpointing(model, checkpointing_kwargs)", category=None)
def enable_gradient_checkpointing(model: Any, gradient_checkpointing_kwargs: dict | None) -> Any:
    """TRL 0.22-0.26's `enable_gradient_checkpointing(model, gradient_checkpointing_kwargs)`."""
    _warn_once("enable_gradient_checkpointing", "compat.enable_checkpointing(model, checkpointing_kwargs)")
    return prepare.enable_checkpointing(model, gradient_checkpointing_kwargs)


@deprecated("Use compat.prepare_model(model, gradient_checkpointing=True)", category=None)
def prepare_model_for_kbit_training(model: Any, use_gradient_checkpointing: bool = True,
                                    gradient_checkpointing_kwargs: dict | None = None) -> Any:
    """TRL 0.25-0.26's own `prepare_model_for_kbit_training`: freezes every parameter and, for a quantized model,
    enables checkpointing with the input-grad hook. Unlike peft's function of that name it upcasts nothing."""
    _warn_once(
        "prepare_model_for_kbit_training",
        "compat.prepare_model(model, peft_config, gradient_checkpointing=True)",
    )
    for param in model.parameters():
        param.requires_grad = False
    if use_gradient_checkpointing and prepare.is_quantized(model):
        prepare.enable_checkpointing(model, gradient_checkpointing_kwargs)
    return model


@deprecated("Use compat.cast_trainable_params(model)", category=None)
def peft_module_casting_to_bf16(model: Any) -> Any:
    """Replaces TRL's `peft_module_casting_to_bf16`: casts the trainable parameters to bf16 as the new preparation
    does. The old helper upcast norms to fp32 instead, which costs memory and breaks lm_head without autocast."""
    _warn_once("peft_module_casting_to_bf16", "compat.cast_trainable_params(model)")
    return prepare.cast_trainable_params(model, "bfloat16")
