"""trl-prepare-model-for-kbit-training: TRL's copy of `prepare_model_for_kbit_training(model,
use_gradient_checkpointing=True, gradient_checkpointing_kwargs=None)` (trl.models / trl.models.utils /
trl.experimental.utils; peft's own function is NOT touched) -> `compat.prepare_model(model,
gradient_checkpointing=..., gradient_checkpointing_kwargs=...)`.

TRL's copy froze every parameter first; `get_peft_model` does that too, so a TODO is added only when the file never
calls `get_peft_model` (then the base model would stay trainable).
"""

from __future__ import annotations

import libcst as cst

from codemods._calls import FunctionRule, as_keyword, bound_args, imports_module, kwarg, with_commas
from codemods.base import COMPAT_FLOOR

PARAMS = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")


class TrlPrepareModelForKbitTraining(FunctionRule):
    id = "trl-prepare-model-for-kbit-training"
    summary = (
        "TRL's prepare_model_for_kbit_training (not peft's) -> "
        "compat.prepare_model(model, gradient_checkpointing=..., gradient_checkpointing_kwargs=...)"
    )
    triggers = ("prepare_model_for_kbit_training",)
    trigger_regex = imports_module("trl")
    target = COMPAT_FLOOR
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "prepare_model_for_kbit_training"

    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        bound = bound_args(original.args, PARAMS)
        if bound is None or "model" not in bound:
            self.add_todo(original, "arguments could not be mapped (*args/**kwargs); call compat.prepare_model by hand")
            return None
        callee = self.compat_callee(original, "prepare_model")
        if callee is None:
            return None
        by_id = {id(o): u for o, u in zip(original.args, updated.args)}
        args = [by_id[id(bound["model"])]]
        inserted: frozenset[int] = frozenset()
        if "use_gradient_checkpointing" in bound:
            args.append(as_keyword(by_id[id(bound["use_gradient_checkpointing"])], "gradient_checkpointing"))
        else:
            args.append(kwarg("gradient_checkpointing", cst.Name("True")))
            inserted = frozenset({1})
        if "gradient_checkpointing_kwargs" in bound:
            args.append(as_keyword(by_id[id(bound["gradient_checkpointing_kwargs"])], "gradient_checkpointing_kwargs"))
        if not self.mentions("get_peft_model"):
            self.add_todo(
                original,
                "TRL's helper also froze every base param; compat.prepare_model does not (get_peft_model does): "
                "freeze them if no adapter follows",
            )
        return updated.with_changes(func=callee, args=with_commas(args, updated.args, inserted))
