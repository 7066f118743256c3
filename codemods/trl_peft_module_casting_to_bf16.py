"""trl-peft-module-casting-to-bf16: TRL's `peft_module_casting_to_bf16(model)` -> `compat.cast_trainable_params(model)`.

Always with a TODO: the old helper upcast norm layers to fp32 and cast fp32 embeddings/lm_head to bf16; the new
function casts only the trainable parameters to bf16 (skipping DoRA magnitude vectors), as TRL's unified
preparation does for quantized bases.
"""

from __future__ import annotations

import libcst as cst

from codemods._calls import FunctionRule, bound_args, imports_module
from codemods.base import COMPAT_FLOOR

WHY = (
    "cast_trainable_params casts only the trainable params to bf16 (not DoRA magnitudes); the old helper also "
    "upcast norms to fp32 and cast fp32 embeddings/lm_head to bf16"
)


class TrlPeftModuleCastingToBf16(FunctionRule):
    id = "trl-peft-module-casting-to-bf16"
    summary = "TRL's peft_module_casting_to_bf16(model) -> compat.cast_trainable_params(model), with a TODO"
    triggers = ("peft_module_casting_to_bf16",)
    trigger_regex = imports_module("trl")
    target = COMPAT_FLOOR
    old_modules = ("trl.trainer", "trl.trainer.utils", "trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "peft_module_casting_to_bf16"

    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        bound = bound_args(original.args, ("model",))
        if bound is None or "model" not in bound:
            self.add_todo(original, "arguments could not be mapped; call compat.cast_trainable_params by hand")
            return None
        callee = self.compat_callee(original, "cast_trainable_params")
        if callee is None:
            return None
        self.add_todo(original, WHY)
        return updated.with_changes(func=callee)

    def rewrite_reference(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.BaseExpression | None:
        callee = self.compat_callee(original, "cast_trainable_params")
        if callee is not None:
            self.add_todo(original, WHY)
        return callee
