"""trl-enable-gradient-checkpointing: TRL's `enable_gradient_checkpointing(model, gradient_checkpointing_kwargs)` ->
`compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=...)`.

Both return the model. compat also registers the input-grad hook for PEFT/quantized models and uses the
checkpointing method name the installed transformers prefers.
"""

from __future__ import annotations

import libcst as cst

from codemods._calls import FunctionRule, as_keyword, bound_args, imports_module, kwarg, with_commas
from codemods.base import COMPAT_FLOOR

PARAMS = ("model", "gradient_checkpointing_kwargs")


class TrlEnableGradientCheckpointing(FunctionRule):
    id = "trl-enable-gradient-checkpointing"
    summary = (
        "TRL's enable_gradient_checkpointing(model, kwargs) -> "
        "compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)"
    )
    triggers = ("enable_gradient_checkpointing",)
    trigger_regex = imports_module("trl")
    target = COMPAT_FLOOR
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "enable_gradient_checkpointing"

    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        bound = bound_args(original.args, PARAMS)
        if bound is None or "model" not in bound:
            self.add_todo(original, "arguments could not be mapped (*args/**kwargs); call compat.prepare_model by hand")
            return None
        callee = self.compat_callee(original, "prepare_model")
        if callee is None:
            return None
        by_id = {id(o): u for o, u in zip(original.args, updated.args)}
        args = [by_id[id(bound["model"])], kwarg("gradient_checkpointing", cst.Name("True"))]
        if "gradient_checkpointing_kwargs" in bound:
            args.append(as_keyword(by_id[id(bound["gradient_checkpointing_kwargs"])], "gradient_checkpointing_kwargs"))
        return updated.with_changes(func=callee, args=with_commas(args, updated.args, frozenset({1})))
