"""trl-peft-module-casting-to-bf16: TRL's `peft_module_casting_to_bf16(model)` -> `compat.cast_trainable_params(model)`.

Always with a TODO: the old helper upcast norm layers to fp32 and cast fp32 embeddings/lm_head to bf16; the new
function casts only the trainable parameters to bf16 (skipping DoRA magnitude vectors), as TRL's unified
preparation does for quantized bases.
"""

from __future__ import annotations

from codemods.rule import COMPAT_FLOOR_GATE
from codemods.rules._function import FunctionRule, bound_args, imports_module

WHY = "only trainable params go to bf16; norms stay as loaded"


class TrlPeftModuleCastingToBf16(FunctionRule):
    id = "trl-peft-module-casting-to-bf16"
    summary = "TRL's peft_module_casting_to_bf16(model) -> compat.cast_trainable_params(model), with a TODO"
    triggers = ("peft_module_casting_to_bf16",)
    trigger_regex = imports_module("trl")
    gates = (COMPAT_FLOOR_GATE,)
    old_modules = (
        "trl.trainer",
        "trl.trainer.utils",
        "trl.models",
        "trl.models.utils",
        "trl.experimental.utils",
    )
    old_name = "peft_module_casting_to_bf16"

    def rewrite_call(self, ctx, call):
        bound = bound_args(call, ("model",))
        if bound is None or "model" not in bound:
            ctx.todo(call, "arguments not mapped: rewrite this call by hand")
            return None
        callee = self.compat_callee(ctx, call, "cast_trainable_params")
        if callee is None:
            return None
        ctx.todo(call, WHY)
        return lambda node: node.with_changes(func=callee)

    def rewrite_reference(self, ctx, node):
        callee = self.compat_callee(ctx, node, "cast_trainable_params")
        if callee is None:
            return None
        ctx.todo(node, WHY)
        return lambda _node: callee
