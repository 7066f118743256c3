"""trl-prepare-model-for-kbit-training: TRL's copy of `prepare_model_for_kbit_training(model,
use_gradient_checkpointing=True, gradient_checkpointing_kwargs=None)` (trl.models / trl.models.utils /
trl.experimental.utils; peft's own function is NOT touched) -> `compat.prepare_model(model,
gradient_checkpointing=..., gradient_checkpointing_kwargs=...)`.

TRL's copy froze every parameter first; `get_peft_model` does that too, so a TODO is added only when the file never
calls `get_peft_model` (then the base model would stay trainable).
"""

from __future__ import annotations

import libcst as cst

from codemods.cstutil import as_keyword, kwarg, with_commas
from codemods.rule import COMPAT_FLOOR_GATE
from codemods.rules._function import FunctionRule, bound_args, imports_module

PARAMS = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")


class TrlPrepareModelForKbitTraining(FunctionRule):
    id = "trl-prepare-model-for-kbit-training"
    summary = (
        "TRL's prepare_model_for_kbit_training (not peft's) -> "
        "compat.prepare_model(model, gradient_checkpointing=..., gradient_checkpointing_kwargs=...)"
    )
    triggers = ("prepare_model_for_kbit_training",)
    trigger_regex = imports_module("trl")
    gates = (COMPAT_FLOOR_GATE,)
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "prepare_model_for_kbit_training"

    def rewrite_call(self, ctx, call):
        bound = bound_args(call, PARAMS)
        if bound is None or "model" not in bound:
            ctx.todo(call, "*args/**kwargs: rewrite this call by hand")
            return None
        callee = self.compat_callee(ctx, call, "prepare_model")
        if callee is None:
            return None
        if not self.mentions(ctx, "get_peft_model"):
            ctx.todo(call, "freeze the base yourself if no adapter follows")

        def fn(node: cst.Call) -> cst.Call:
            args = [node.args[bound["model"]]]
            inserted: frozenset[int] = frozenset()
            if "use_gradient_checkpointing" in bound:
                args.append(
                    as_keyword(
                        node.args[bound["use_gradient_checkpointing"]],
                        "gradient_checkpointing",
                    )
                )
            else:
                args.append(kwarg("gradient_checkpointing", cst.Name("True")))
                inserted = frozenset({1})
            if "gradient_checkpointing_kwargs" in bound:
                args.append(
                    as_keyword(
                        node.args[bound["gradient_checkpointing_kwargs"]],
                        "gradient_checkpointing_kwargs",
                    )
                )
            return node.with_changes(
                func=callee, args=with_commas(args, node.args, inserted)
            )

        return self.fitted(ctx, call, fn)
