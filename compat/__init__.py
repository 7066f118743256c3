"""model-prep-compat: TRL's unified model preparation, version-gated over transformers and peft.

`import compat` is cheap: the public names load their module (and torch/transformers/peft) on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_PUBLIC = {
    "prepare_model": "compat.prepare",
    "explain": "compat.prepare",
    "Plan": "compat.prepare",
    "Step": "compat.prepare",
    "enable_checkpointing": "compat.prepare",
    "cast_trainable_params": "compat.prepare",
    "release_checkpointing_kwargs": "compat.prepare",
    "pretrained_kwargs": "compat.loading",
    "prepare_peft_model": "compat.legacy",
    "enable_gradient_checkpointing": "compat.legacy",
    "prepare_model_for_kbit_training": "compat.legacy",
    "peft_module_casting_to_bf16": "compat.legacy",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # pragma: no cover
    from compat.legacy import (
        enable_gradient_checkpointing,
        peft_module_casting_to_bf16,
        prepare_model_for_kbit_training,
        prepare_peft_model,
    )
    from compat.loading import pretrained_kwargs
    from compat.prepare import (
        Plan,
        Step,
        cast_trainable_params,
        enable_checkpointing,
        explain,
        prepare_model,
        release_checkpointing_kwargs,
    )


def _install_import_guards() -> None:
    from compat import hybrid_cache

    hybrid_cache.install()


_install_import_guards()


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'compat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
