"""peft-int8-training: `prepare_model_for_int8_training` (removed in peft 0.10) -> `prepare_model_for_kbit_training`.

Signatures: peft 0.2 `(model, output_embedding_layer_name="lm_head", use_gradient_checkpointing=True,
layer_norm_names=["layer_norm"])`; 0.3 `(model, use_gradient_checkpointing=True)`; 0.4-0.9 `(*args, **kwargs)`
forwarding to `prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
gradient_checkpointing_kwargs=None)`. Keywords the new function lacks are dropped with a TODO.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import ScopeProvider

from codemods._calls import FunctionRule, as_keyword, bound_args, dotted, with_commas

NEW = "prepare_model_for_kbit_training"
OLD = "prepare_model_for_int8_training"
MODULES = ("peft", "peft.utils", "peft.utils.other")
_OLD_PARAMS = ("model", "output_embedding_layer_name", "use_gradient_checkpointing", "layer_norm_names")
_NEW_PARAMS = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")
_DROPPED = ("output_embedding_layer_name", "layer_norm_names")


class PeftInt8Training(FunctionRule):
    id = "peft-int8-training"
    summary = "peft's prepare_model_for_int8_training (removed in 0.10) -> prepare_model_for_kbit_training"
    triggers = (OLD,)
    target = {"peft": "0.4"}
    old_modules = MODULES
    old_name = OLD

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.new_names = frozenset(f"{m}.{NEW}" for m in MODULES)

    def _kind(self, node: cst.CSTNode) -> str:
        names = self.qualified_names(node)
        if not names or not (names & self.old):
            return "none"
        return "old" if names <= (self.old | self.new_names) else "ambiguous"

    # `from peft import prepare_model_for_int8_training as prepare_model_for_kbit_training` -> plain new import
    def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
        if original_node.relative or isinstance(updated_node.names, cst.ImportStar):
            return updated_node
        if dotted(original_node.module) not in MODULES:
            return updated_node
        names = []
        changed = False
        for alias in updated_node.names:
            if (
                isinstance(alias.name, cst.Name)
                and alias.name.value == OLD
                and alias.asname is not None
                and isinstance(alias.asname.name, cst.Name)
                and alias.asname.name.value == NEW
            ):
                alias = alias.with_changes(name=cst.Name(NEW), asname=None)
                changed = True
            names.append(alias)
        if not changed:
            return updated_node
        self.record(original_node, f"import {OLD} as {NEW} -> import {NEW}")
        return updated_node.with_changes(names=names)

    def _new_callee(self, original: cst.BaseExpression, updated: cst.BaseExpression) -> cst.BaseExpression | None:
        if isinstance(updated, cst.Attribute):
            return updated.with_changes(attr=cst.Name(NEW))
        if isinstance(updated, cst.Name):
            if updated.value == NEW:
                return updated
            scope = self.get_metadata(ScopeProvider, original, None)
            if scope is not None:
                for assignment in scope[NEW]:
                    node = getattr(assignment, "node", None)
                    if not isinstance(node, (cst.Import, cst.ImportFrom)):
                        self.add_todo(original, f"`{NEW}` is already a different name here; rename by hand")
                        return None
            self.add_needed_import("peft", NEW)
            return cst.Name(NEW)
        return None

    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        callee = self._new_callee(original.func, updated.func)
        if callee is None:
            return None
        args = list(updated.args)
        positional = [a for a in original.args if a.keyword is None and not a.star]
        second = positional[1].value if len(positional) > 1 else None
        if isinstance(second, (cst.SimpleString, cst.ConcatenatedString)):
            params = _OLD_PARAMS + ("gradient_checkpointing_kwargs",)  # peft 0.2's positional order
        else:
            params = _NEW_PARAMS + _DROPPED
        bound = bound_args(original.args, params)
        dropped: list[str] = []
        if bound is not None:
            names = {id(a): n for n, a in bound.items()}
            new_args = []
            for orig_arg, upd_arg in zip(original.args, args):
                name = names[id(orig_arg)]
                if name in _DROPPED:
                    dropped.append(name)
                    continue
                if orig_arg.keyword is None and dropped:
                    upd_arg = as_keyword(upd_arg, name)  # a positional after a dropped one
                new_args.append(upd_arg)
            if dropped:
                args = with_commas(new_args, updated.args)
                self.add_todo(
                    original,
                    f"dropped {', '.join(dropped)}: {NEW} has no such parameter "
                    "(it upcasts every non-quantized fp16/bf16 parameter to fp32 instead)",
                )
        if callee is updated.func and not dropped:
            return None  # already the new name (a fallback alias), nothing to change in the call
        return updated.with_changes(func=callee, args=args)

    def rewrite_reference(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.BaseExpression | None:
        callee = self._new_callee(original, updated)
        if callee is None or callee is updated:
            return None
        return callee
