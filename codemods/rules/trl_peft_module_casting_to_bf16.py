"""trl-peft-module-casting-to-bf16: TRL's `peft_module_casting_to_bf16(model)` -> `compat.cast_trainable_params(model)`.

Always with a TODO: the old helper upcast norm layers to fp32 and cast fp32 embeddings/lm_head to bf16; the new
function casts only the trainable parameters to bf16 (skipping DoRA magnitude vectors), as TRL's unified
preparation does for quantized bases.
"""

from __future__ import annotations

from codemods.rules._function import TRL_HELPER_MODULES, TrlHelperRule


class TrlPeftModuleCastingToBf16(TrlHelperRule):
    id = "trl-peft-module-casting-to-bf16"
    summary = "TRL's peft_module_casting_to_bf16(model) -> compat.cast_trainable_params(model), with a TODO"
    triggers = ("peft_module_casting_to_bf16",)
    old_modules = ("trl.trainer", "trl.trainer.utils", *TRL_HELPER_MODULES)
    old_name = "peft_module_casting_to_bf16"
    new_name = "cast_trainable_params"

    def notes(self, ctx, node):
        ctx.todo(node, "only trainable params go to bf16; norms stay as loaded")
