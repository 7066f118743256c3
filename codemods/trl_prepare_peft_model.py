"""trl-prepare-peft-model: TRL's `prepare_peft_model(model, peft_config, args)` -> `compat.prepare_model(...)`.

Same arguments. Behaviour differences (MIGRATION.md#trl-prepare-peft-model): no silent merge of an existing
PeftModel (ValueError instead), `args` is never mutated, norms are never upcast to fp32.
"""

from __future__ import annotations

import libcst as cst

from codemods._calls import FunctionRule, imports_module
from codemods.base import COMPAT_FLOOR


class TrlPreparePeftModel(FunctionRule):
    id = "trl-prepare-peft-model"
    summary = "TRL's prepare_peft_model(model, peft_config, args) -> compat.prepare_model(same arguments)"
    triggers = ("prepare_peft_model",)
    trigger_regex = imports_module("trl")
    target = COMPAT_FLOOR
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "prepare_peft_model"

    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        callee = self.compat_callee(original, "prepare_model")
        return None if callee is None else updated.with_changes(func=callee)

    def rewrite_reference(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.BaseExpression | None:
        return self.compat_callee(original, "prepare_model")
