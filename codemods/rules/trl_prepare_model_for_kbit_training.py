"""trl-prepare-model-for-kbit-training: TRL's copy of `prepare_model_for_kbit_training(model,
use_gradient_checkpointing=True, gradient_checkpointing_kwargs=None)` (trl.models / trl.models.utils /
trl.experimental.utils; peft's own function is NOT touched) -> `compat.prepare_model(model,
gradient_checkpointing=..., gradient_checkpointing_kwargs=...)`.

TRL's copy froze every parameter first; `get_peft_model` does that too, so a TODO is added only when the file never
calls `get_peft_model` (then the base model would stay trainable).
"""

from __future__ import annotations

from codemods.rules._function import TrlHelperRule


class TrlPrepareModelForKbitTraining(TrlHelperRule):
    id = "trl-prepare-model-for-kbit-training"
    summary = (
        "TRL's prepare_model_for_kbit_training (not peft's) -> compat.prepare_model(model, gradient_checkpointing=...)"
    )
    triggers = ("prepare_model_for_kbit_training",)
    old_name = "prepare_model_for_kbit_training"
    new_name = "prepare_model"
    params = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")
    arguments = (
        (None, "model", None),
        ("gradient_checkpointing", "use_gradient_checkpointing", "True"),
        ("gradient_checkpointing_kwargs", "gradient_checkpointing_kwargs", None),
    )

    def notes(self, ctx, node):
        if "get_peft_model" not in ctx.source:
            ctx.todo(node, "freeze the base yourself if no adapter follows")
