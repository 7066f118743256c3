"""peft-int8-training: `prepare_model_for_int8_training` (removed in peft 0.10) -> `prepare_model_for_kbit_training`.

Signatures: peft 0.2 `(model, output_embedding_layer_name="lm_head", use_gradient_checkpointing=True,
layer_norm_names=["layer_norm"])`; 0.3 `(model, use_gradient_checkpointing=True)`; 0.4-0.9 `(*args, **kwargs)`
forwarding to `prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
gradient_checkpointing_kwargs=None)`. Keywords the new function lacks are dropped with a TODO.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import ScopeProvider

from codemods._calls import FunctionRule, as_keyword, bound_args, dotted, imports_module, with_commas

NEW = "prepare_model_for_kbit_training"
OLD = "prepare_model_for_int8_training"
MODULES = ("peft", "peft.utils", "peft.utils.other")
_EMPTY = cst.Module(body=[])
_OLD_PARAMS = ("model", "output_embedding_layer_name", "use_gradient_checkpointing", "layer_norm_names")
_NEW_PARAMS = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")
_DROPPED = ("output_embedding_layer_name", "layer_norm_names")


class PeftInt8Training(FunctionRule):
    id = "peft-int8-training"
    summary = "peft's prepare_model_for_int8_training (removed in 0.10) -> prepare_model_for_kbit_training"
    triggers = (OLD,)
    trigger_regex = imports_module("peft")
    target = {"peft": "0.4"}
    old_modules = MODULES
    old_name = OLD
    origin = "peft's"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.new_names = frozenset(f"{m}.{NEW}" for m in MODULES)
        self._rewritten: set[str] = set()  # local names of the old function whose uses were rewritten
        self._blocked: set[str] = set()  # local names with a use left alone: their import stays
        self._skipped_imports: set[str] = set()  # code of import statements on `# compat: skip` lines

    def _kind(self, node: cst.CSTNode) -> str:
        names = self.qualified_names(node)
        if not names and self._star_imported(node):
            return "none" if self.in_fstring(node) else "old"
        if not names or not (names & self.old) or self.in_fstring(node):
            return "none"
        return "old" if names <= (self.old | self.new_names) else "ambiguous"

    # Imports are renamed in place (`from peft import prepare_model_for_int8_training [as x]` ->
    # `from peft import prepare_model_for_kbit_training`) once every use of that name was rewritten; a name with a
    # use left alone (TODO) keeps its import.
    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if self._import_skipped(node):
            self._skipped_imports.add(_EMPTY.code_for_node(node))
        return False

    def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
        # `import int8 as kbit` (a fallback alias) is always safe to turn into the plain new import
        return self._rename_imports(original_node, updated_node, only_alias_to_new=True)

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if not self._rewritten:
            return updated_node
        rule = self

        class _Rename(cst.CSTTransformer):
            def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
                return rule._rename_imports(original, updated, only_alias_to_new=False)

        return updated_node.visit(_Rename())

    def _rename_imports(self, original: cst.ImportFrom, updated: cst.ImportFrom, only_alias_to_new: bool):
        if original.relative or isinstance(updated.names, cst.ImportStar) or dotted(updated.module) not in MODULES:
            return updated
        if self._skipped_imports and _EMPTY.code_for_node(updated) in self._skipped_imports:
            if not only_alias_to_new:
                self.add_needed_import("peft", NEW)  # the old import stays (`# compat: skip`); the new name is needed
            return updated
        names: list[cst.ImportAlias] = []
        changed = False
        have_new = any(isinstance(a.name, cst.Name) and a.name.value == NEW and a.asname is None for a in updated.names)
        for alias in updated.names:
            name = alias.name.value if isinstance(alias.name, cst.Name) else None
            asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
            binding = asname or name
            rename = False
            if name == OLD and asname == NEW:
                rename = True
            elif not only_alias_to_new and binding in self._rewritten and binding not in self._blocked:
                rename = (name == OLD) or (name == NEW and asname == OLD)
            if rename:
                changed = True
                if have_new:
                    continue  # already imported beside it
                have_new = True
                alias = alias.with_changes(name=cst.Name(NEW), asname=None)
            names.append(alias)
        if not changed:
            return updated
        if only_alias_to_new:
            self.record(original, f"import {OLD} as {NEW} -> import {NEW}")
        if names and isinstance(names[-1].comma, cst.Comma) and updated.rpar is None:
            names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(names=names)

    def _new_callee(self, original: cst.BaseExpression, updated: cst.BaseExpression) -> cst.BaseExpression | None:
        if isinstance(updated, cst.Attribute):
            return updated.with_changes(attr=cst.Name(NEW))
        if isinstance(updated, cst.Name):
            binding = updated.value
            if binding == NEW:
                return updated
            scope = self.get_metadata(ScopeProvider, original, None)
            if scope is not None:
                for assignment in scope[NEW]:
                    node = getattr(assignment, "node", None)
                    if not isinstance(node, (cst.Import, cst.ImportFrom)):
                        self._blocked.add(binding)
                        self.add_todo(original, f"`{NEW}` is already a different name here; rename by hand")
                        return None
            self._rewritten.add(binding)
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
                    "(it upcasts all non-quantized fp16/bf16 params to fp32)",
                )
        if callee is updated.func and not dropped:
            return None  # already the new name (a fallback alias), nothing to change in the call
        return updated.with_changes(func=callee, args=args)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        result = super().leave_Call(original_node, updated_node)
        if (
            result is updated_node
            and isinstance(original_node.func, cst.Name)
            and self._kind(original_node.func) != "none"
        ):
            if original_node.func.value != NEW:
                self._blocked.add(original_node.func.value)  # left alone (ambiguous or TODO): keep its import
        return result

    def rewrite_reference(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.BaseExpression | None:
        callee = self._new_callee(original, updated)
        if callee is None or callee is updated:
            return None
        return callee
