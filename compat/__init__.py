"""model-prep-compat: TRL's unified model preparation, version-gated over transformers and peft.

`import compat` is cheap: the public names load their module (and torch/transformers/peft) on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING

try:  # the one version source is pyproject.toml; an installed distribution carries it in its metadata
    __version__ = metadata.version("model-prep-compat")
except metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, not installed
    __version__ = "0+unknown"

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
    "get_kbit_device_map": "compat.trl_helpers",
    "setup_chat_format": "compat.trl_helpers",
    "conversations_formatting_function": "compat.trl_helpers",
    "SIMPLE_CHAT_TEMPLATE": "compat.trl_helpers",
    "SftScriptArguments": "compat.trl_helpers",
    "DpoScriptArguments": "compat.trl_helpers",
    "trl_config": "compat.trl_helpers",
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
    from compat.trl_helpers import (
        SIMPLE_CHAT_TEMPLATE,
        DpoScriptArguments,
        SftScriptArguments,
        conversations_formatting_function,
        get_kbit_device_map,
        setup_chat_format,
        trl_config,
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
