"""trl-prepare-peft-model: TRL's `prepare_peft_model(model, peft_config, args)` -> `compat.prepare_model(...)`.

Same arguments. Behaviour differences (MIGRATION.md#trl-prepare-peft-model): no silent merge of an existing
PeftModel (ValueError instead), `args` is never mutated, norms are never upcast to fp32.
"""

from __future__ import annotations

from codemods.rules._function import TrlHelperRule


class TrlPreparePeftModel(TrlHelperRule):
    id = "trl-prepare-peft-model"
    summary = "TRL's prepare_peft_model(model, peft_config, args) -> compat.prepare_model(same arguments)"
    triggers = ("prepare_peft_model",)
    old_name = "prepare_peft_model"
    new_name = "prepare_model"
    params = ("model", "peft_config", "args")
