"""The codemod rules, one module per rule, and the registry.

To add a rule: write ``codemods/<name>.py`` (see the guide in ``codemods/base.py``), then append ONE import line
below and the class to ``RULES``. The order of ``RULES`` is the order the rules run in on a file (and in
``--list-rules``). Nothing in this package imports torch, transformers, peft or bitsandbytes.

Then drop fixture pairs into ``tests/codemods/fixtures/<rule id>/<case>.py.in`` / ``.py.out`` (first line
``# target: transformers=4.55`` to test the other side of the gate); ``pytest tests/codemods`` runs them (output ==
expected, output parses, second run is a no-op). The engine is ``codemods.engine.transform(source, settings)``.
"""

from __future__ import annotations

from codemods.base import Finding, Rule, Settings
from codemods.peft_int8_training import PeftInt8Training
from codemods.trl_enable_gradient_checkpointing import TrlEnableGradientCheckpointing
from codemods.trl_peft_module_casting_to_bf16 import TrlPeftModuleCastingToBf16
from codemods.trl_prepare_model_for_kbit_training import TrlPrepareModelForKbitTraining
from codemods.trl_prepare_peft_model import TrlPreparePeftModel
from codemods.transformers_torch_dtype import TransformersTorchDtype
from codemods.transformers_load_in_kbit import TransformersLoadInKbit
from codemods.transformers_activation_checkpointing import TransformersActivationCheckpointing

RULES: list[type[Rule]] = [
    TrlPreparePeftModel,
    TrlEnableGradientCheckpointing,
    TrlPrepareModelForKbitTraining,
    TrlPeftModuleCastingToBf16,
    PeftInt8Training,
    TransformersTorchDtype,
    TransformersLoadInKbit,
    TransformersActivationCheckpointing,
]


def rules_by_id() -> dict[str, type[Rule]]:
    """id -> rule class (built lazily so that appending to RULES after import still works)."""
    return {rule.id: rule for rule in RULES}


__all__ = ["Finding", "Rule", "Settings", "RULES", "rules_by_id"]
