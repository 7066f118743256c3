"""trl-enable-gradient-checkpointing: TRL's `enable_gradient_checkpointing(model, gradient_checkpointing_kwargs)` ->
`compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=...)`.

Both return the model. compat also registers the input-grad hook for PEFT/quantized models and uses the
checkpointing method name the installed transformers prefers.
"""

from __future__ import annotations

import libcst as cst

from codemods.cstutil import as_keyword, kwarg, with_commas
from codemods.rule import COMPAT_FLOOR_GATE
from codemods.rules._function import FunctionRule, bound_args, imports_module

PARAMS = ("model", "gradient_checkpointing_kwargs")


class TrlEnableGradientCheckpointing(FunctionRule):
    id = "trl-enable-gradient-checkpointing"
    summary = (
        "TRL's enable_gradient_checkpointing(model, kwargs) -> "
        "compat.prepare_model(model, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)"
    )
    triggers = ("enable_gradient_checkpointing",)
    trigger_regex = imports_module("trl")
    gates = (COMPAT_FLOOR_GATE,)
    old_modules = ("trl.models", "trl.models.utils", "trl.experimental.utils")
    old_name = "enable_gradient_checkpointing"

    def rewrite_call(self, ctx, call):
        bound = bound_args(call, PARAMS)
        if bound is None or "model" not in bound:
            ctx.todo(call, "*args/**kwargs: rewrite this call by hand")
            return None
        callee = self.compat_callee(ctx, call, "prepare_model")
        if callee is None:
            return None

        def fn(node: cst.Call) -> cst.Call:
            args = [
                node.args[bound["model"]],
                kwarg("gradient_checkpointing", cst.Name("True")),
            ]
            if "gradient_checkpointing_kwargs" in bound:
                args.append(
                    as_keyword(
                        node.args[bound["gradient_checkpointing_kwargs"]],
                        "gradient_checkpointing_kwargs",
                    )
                )
            return node.with_changes(
                func=callee, args=with_commas(args, node.args, frozenset({1}))
            )

        return self.fitted(ctx, call, fn)
