"""trl-prepare-peft-model: TRL's `prepare_peft_model(model, peft_config, args)` -> `compat.prepare_model(...)`.

Same arguments. Behaviour differences (MIGRATION.md#trl-prepare-peft-model): no silent merge of an existing
PeftModel (ValueError instead), `args` is never mutated, norms are never upcast to fp32.
"""

from __future__ import annotations

from codemods.rule import COMPAT_FLOOR_GATE
from codemods.rules._function import FunctionRule, imports_module


class TrlPreparePeftModel(FunctionRule):
    id = "trl-prepare-peft-model"
    summary = "TRL's prepare_peft_model(model, peft_config, args) -> compat.prepare_model(same arguments)"
    triggers = ("prepare_peft_model",)
    trigger_regex = imports_module("trl")
    gates = (COMPAT_FLOOR_GATE,)
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "prepare_peft_model"

    def rewrite_call(self, ctx, call):
        callee = self.compat_callee(ctx, call, "prepare_model")
        if callee is None:
            return None
        return lambda node: node.with_changes(func=callee)

    def rewrite_reference(self, ctx, node):
        callee = self.compat_callee(ctx, node, "prepare_model")
        return None if callee is None else (lambda _node: callee)
