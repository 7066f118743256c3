"""trl-enable-gradient-checkpointing: TRL's `enable_gradient_checkpointing(model, gradient_checkpointing_kwargs)` ->
`compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=...)`.

Both return the model. compat also registers the input-grad hook for PEFT/quantized models and uses the
checkpointing method name the installed transformers prefers.
"""

from __future__ import annotations

from codemods.rules._function import TrlHelperRule


class TrlEnableGradientCheckpointing(TrlHelperRule):
    id = "trl-enable-gradient-checkpointing"
    summary = (
        "TRL's enable_gradient_checkpointing(model, kwargs) -> "
        "compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)"
    )
    triggers = ("enable_gradient_checkpointing",)
    old_name, new_name = "enable_gradient_checkpointing", "prepare_model"
    params = ("model", "gradient_checkpointing_kwargs")
    arguments = (
        (None, "model", None),
        ("gradient_checkpointing", None, "True"),
        ("gradient_checkpointing_kwargs", "gradient_checkpointing_kwargs", None),
    )
